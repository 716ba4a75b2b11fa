//! The admin API, for operators: find events, replay them, redeliver and redrive their
//! deliveries, follow bulk jobs, and look at an order.
//!
//! - [`events`]: `GET /events`, one event's detail, replay, redeliver, bulk replay.
//! - [`destinations`]: `GET /destinations`, pause and resume one.
//! - [`jobs`]: `POST /deliveries/redrive`, `GET /jobs/<id>`.
//! - [`orders`]: `GET /orders/<id>`.
//!
//! Disabled unless `IDEMHOOK_ADMIN_TOKEN` is set; then every request needs
//! `Authorization: Bearer <token>`, or the console's session cookie and, to change state, its
//! CSRF token ([`super::auth`]). Query strings are parsed
//! strictly (`operator::filter`): an unknown or repeated parameter is a 400, never ignored.

pub mod destinations;
pub mod events;
pub mod jobs;
pub mod orders;

use rocket::Route;

pub use super::auth::{Admin, Operate};

pub fn routes() -> Vec<Route> {
    let mut routes = events::routes();
    routes.extend(destinations::routes());
    routes.extend(jobs::routes());
    routes.extend(orders::routes());
    routes
}
