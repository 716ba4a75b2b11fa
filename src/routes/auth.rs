//! Who may use the admin API and the console, in one place.
//!
//! Two credentials, one secret (`IDEMHOOK_ADMIN_TOKEN`):
//!
//! - `Authorization: Bearer <token>`, for scripts and the CLI.
//! - The console's session cookie, set when an operator signs in with the token. It holds no
//!   secret: `<issued unix seconds>.<HMAC-SHA256(token, issued)>`, so any instance behind a
//!   load balancer verifies it without shared state, it expires after [`SESSION_SECS`], and
//!   rotating the token signs every session out. It is `HttpOnly` (page scripts cannot read
//!   it), `SameSite=Strict` (another site's page cannot send it) and `Secure` over https.
//!
//! A browser sends a cookie on its own; a bearer header it never invents. So a request that
//! came in on the cookie and changes state (any method but GET/HEAD) must also carry the
//! session's CSRF token in `X-CSRF-Token` (or a form's `csrf` field, for sign-out): an HMAC
//! of the session under the token, which only the console's own pages are given. Without it
//! the request is refused 403, whatever `SameSite` a browser does or does not enforce.

use hmac::{Hmac, KeyInit, Mac};
use rocket::http::{Cookie, CookieJar, Method, SameSite, Status};
use rocket::request::{FromRequest, Outcome, Request};
use subtle::ConstantTimeEq;

use crate::clock::Clock;
use crate::event::key::sha256;
use crate::routes::error::ApiError;

/// The admin token, if the admin API is enabled.
pub struct AdminToken(pub Option<String>);

/// The console's session cookie.
pub const SESSION_COOKIE: &str = "idemhook_session";
/// The header a cookie-authenticated request that changes state carries its CSRF token in.
pub const CSRF_HEADER: &str = "X-CSRF-Token";
/// How long a console session lasts.
pub const SESSION_SECS: i64 = 12 * 3600;
/// What the console tells an operator when the admin API is off.
pub const DISABLED: &str = "the admin API is disabled: set IDEMHOOK_ADMIN_TOKEN to enable it";

/// The longest operator name recorded.
const MAX_OPERATOR_CHARS: usize = 200;

/// Proof that the request carried the admin token (or a session made with it), and who says
/// they are asking: the `Idemhook-Operator` header (recorded with replays and jobs), else
/// `admin` (bearer) or `console` (cookie).
pub struct Admin {
    pub operator: String,
}

/// A signed-in console session, for the console's pages: the cookie's value and the CSRF
/// token its pages embed.
pub struct Session {
    pub csrf: String,
}

impl AdminToken {
    fn mac(&self, purpose: &str, value: &str) -> Option<String> {
        let token = self.0.as_deref()?;
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(token.as_bytes()).ok()?;
        mac.update(purpose.as_bytes());
        mac.update(b"\0");
        mac.update(value.as_bytes());
        Some(hex::encode(mac.finalize().into_bytes()))
    }

    /// Whether `presented` is the token, compared in constant time (digests first, so the
    /// time does not depend on the presented length either).
    pub fn matches(&self, presented: &str) -> bool {
        self.0.as_deref().is_some_and(|expected| {
            bool::from(sha256(presented.as_bytes()).ct_eq(&sha256(expected.as_bytes())))
        })
    }

    /// A new session cookie's value, issued at `now` (unix seconds).
    pub fn issue(&self, now: i64) -> Option<String> {
        let issued = now.to_string();
        let mac = self.mac("idemhook console session v1", &issued)?;
        Some(format!("{issued}.{mac}"))
    }

    /// Whether `cookie` is a session this token issued, no longer than [`SESSION_SECS`] ago.
    pub fn valid_session(&self, cookie: &str, now: i64) -> bool {
        let Some((issued, mac)) = cookie.split_once('.') else {
            return false;
        };
        let Ok(at) = issued.parse::<i64>() else {
            return false;
        };
        let fresh = at <= now + 60 && now - at <= SESSION_SECS;
        let expected = self.mac("idemhook console session v1", issued);
        fresh && expected.is_some_and(|e| bool::from(e.as_bytes().ct_eq(mac.as_bytes())))
    }

    /// The CSRF token of the session `cookie`.
    pub fn csrf(&self, cookie: &str) -> Option<String> {
        self.mac("idemhook console csrf v1", cookie)
    }

    /// Whether `presented` is the CSRF token of `cookie`.
    pub fn valid_csrf(&self, cookie: &str, presented: &str) -> bool {
        self.csrf(cookie)
            .is_some_and(|e| bool::from(e.as_bytes().ct_eq(presented.as_bytes())))
    }
}

/// The session cookie for `value`: `Secure` when the request came over https (TLS here, or
/// a proxy's `X-Forwarded-Proto: https`).
pub fn session_cookie(req_https: bool, value: String) -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(req_https)
        .max_age(rocket::time::Duration::seconds(SESSION_SECS))
        .build()
}

/// Whether the request reached us over https, directly or through a proxy that says so.
pub fn over_https(req: &Request<'_>) -> bool {
    req.rocket().config().tls_enabled()
        || req
            .headers()
            .get_one("X-Forwarded-Proto")
            .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// The valid session cookie of the request, if any.
fn session_of(cookies: &CookieJar<'_>, token: &AdminToken, now: i64) -> Option<String> {
    cookies
        .get(SESSION_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| token.valid_session(v, now))
}

fn now_of(req: &Request<'_>) -> i64 {
    req.rocket()
        .state::<Clock>()
        .map_or_else(|| chrono::Utc::now().timestamp(), |c| c.now().timestamp())
}

fn refuse<T>(status: Status, err: ApiError) -> Outcome<T, ApiError> {
    Outcome::Error((status, err))
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Admin {
    type Error = ApiError;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, ApiError> {
        let Some(token) = req.rocket().state::<AdminToken>().filter(|t| t.0.is_some()) else {
            return refuse(Status::Forbidden, ApiError::Forbidden(DISABLED.to_owned()));
        };
        let default_operator = match req.headers().get_one("Authorization") {
            Some(h) => match h.strip_prefix("Bearer ") {
                Some(presented) if token.matches(presented) => "admin",
                _ => {
                    return refuse(
                        Status::Unauthorized,
                        ApiError::Unauthorized("missing or wrong bearer token".to_owned()),
                    )
                }
            },
            None => {
                let Some(session) = session_of(req.cookies(), token, now_of(req)) else {
                    return refuse(
                        Status::Unauthorized,
                        ApiError::Unauthorized("missing or wrong bearer token".to_owned()),
                    );
                };
                let changes_state = !matches!(req.method(), Method::Get | Method::Head);
                let csrf_ok = req
                    .headers()
                    .get_one(CSRF_HEADER)
                    .is_some_and(|c| token.valid_csrf(&session, c));
                if changes_state && !csrf_ok {
                    return refuse(
                        Status::Forbidden,
                        ApiError::Forbidden(format!(
                            "a signed-in console request that changes state needs its CSRF \
                             token in {CSRF_HEADER}"
                        )),
                    );
                }
                "console"
            }
        };
        let operator = req
            .headers()
            .get_one("Idemhook-Operator")
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map_or_else(
                || default_operator.to_owned(),
                // A label for logs and the audit: no control characters in either.
                |o| {
                    o.chars()
                        .filter(|c| !c.is_control())
                        .take(MAX_OPERATOR_CHARS)
                        .collect()
                },
            );
        Outcome::Success(Admin { operator })
    }
}

/// Why a console page cannot be shown to this request.
#[derive(Debug)]
pub enum NoSession {
    /// `IDEMHOOK_ADMIN_TOKEN` is not set.
    Disabled,
    /// No valid session cookie: sign in.
    SignedOut,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Session {
    type Error = NoSession;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, NoSession> {
        let Some(token) = req.rocket().state::<AdminToken>().filter(|t| t.0.is_some()) else {
            return Outcome::Error((Status::Forbidden, NoSession::Disabled));
        };
        match session_of(req.cookies(), token, now_of(req)).and_then(|s| token.csrf(&s)) {
            Some(csrf) => Outcome::Success(Session { csrf }),
            None => Outcome::Error((Status::Unauthorized, NoSession::SignedOut)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> AdminToken {
        AdminToken(Some("s3cret-token".into()))
    }

    #[test]
    fn a_session_is_valid_for_its_token_and_lifetime_only() {
        let t = token();
        let cookie = t.issue(1_000_000).unwrap();
        assert!(t.valid_session(&cookie, 1_000_000));
        assert!(t.valid_session(&cookie, 1_000_000 + SESSION_SECS));
        assert!(
            !t.valid_session(&cookie, 1_000_001 + SESSION_SECS),
            "expired"
        );
        assert!(!AdminToken(Some("other".into())).valid_session(&cookie, 1_000_000));
        let (issued, mac) = cookie.split_once('.').unwrap();
        let later = format!("{}.{mac}", issued.parse::<i64>().unwrap() + 3600);
        assert!(!t.valid_session(&later, 1_000_000), "issued time is signed");
        assert!(!t.valid_session("garbage", 1_000_000));
        assert!(!AdminToken(None).valid_session(&cookie, 1_000_000));
    }

    #[test]
    fn the_csrf_token_belongs_to_its_session() {
        let t = token();
        let a = t.issue(1).unwrap();
        let b = t.issue(2).unwrap();
        let csrf = t.csrf(&a).unwrap();
        assert!(t.valid_csrf(&a, &csrf));
        assert!(!t.valid_csrf(&b, &csrf));
        assert!(!t.valid_csrf(&a, ""));
    }
}
