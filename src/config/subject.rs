//! A `nats` destination's `subject` template, and the one rule that maps an event's strings
//! to subject tokens.
//!
//! NATS subjects are `.`-separated tokens; a token may not be empty nor hold white space, and
//! `*` and `>` are wildcards. Event types and ids hold all of these (GitHub's `issue_comment`,
//! Shopify's `orders/paid`, Stripe's `invoice.payment_succeeded`, an id with a space or a dot),
//! so every value is written through one rule, which keeps distinct values distinct:
//!
//! - `{type}`: its `.` stays the separator (`invoice.paid` is two tokens, so a consumer can
//!   subscribe to `webhooks.stripe.invoice.>`); in each part, `%`, white space, control
//!   characters, `*` and `>` are percent-encoded as their UTF-8 bytes (`%25`, `%20`, …), and an
//!   empty part (a leading, trailing or doubled `.`) is written `%` alone (a literal `%` is
//!   always `%25`, so a bare `%` can only mean an empty part).
//! - `{event_id}` and `{source}`: one token each: the same rule, with `.` encoded too (`%2E`).
//!
//! Everything else (letters, digits, `/`, `_`, `-`, non-ASCII) is kept as it is.

use std::fmt::Write as _;

/// A placeholder of the template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Source,
    Type,
    EventId,
}

/// A parsed template: its tokens, each a literal or a placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Token>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(String),
    Value(Part),
}

impl Template {
    /// Parses `webhooks.{source}.{type}`: tokens separated by `.`; a placeholder is a whole
    /// token; a literal token is not empty and holds no white space, `*`, `>`, `{` or `}`.
    pub fn parse(template: &str) -> Result<Self, String> {
        if template.is_empty() {
            return Err(
                "a subject template is required, e.g. \"webhooks.{source}.{type}\"".to_owned(),
            );
        }
        let mut tokens = Vec::new();
        for token in template.split('.') {
            let parsed = match token {
                "{source}" => Token::Value(Part::Source),
                "{type}" => Token::Value(Part::Type),
                "{event_id}" => Token::Value(Part::EventId),
                "" => {
                    return Err(
                        "a subject has no empty token (no leading, trailing or doubled '.')"
                            .to_owned(),
                    )
                }
                t if t.contains(['{', '}']) => {
                    return Err(format!(
                        "{t:?}: a placeholder is a whole token, one of {{source}}, {{type}}, \
                         {{event_id}}"
                    ))
                }
                t if t
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '*' | '>')) =>
                {
                    return Err(format!(
                        "{t:?}: a subject token holds no white space, '*' or '>'"
                    ))
                }
                t => Token::Literal(t.to_owned()),
            };
            tokens.push(parsed);
        }
        Ok(Self(tokens))
    }

    /// The subject of one event.
    pub fn render(&self, source: &str, event_type: &str, event_id: &str) -> String {
        let mut out = String::new();
        for (i, token) in self.0.iter().enumerate() {
            if i > 0 {
                out.push('.');
            }
            match token {
                Token::Literal(t) => out.push_str(t),
                Token::Value(Part::Source) => encode_token(&mut out, source, true),
                Token::Value(Part::EventId) => encode_token(&mut out, event_id, true),
                Token::Value(Part::Type) => {
                    for (j, part) in event_type.split('.').enumerate() {
                        if j > 0 {
                            out.push('.');
                        }
                        encode_token(&mut out, part, false);
                    }
                }
            }
        }
        out
    }

    /// The subjects a source's events can have, as a NATS filter: `{type}` as `>` when it is
    /// the last token (any number of tokens), else `*`; `{event_id}` as `*`. A stream must
    /// capture it for every event of the source to land there.
    pub fn pattern(&self, source: &str) -> String {
        let mut out = String::new();
        let last = self.0.len() - 1;
        for (i, token) in self.0.iter().enumerate() {
            if i > 0 {
                out.push('.');
            }
            match token {
                Token::Literal(t) => out.push_str(t),
                Token::Value(Part::Source) => encode_token(&mut out, source, true),
                Token::Value(Part::EventId) => out.push('*'),
                Token::Value(Part::Type) if i == last => out.push('>'),
                Token::Value(Part::Type) => out.push('*'),
            }
        }
        out
    }
}

/// Writes `value` as subject text by the module's rule: one token when `whole` (its `.`
/// encoded), else one part of a type.
fn encode_token(out: &mut String, value: &str, whole: bool) {
    if value.is_empty() {
        out.push('%');
        return;
    }
    for c in value.chars() {
        let escape = c == '%'
            || c.is_whitespace()
            || c.is_control()
            || matches!(c, '*' | '>')
            || (whole && c == '.');
        if escape {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{b:02X}");
            }
        } else {
            out.push(c);
        }
    }
}

/// Whether every subject matching `pattern` also matches the stream's `filter` (both NATS
/// subjects with wildcards): the check that a stream captures a destination's subjects.
pub fn covers(filter: &str, pattern: &str) -> bool {
    let mut f = filter.split('.');
    let mut p = pattern.split('.');
    loop {
        match (f.next(), p.next()) {
            (Some(">"), Some(_)) => return true,
            (None, None) => return true,
            (Some("*"), Some(t)) if t != ">" => {}
            (Some(a), Some(b)) if a == b && a != "*" && a != ">" => {}
            (Some(a), Some(b)) if a == b => {} // `*` under `*`
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(template: &str, source: &str, ty: &str, id: &str) -> String {
        Template::parse(template).unwrap().render(source, ty, id)
    }

    #[test]
    fn real_provider_types_map_to_valid_subjects() {
        let t = "webhooks.{source}.{type}";
        // Stripe: dotted types keep their dots as separators.
        assert_eq!(
            render(t, "stripe", "invoice.payment_succeeded", "evt_1"),
            "webhooks.stripe.invoice.payment_succeeded"
        );
        assert_eq!(
            render(t, "stripe", "customer.subscription.updated", "evt_1"),
            "webhooks.stripe.customer.subscription.updated"
        );
        // GitHub: one token.
        assert_eq!(
            render(t, "github", "pull_request_review_comment", "x"),
            "webhooks.github.pull_request_review_comment"
        );
        // Shopify: topics hold '/', which NATS allows.
        assert_eq!(
            render(t, "shop", "orders/paid", "x"),
            "webhooks.shop.orders/paid"
        );
        assert_eq!(
            render(t, "shop", "app/uninstalled", "x"),
            "webhooks.shop.app/uninstalled"
        );
    }

    #[test]
    fn wildcards_white_space_percent_and_empty_parts_are_encoded() {
        let t = "w.{type}";
        assert_eq!(render(t, "s", "a b", ""), "w.a%20b");
        assert_eq!(render(t, "s", "a*>", ""), "w.a%2A%3E");
        assert_eq!(render(t, "s", "100%", ""), "w.100%25");
        assert_eq!(render(t, "s", "tab\there\u{1}", ""), "w.tab%09here%01");
        assert_eq!(render(t, "s", "a..b", ""), "w.a.%.b");
        assert_eq!(render(t, "s", ".a.", ""), "w.%.a.%");
        assert_eq!(render(t, "s", "", ""), "w.%");
        assert_eq!(render(t, "s", "é\u{a0}", ""), "w.é%C2%A0");
        // Distinct types stay distinct.
        assert_ne!(render(t, "s", "a%20b", ""), render(t, "s", "a b", ""));
        assert_ne!(render(t, "s", "%", ""), render(t, "s", "", ""));
    }

    #[test]
    fn an_event_id_is_one_token() {
        let t = "w.{type}.{event_id}";
        assert_eq!(render(t, "s", "x", "evt.1 2"), "w.x.evt%2E1%202");
        assert_eq!(render(t, "s", "x", ""), "w.x.%");
        let subject = render(t, "s", "x", "a.b.c");
        assert_eq!(subject.split('.').count(), 3);
    }

    #[test]
    fn templates_are_checked() {
        assert!(Template::parse("").is_err());
        assert!(Template::parse("a..b").is_err());
        assert!(Template::parse("a.{typ}").is_err());
        assert!(Template::parse("a.x{type}").is_err());
        assert!(Template::parse("a.*").is_err());
        assert!(Template::parse("a.>").is_err());
        assert!(Template::parse("a b.{type}").is_err());
        assert!(Template::parse("webhooks.{source}.{type}.{event_id}").is_ok());
    }

    #[test]
    fn a_stream_filter_covers_a_pattern_or_not() {
        let p = Template::parse("webhooks.{source}.{type}")
            .unwrap()
            .pattern("stripe");
        assert_eq!(p, "webhooks.stripe.>");
        assert!(covers("webhooks.>", &p));
        assert!(covers(">", &p));
        assert!(covers("webhooks.stripe.>", &p));
        assert!(covers("webhooks.*.>", &p));
        assert!(!covers("webhooks.stripe.*", &p));
        assert!(!covers("webhooks.github.>", &p));
        assert!(!covers("other.>", &p));
        let q = Template::parse("w.{type}.{event_id}").unwrap().pattern("s");
        assert_eq!(q, "w.*.*");
        assert!(covers("w.*.*", &q));
        assert!(covers("w.>", &q));
        assert!(!covers("w.*", &q));
        assert!(!covers("w.x.*", &q));
    }
}
