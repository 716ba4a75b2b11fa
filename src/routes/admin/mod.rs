//! The admin API, for operators: find events, replay them, redeliver and redrive their
//! deliveries, follow bulk jobs, and look at an order.
//!
//! - [`events`]: `GET /events`, one event's detail, replay, redeliver, bulk replay.
//! - [`destinations`]: `GET /destinations`, pause and resume one.
//! - [`jobs`]: `POST /deliveries/redrive`, `GET /jobs/<id>`.
//! - [`orders`]: `GET /orders/<id>`.
//! - [`audit`]: `GET /audit`, who changed what.
//!
//! Disabled unless `IDEMHOOK_ADMIN_TOKEN` is set; then every request needs
//! `Authorization: Bearer <token>`, or the console's session cookie and, to change state, its
//! CSRF token ([`super::auth`]). Query strings are parsed
//! strictly (`operator::filter`): an unknown or repeated parameter is a 400, never ignored.

pub mod audit;
pub mod destinations;
pub mod events;
pub mod jobs;
pub mod orders;

use std::future::Future;

use rocket::Route;

pub use super::auth::{Admin, Operate};
use super::error::ApiError;
use crate::operator::audit::Change;
use crate::operator::Operator;

pub fn routes() -> Vec<Route> {
    let mut routes = events::routes();
    routes.extend(destinations::routes());
    routes.extend(jobs::routes());
    routes.extend(orders::routes());
    routes.extend(audit::routes());
    routes
}

/// Runs `work`, the change `change` asks for. A change that happens writes its own audit row,
/// in its transaction; one that is refused here (a bad parameter, 404, 409, 422, …) is
/// audited now, with the refusal.
pub async fn audited<T>(
    operator: &Operator,
    change: &Change,
    work: impl Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    let result = work.await;
    if let Err(err) = &result {
        operator.record(change, outcome(err)).await;
    }
    result
}

/// How the audit names a refusal.
fn outcome(err: &ApiError) -> &'static str {
    match err.status().code {
        400 => "bad_request",
        404 => "not_found",
        409 => "conflict",
        422 => "not_applied",
        503 => "unavailable",
        _ => "error",
    }
}
