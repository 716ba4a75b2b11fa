//! The console: web pages for operators, served by idemhook itself.
//!
//! - [`signin`]: `/console/login` and `/console/logout` (the admin token, then a cookie).
//! - [`overview`]: `/console`, per source the last hour and the outbox's backlog.
//! - [`events`]: `/console/events` (the list) and `/console/dead` (dead deliveries, with
//!   Redrive); [`event`]: `/console/events/<source>/<id>` (one event, with Replay /
//!   Redeliver, per destination).
//! - [`destinations`]: `/console/destinations`, each destination's state and backlog, with
//!   Pause / Resume.
//! - [`audit`]: `/console/audit`, who changed what.
//! - [`page`]: the layout and the headers every page carries.
//!
//! Server-rendered HTML, so every table is there before any script runs; one small script
//! (`assets/console.js`, no build step) draws the chart, refreshes the overview and makes the
//! buttons call the admin API with the session's CSRF token. Both files are compiled into the
//! binary.

pub mod audit;
pub mod destinations;
pub mod event;
pub mod events;
pub mod overview;
pub mod page;
pub mod signin;

use rocket::http::{ContentType, Header};
use rocket::response::Redirect;
use rocket::{get, routes, Responder, Route};

pub fn routes() -> Vec<Route> {
    routes![
        index,
        signin::login_form,
        signin::login,
        signin::logout,
        overview::page,
        overview::overview_json,
        events::list,
        events::dead,
        event::event,
        destinations::page,
        audit::page,
        script,
        stylesheet,
    ]
}

/// Opening idemhook's address in a browser shows the console.
#[get("/")]
fn index() -> Redirect {
    Redirect::to("/console")
}

#[derive(Responder)]
struct Asset {
    body: &'static str,
    kind: ContentType,
    cache: Header<'static>,
}

fn asset(body: &'static str, kind: ContentType) -> Asset {
    Asset {
        body,
        kind,
        // Short: a new release's script is picked up within minutes without a versioned URL.
        cache: Header::new("Cache-Control", "public, max-age=300"),
    }
}

#[get("/console/assets/console.js")]
fn script() -> Asset {
    asset(include_str!("assets/console.js"), ContentType::JavaScript)
}

#[get("/console/assets/console.css")]
fn stylesheet() -> Asset {
    asset(include_str!("assets/console.css"), ContentType::CSS)
}
