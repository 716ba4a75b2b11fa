//! Who may use the admin API and the console, in one place.
//!
//! Named operators (`[idemhook.operators.<name>]`, [`operators`]), each with a role: `read`
//! (search, views) or `operate` (also everything that changes state). `IDEMHOOK_ADMIN_TOKEN`
//! is the operator `admin`, role `operate`. Two credentials:
//!
//! - `Authorization: Bearer <token>`, for scripts and the CLI.
//! - The console's session cookie, set when an operator signs in with their token. It holds
//!   no secret: `<operator>.<issued unix seconds>.<HMAC(token, operator, issued)>`, so any
//!   instance behind a load balancer verifies it without shared state, it expires after
//!   [`SESSION_SECS`], and removing a token signs out the sessions made with it. It is
//!   `HttpOnly` (page scripts cannot read it), `SameSite=Strict` (another site's page cannot
//!   send it) and `Secure` over https.
//!
//! A browser sends a cookie on its own; a bearer header it never invents. So a request that
//! came in on the cookie and changes state (any method but GET/HEAD) must also carry the
//! session's CSRF token in `X-CSRF-Token` (or a form's `csrf` field, for sign-out): an HMAC
//! of the session under the operator's token, which only the console's own pages are given.
//! Without it the request is refused 403, whatever `SameSite` a browser does or does not
//! enforce.
//!
//! Wrong tokens are counted per client address ([`guessing`]): past the limit the address is
//! answered 429 until its minute ends.

mod failure_log;
mod guessing;
mod operators;

use std::net::IpAddr;

use rocket::http::{Cookie, Method, SameSite, Status};
use rocket::request::{FromRequest, Outcome, Request};

pub use failure_log::FailureLog;
pub use guessing::{Credential, Guessing};
pub use operators::{Identity, Operators, SESSION_SECS};

use crate::clock::Clock;
use crate::config::Role;
use crate::operator::audit::{Action, Actor, Change};
use crate::operator::Operator;
use crate::routes::error::ApiError;

/// The console's session cookie.
pub const SESSION_COOKIE: &str = "idemhook_session";
/// The header a cookie-authenticated request that changes state carries its CSRF token in.
pub const CSRF_HEADER: &str = "X-CSRF-Token";
/// What the console tells an operator when the admin API is off.
pub const DISABLED: &str = "the admin API is disabled: set IDEMHOOK_ADMIN_TOKEN, or configure \
                            [idemhook.operators], to enable it";

/// The longest `on_behalf_of` note recorded.
const MAX_NOTE_CHARS: usize = 200;

/// Proof that the request carried an operator's token (or a session made with it): who they
/// are, their role, and the free-text `Idemhook-Operator` header, kept beside the name as a
/// note of whom they act for (it never names who acted).
pub struct Admin {
    pub operator: String,
    pub role: Role,
    pub on_behalf_of: Option<String>,
    /// The client address (see [`guessing`]), for the audit.
    pub client: Option<IpAddr>,
}

impl Admin {
    /// Who this is, for the audit.
    pub fn actor(&self) -> Actor {
        Actor {
            operator: self.operator.clone(),
            role: self.role,
            on_behalf_of: self.on_behalf_of.clone(),
            client: self.client,
        }
    }

    /// The change `action` on `target` with `params`, as this operator asks for it.
    pub fn change(&self, action: Action, target: String, params: serde_json::Value) -> Change {
        Change {
            actor: self.actor(),
            action,
            target,
            params,
        }
    }
}

/// An [`Admin`] whose role may change state (`operate`), and the change its route makes
/// (named once, by the route: [`attempted`]); a `read` operator is refused 403, and audited.
pub struct Operate {
    pub admin: Admin,
    pub action: Action,
}

impl Operate {
    /// This request's change on `target` with `params`, for the audit.
    pub fn change(&self, target: String, params: serde_json::Value) -> Change {
        self.admin.change(self.action, target, params)
    }
}

/// A signed-in console session, for the console's pages: who, and the CSRF token its pages
/// embed.
pub struct Session {
    pub csrf: String,
    pub operator: String,
    pub role: Role,
}

impl Session {
    /// Whether the console shows this operator the buttons that change state.
    pub fn may_operate(&self) -> bool {
        self.role == Role::Operate
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

pub fn now_of(req: &Request<'_>) -> i64 {
    req.rocket()
        .state::<Clock>()
        .map_or_else(|| chrono::Utc::now().timestamp(), |c| c.now().timestamp())
}

fn refuse<T>(err: ApiError) -> Outcome<T, ApiError> {
    Outcome::Error((err.status(), err))
}

/// The 429 for an address that guessed too often.
pub fn too_many(retry_after_secs: u32) -> ApiError {
    ApiError::TooManyRequests {
        message: "too many failed authentications from this address; retry later".into(),
        retry_after_secs,
    }
}

/// The request's client address and the guessing limits, for a route that checks a token.
pub struct Guard<'r> {
    guessing: Option<&'r Guessing>,
    client: Option<IpAddr>,
}

impl Guard<'_> {
    /// The client address, when the request has a peer.
    pub fn client(&self) -> Option<IpAddr> {
        self.client
    }

    /// The seconds until the client may try again, when it has used up its failures.
    pub fn retry_after(&self, credential: Credential) -> Option<u32> {
        self.guessing?.throttled(self.client?, credential)
    }

    /// 429 when the client has used up its failures.
    pub fn check(&self, credential: Credential) -> Result<(), ApiError> {
        self.retry_after(credential)
            .map_or(Ok(()), |s| Err(too_many(s)))
    }

    /// Counts a wrong token from the client.
    pub fn failed(&self, credential: Credential) {
        if let (Some(g), Some(ip)) = (self.guessing, self.client) {
            g.failed(ip, credential);
        }
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Guard<'r> {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let guessing = req.rocket().state::<Guessing>();
        Outcome::Success(Guard {
            guessing,
            client: guessing.and_then(|g| g.client(req)),
        })
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Admin {
    type Error = ApiError;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, ApiError> {
        let Some(operators) = req.rocket().state::<Operators>().filter(|o| o.enabled()) else {
            return refuse(ApiError::Forbidden(DISABLED.to_owned()));
        };
        let guard = match Guard::from_request(req).await {
            Outcome::Success(g) => g,
            _ => return refuse(ApiError::internal("no client address guard")),
        };
        if let Err(e) = guard.check(Credential::Bearer) {
            return refuse(e);
        }
        let wrong = || ApiError::Unauthorized("missing or wrong bearer token".to_owned());
        let identity = match req.headers().get_one("Authorization") {
            Some(h) => match h
                .strip_prefix("Bearer ")
                .and_then(|t| operators.authenticate(t))
            {
                Some(identity) => identity,
                None => {
                    guard.failed(Credential::Bearer);
                    return refuse(wrong());
                }
            },
            None => {
                let Some(cookie) = req.cookies().get(SESSION_COOKIE).map(|c| c.value()) else {
                    return refuse(wrong());
                };
                let now = now_of(req);
                let Some(session) = operators.session(cookie, now) else {
                    return refuse(wrong());
                };
                let changes_state = !matches!(req.method(), Method::Get | Method::Head);
                let csrf_ok = req
                    .headers()
                    .get_one(CSRF_HEADER)
                    .is_some_and(|c| session.csrf_matches(c));
                if changes_state && !csrf_ok {
                    return refuse(ApiError::Forbidden(format!(
                        "a signed-in console request that changes state needs its CSRF token \
                         in {CSRF_HEADER}"
                    )));
                }
                session.identity
            }
        };
        let on_behalf_of = req
            .headers()
            .get_one("Idemhook-Operator")
            .map(str::trim)
            .filter(|o| !o.is_empty())
            // A note for logs and the audit: no control characters in it.
            .map(|o| {
                o.chars()
                    .filter(|c| !c.is_control())
                    .take(MAX_NOTE_CHARS)
                    .collect()
            });
        Outcome::Success(Admin {
            operator: identity.name,
            role: identity.role,
            on_behalf_of,
            client: guard.client,
        })
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Operate {
    type Error = ApiError;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, ApiError> {
        let admin = match Admin::from_request(req).await {
            Outcome::Success(admin) => admin,
            Outcome::Error(e) => return Outcome::Error(e),
            Outcome::Forward(f) => return Outcome::Forward(f),
        };
        let Some(action) = attempted(req) else {
            return refuse(ApiError::internal(
                "a route behind the Operate guard is not named in `attempted`",
            ));
        };
        if admin.role != Role::Operate {
            // Audited as that operator, one row per attempt.
            if let Some(operator) = req.rocket().state::<Operator>() {
                let target = req.uri().path().to_string();
                let params =
                    serde_json::json!({ "query": req.uri().query().map(|q| q.to_string()) });
                operator
                    .record(&admin.change(action, target, params), "forbidden")
                    .await;
            }
            return refuse(ApiError::Forbidden(format!(
                "operator {:?} has role {}: this needs role operate",
                admin.operator,
                admin.role.as_str()
            )));
        }
        // Who changed what, whoever they say they act for (the audit's line in the log).
        tracing::info!(
            operator = %admin.operator,
            on_behalf_of = admin.on_behalf_of.as_deref().unwrap_or(""),
            method = %req.method(),
            path = %req.uri().path(),
            "an operator's change"
        );
        Outcome::Success(Operate { admin, action })
    }
}

/// The change a state-changing route makes, by the route's name.
fn attempted(req: &Request<'_>) -> Option<Action> {
    let name = req.route()?.name.as_deref()?;
    Some(match name {
        "replay_one" if req.query_value::<&str>("force").and_then(Result::ok) == Some("true") => {
            Action::ForcedReplay
        }
        "replay_one" => Action::Replay,
        "redeliver" => Action::Redeliver,
        "replay_many" => Action::ReplayJob,
        "redrive" => Action::RedriveJob,
        "pause" => Action::Pause,
        "resume" => Action::Resume,
        "discard" => Action::Discard,
        _ => return None,
    })
}

/// Why a console page cannot be shown to this request.
#[derive(Debug)]
pub enum NoSession {
    /// No operator is configured.
    Disabled,
    /// No valid session cookie: sign in.
    SignedOut,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Session {
    type Error = NoSession;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, NoSession> {
        let Some(operators) = req.rocket().state::<Operators>().filter(|o| o.enabled()) else {
            return Outcome::Error((Status::Forbidden, NoSession::Disabled));
        };
        let Some(cookie) = req.cookies().get(SESSION_COOKIE).map(|c| c.value()) else {
            return Outcome::Error((Status::Unauthorized, NoSession::SignedOut));
        };
        match operators.session(cookie, now_of(req)) {
            Some(session) => Outcome::Success(Session {
                csrf: session.csrf(),
                operator: session.identity.name,
                role: session.identity.role,
            }),
            None => Outcome::Error((Status::Unauthorized, NoSession::SignedOut)),
        }
    }
}
