//! Which events a destination wants: `types` (globs on the event type) and `match` (JSON
//! pointer → value, every one must hold). Checked by the `forward` handler, in the event's
//! transaction, before it writes the outbox row: an event no destination wants writes none.
//!
//! Both are exact: a glob's only special character is `*` (any run of characters, `/` and `.`
//! included), so an event type is never read as a pattern; a value matches when it equals the
//! given one as JSON (the string `"false"` is not `false`, `1` equals `1.0`). A pointer that
//! finds nothing, or a body that is not JSON, is no match.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::event::Event;

/// One `types` pattern, split at its `*`s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeGlob {
    /// The literal runs between the stars; a pattern without a star is one run, matched whole.
    parts: Vec<String>,
}

impl TypeGlob {
    /// `None` for an empty pattern, which would match nothing anyone means.
    pub fn new(pattern: &str) -> Option<Self> {
        (!pattern.is_empty()).then(|| Self {
            parts: pattern.split('*').map(str::to_owned).collect(),
        })
    }

    pub fn matches(&self, event_type: &str) -> bool {
        let (first, rest) = match self.parts.split_first() {
            Some(split) => split,
            None => return false,
        };
        let Some(mut tail) = event_type.strip_prefix(first.as_str()) else {
            return false;
        };
        let Some((last, middle)) = rest.split_last() else {
            // No star: the whole type.
            return tail.is_empty();
        };
        for part in middle {
            match tail.find(part.as_str()) {
                Some(at) => tail = &tail[at + part.len()..],
                None => return false,
            }
        }
        tail.ends_with(last.as_str())
    }
}

/// A destination's filter, built at launch from its `types` and `match`.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Empty: every type.
    types: Vec<TypeGlob>,
    /// (pointer, value): all must hold.
    matches: Vec<(String, Value)>,
}

impl Filter {
    /// `table` names the config table in the error. Refused: an empty pattern, a pointer
    /// that is not one (`""` or starting with `/`), a value that is not a string, a number or
    /// a boolean.
    pub fn new(
        table: &str,
        types: &[String],
        matches: &BTreeMap<String, Value>,
    ) -> Result<Self, String> {
        let types = types
            .iter()
            .map(|pattern| {
                TypeGlob::new(pattern).ok_or_else(|| {
                    format!("{table}.types holds an empty pattern, which matches no event type")
                })
            })
            .collect::<Result<_, _>>()?;
        let matches = matches
            .iter()
            .map(|(pointer, value)| {
                if !pointer.is_empty() && !pointer.starts_with('/') {
                    return Err(format!(
                        "{table}.match: {pointer:?} is not a JSON pointer (it must start with '/')"
                    ));
                }
                if !matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
                    return Err(format!(
                        "{table}.match: the value for {pointer:?} must be a string, a number or \
                         a boolean, not {value}"
                    ));
                }
                Ok((pointer.clone(), value.clone()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { types, matches })
    }

    /// Whether the destination wants `event`. The body is parsed only when there is a `match`.
    pub fn wants(&self, event: &Event) -> bool {
        if !self.types.is_empty() && !self.types.iter().any(|t| t.matches(&event.key.event_type)) {
            return false;
        }
        if self.matches.is_empty() {
            return true;
        }
        let Some(body) = event.json() else {
            return false;
        };
        self.matches.iter().all(|(pointer, wanted)| {
            body.pointer(pointer)
                .is_some_and(|found| same_json(found, wanted))
        })
    }
}

/// Equal as JSON values: numbers by value (`1` and `1.0` are one number), everything else as
/// serde_json compares it (so a string never equals a number or a boolean).
fn same_json(found: &Value, wanted: &Value) -> bool {
    match (found, wanted) {
        (Value::Number(a), Value::Number(b)) => {
            match (a.as_i64(), b.as_i64(), a.as_u64(), b.as_u64()) {
                (Some(x), Some(y), _, _) => x == y,
                (_, _, Some(x), Some(y)) => x == y,
                _ => a.as_f64().zip(b.as_f64()).is_some_and(|(x, y)| x == y),
            }
        }
        _ => found == wanted,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn glob(p: &str) -> TypeGlob {
        TypeGlob::new(p).unwrap()
    }

    #[test]
    fn a_star_is_any_run_and_nothing_else_is_special() {
        assert!(glob("orders/*").matches("orders/create"));
        assert!(glob("orders/*").matches("orders/"));
        assert!(glob("orders/*").matches("orders/paid/partially"));
        assert!(!glob("orders/*").matches("order/create"));
        assert!(glob("*.succeeded").matches("payment_intent.succeeded"));
        assert!(glob("*").matches(""));
        assert!(glob("a*b*c").matches("a-x-b-y-c"));
        assert!(!glob("a*b*c").matches("a-x-c-y-b"));
        assert!(glob("a*a").matches("aa"));
        assert!(!glob("a*a").matches("a"));
        // Exact bytes: case, spaces and the glob crate's specials are literal.
        assert!(glob("refunds/create").matches("refunds/create"));
        assert!(!glob("refunds/create").matches("Refunds/create"));
        assert!(!glob("refunds/create").matches("refunds/create "));
        assert!(glob("a?[b]").matches("a?[b]"));
        assert!(!glob("a?[b]").matches("ax[b]"));
        assert!(TypeGlob::new("").is_none());
    }

    fn event(event_type: &str, body: &str) -> Event {
        let mut event = Event::payment("e", "o", 1, "eur");
        event.key.event_type = event_type.to_owned();
        event.body = body.as_bytes().to_vec();
        event
    }

    fn filter(types: &[&str], matches: Value) -> Result<Filter, String> {
        let types: Vec<String> = types.iter().map(|t| (*t).to_owned()).collect();
        let matches: BTreeMap<String, Value> = serde_json::from_value(matches).unwrap();
        Filter::new("t", &types, &matches)
    }

    #[test]
    fn every_match_must_hold_as_json() {
        let f = filter(
            &[],
            json!({"/status": "paid", "/amount": 1, "/test": false}),
        )
        .unwrap();
        assert!(f.wants(&event(
            "x",
            r#"{"status":"paid","amount":1.0,"test":false}"#
        )));
        assert!(!f.wants(&event(
            "x",
            r#"{"status":"paid","amount":1,"test":"false"}"#
        )));
        assert!(!f.wants(&event("x", r#"{"status":"paid","amount":2,"test":false}"#)));
        assert!(!f.wants(&event("x", r#"{"status":"paid","test":false}"#)));
        assert!(!f.wants(&event("x", "status=paid&amount=1")));
        let types_only = filter(&["orders/*"], json!({})).unwrap();
        assert!(types_only.wants(&event("orders/paid", "not json")));
        assert!(!types_only.wants(&event("customers/create", "{}")));
        assert!(filter(&[], json!({}))
            .unwrap()
            .wants(&event("any", "not json")));
    }

    #[test]
    fn big_integers_compare_exactly() {
        let f = filter(&[], json!({"/n": 9_007_199_254_740_993_u64})).unwrap();
        assert!(f.wants(&event("x", r#"{"n":9007199254740993}"#)));
        assert!(!f.wants(&event("x", r#"{"n":9007199254740992}"#)));
    }

    #[test]
    fn a_bad_filter_refuses_to_launch_naming_it() {
        let err = filter(&["a", ""], json!({})).unwrap_err();
        assert!(err.contains("t.types holds an empty pattern"), "{err}");
        let err = filter(&[], json!({"status": "paid"})).unwrap_err();
        assert!(err.contains("\"status\" is not a JSON pointer"), "{err}");
        let err = filter(&[], json!({"/a": null})).unwrap_err();
        assert!(
            err.contains("must be a string, a number or a boolean"),
            "{err}"
        );
        let err = filter(&[], json!({"/a": [1]})).unwrap_err();
        assert!(
            err.contains("must be a string, a number or a boolean"),
            "{err}"
        );
    }
}
