//! The HTTP surface. Each file is one part of the URL tree:
//!
//! - [`webhooks`]: `POST /webhooks/<source>`, the ingest path.
//! - [`admin`]: the operators' API behind a bearer token (search, replay, redrive, jobs).
//! - [`console`]: the operators' web pages (`/`, `/console/…`), over the same functions.
//! - [`auth`]: who may use either (the admin token, the console's cookie, CSRF).
//! - [`pull`]: a `pull` destination's consumer leases, acks and nacks its deliveries.
//! - [`health`]: liveness and readiness.
//! - [`metrics`]: Prometheus metrics.
//! - [`openapi`]: the OpenAPI document of all of the above.
//! - [`error`]: the one mapping of every failure to an HTTP answer and a metric.
//!
//! Every error, including Rocket's own (unknown route, body too large), answers JSON.

use rocket::http::Status;
use rocket::{catch, catchers, Catcher, Request, Route};

use error::JsonError;

pub mod admin;
pub mod auth;
pub mod console;
pub mod error;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod pull;
pub mod webhooks;

pub fn all() -> Vec<Route> {
    let mut routes = webhooks::routes();
    routes.extend(admin::routes());
    routes.extend(console::routes());
    routes.extend(health::routes());
    routes.extend(metrics::routes());
    routes.extend(openapi::routes());
    routes.extend(pull::routes());
    routes
}

pub fn catchers() -> Vec<Catcher> {
    catchers![default_catcher]
}

/// Answers errors raised by Rocket itself (no route, a failed guard, a body over a limit) in
/// the same `{"error": …}` shape as ours.
#[catch(default)]
fn default_catcher(status: Status, _req: &Request<'_>) -> JsonError {
    let message = match status.code {
        404 => "no such endpoint",
        413 => "the body is larger than the limit",
        code if code >= 500 => "internal error",
        _ => status.reason().unwrap_or("request refused"),
    };
    JsonError::new(status, message)
}
