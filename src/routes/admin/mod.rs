//! The admin API, for operators: find events, replay them, redeliver and redrive their
//! deliveries, follow bulk jobs, and look at an order.
//!
//! - [`events`]: `GET /events`, one event's detail, replay, redeliver, bulk replay.
//! - [`jobs`]: `POST /deliveries/redrive`, `GET /jobs/<id>`.
//! - [`orders`]: `GET /orders/<id>`.
//!
//! Disabled unless `IDEMHOOK_ADMIN_TOKEN` is set; then every request needs
//! `Authorization: Bearer <token>`, compared in constant time. Query strings are parsed
//! strictly (`operator::filter`): an unknown or repeated parameter is a 400, never ignored.

pub mod events;
pub mod jobs;
pub mod orders;

use rocket::http::Status;
use rocket::request::{FromRequest, Outcome, Request};
use rocket::Route;
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::event::key::sha256;

pub fn routes() -> Vec<Route> {
    let mut routes = events::routes();
    routes.extend(jobs::routes());
    routes.extend(orders::routes());
    routes
}

/// The admin token, if the admin API is enabled.
pub struct AdminToken(pub Option<String>);

/// Proof that the request carried the admin token, and who says they are asking: the
/// `Idemhook-Operator` header (recorded with replays and jobs), or `admin`.
pub struct Admin {
    pub operator: String,
}

/// The longest operator name recorded.
const MAX_OPERATOR_CHARS: usize = 200;

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Admin {
    type Error = ApiError;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, ApiError> {
        let expected = match req
            .rocket()
            .state::<AdminToken>()
            .and_then(|t| t.0.as_deref())
        {
            Some(token) => token,
            None => {
                return Outcome::Error((
                    Status::Forbidden,
                    ApiError::Forbidden(
                        "the admin API is disabled: set IDEMHOOK_ADMIN_TOKEN to enable it"
                            .to_owned(),
                    ),
                ))
            }
        };
        let presented = req
            .headers()
            .get_one("Authorization")
            .and_then(|h| h.strip_prefix("Bearer "));
        // Digests first, so the comparison takes the same time whatever the presented length.
        let ok = presented
            .is_some_and(|p| bool::from(sha256(p.as_bytes()).ct_eq(&sha256(expected.as_bytes()))));
        if !ok {
            return Outcome::Error((
                Status::Unauthorized,
                ApiError::Unauthorized("missing or wrong bearer token".to_owned()),
            ));
        }
        let operator = req
            .headers()
            .get_one("Idemhook-Operator")
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map_or_else(
                || "admin".to_owned(),
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
