//! What every console page shares: the layout, the headers that make an injected script
//! inert, and the answer for a visitor who is not signed in.
//!
//! Every value is written through maud's `(…)` interpolation, which escapes `<`, `>`, `&`
//! and quotes: a payload, an event id or a handler's error message is text, never markup.
//! The Content-Security-Policy is the second wall: the only scripts that run are the
//! console's own file, so even markup that slipped through could not execute.

use std::io::Cursor;

use maud::{html, Markup, DOCTYPE};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rocket::http::{ContentType, Status};
use rocket::response::{self, Redirect, Responder};
use rocket::{Request, Response};

use crate::routes::auth::{NoSession, Session};

/// Only the console's own files, from this origin; no inline script or style, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// An HTML page with the console's security headers.
pub struct Page {
    pub status: Status,
    pub markup: Markup,
    /// `Retry-After`, for a 429.
    pub retry_after: Option<u32>,
}

impl Page {
    pub fn ok(markup: Markup) -> Self {
        Page {
            status: Status::Ok,
            markup,
            retry_after: None,
        }
    }
}

impl<'r> Responder<'r, 'static> for Page {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let body = self.markup.into_string();
        let mut response = Response::build();
        if let Some(secs) = self.retry_after {
            response.raw_header("Retry-After", secs.to_string());
        }
        response
            .status(self.status)
            .header(ContentType::HTML)
            .raw_header("Content-Security-Policy", CSP)
            .raw_header("X-Content-Type-Options", "nosniff")
            .raw_header("X-Frame-Options", "DENY")
            .raw_header("Referrer-Policy", "no-referrer")
            .raw_header("Cache-Control", "no-store")
            .sized_body(body.len(), Cursor::new(body))
            .ok()
    }
}

/// A page for a visitor without a session: how to enable the admin API, or the sign-in form.
#[derive(Responder)]
pub enum Gate {
    Disabled(Page),
    SignIn(Box<Redirect>),
}

impl From<NoSession> for Gate {
    fn from(why: NoSession) -> Self {
        match why {
            NoSession::Disabled => Gate::Disabled(disabled()),
            NoSession::SignedOut => Gate::SignIn(Box::new(Redirect::to("/console/login"))),
        }
    }
}

/// The console's answer when `IDEMHOOK_ADMIN_TOKEN` is not set.
pub fn disabled() -> Page {
    Page {
        status: Status::Forbidden,
        retry_after: None,
        markup: layout(
            "Admin API disabled",
            None,
            html! {
                p { "The console and the admin API are disabled on this instance." }
                p {
                    "To enable them, set " code { "IDEMHOOK_ADMIN_TOKEN" }
                    " to a long random secret in idemhook's environment and restart it, e.g. "
                    code { "IDEMHOOK_ADMIN_TOKEN=$(openssl rand -hex 32)" } ". "
                    "Then sign in here with that token. Named operators with roles are "
                    code { "[default.idemhook.operators.<name>]" } " tables in Rocket.toml."
                }
            },
        ),
    }
}

/// The page frame: title, navigation, and the session's CSRF token for the console's script.
pub fn layout(title: &str, session: Option<&Session>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(session) = session {
                    meta name="csrf-token" content=(session.csrf);
                }
                title { (title) " · idemhook" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                header {
                    a.brand href="/console" { "idemhook" }
                    @if let Some(session) = session {
                        nav {
                            a href="/console" { "Overview" }
                            a href="/console/events" { "Events" }
                            a href="/console/dead" { "Dead deliveries" }
                            a href="/console/destinations" { "Destinations" }
                            a href="/console/audit" { "Audit" }
                            span.who title="Signed in" {
                                (session.operator) " (" (session.role.as_str()) ")"
                            }
                            form.signout method="post" action="/console/logout" {
                                input type="hidden" name="csrf" value=(session.csrf);
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// What a path segment must escape (everything but unreserved characters).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `s` percent-encoded for a path segment or a query value.
pub fn encode(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// The console's page of one event.
pub fn event_href(source: &str, event_type: &str, event_id: &str) -> String {
    format!(
        "/console/events/{}/{}?type={}",
        encode(source),
        encode(event_id),
        encode(event_type)
    )
}

/// The admin API's path of one event (`/webhooks/<source>/events/<id>`), for the buttons.
pub fn api_path(source: &str, event_id: &str) -> String {
    format!("/webhooks/{}/events/{}", encode(source), encode(event_id))
}

/// An instant as the console shows it: `2026-11-29 12:00:01` (UTC).
pub fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A duration in seconds as `42 s`, `3 min 5 s`, `2 h 10 min`.
pub fn age(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min {} s", s / 60, s % 60),
        s => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolated_values_are_text() {
        let hostile = r#"<script>alert(1)</script><img src=x onerror="alert(2)">"#;
        let html = html! { pre { (hostile) } a href=(event_href("s", "t", hostile)) { "x" } }
            .into_string();
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
    }

    #[test]
    fn hrefs_encode_every_part() {
        assert_eq!(
            event_href("shop", "order paid", "a/b?c&d"),
            "/console/events/shop/a%2Fb%3Fc%26d?type=order%20paid"
        );
        assert_eq!(age(59), "59 s");
        assert_eq!(age(185), "3 min 5 s");
        assert_eq!(age(7800), "2 h 10 min");
    }
}
