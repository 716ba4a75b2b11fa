//! `GET /destinations`, and `POST /destinations/<source>/<name>/pause` and `/resume`: where
//! each source's deliveries go, whether they are attempted, and what waits.

use rocket::serde::json::Json;
use rocket::{get, post, routes, Route, State};

use super::{audited, Admin, Operate};
use crate::operator::destinations::{DestinationList, DestinationView};
use crate::operator::Operator;
use crate::routes::error::{ApiError, ErrorBody};

pub fn routes() -> Vec<Route> {
    routes![list, pause, resume, discard]
}

/// Every destination: its state (`active`, `paused`, or `removed` for one no longer
/// configured whose deliveries are kept), why and since when it is paused, until when its app
/// asked for room, and its backlog.
#[utoipa::path(get, path = "/destinations", tag = "admin",
    responses(
        (status = 200, body = DestinationList),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ),
    security(("bearer" = [])))]
#[get("/destinations")]
pub async fn list(
    admin: Result<Admin, ApiError>,
    operator: &State<Operator>,
) -> Result<Json<DestinationList>, ApiError> {
    admin?;
    Ok(Json(DestinationList {
        destinations: operator.destinations().await?,
    }))
}

/// Pauses a destination on every instance: no attempt to it starts until it is resumed; its
/// deliveries wait, pending (none becomes dead), and ingestion goes on.
#[utoipa::path(post, path = "/destinations/{source}/{name}/pause", tag = "admin",
    params(
        ("source" = String, Path), ("name" = String, Path, description = "`forward` for a source's forward table"),
        ("Idemhook-Operator" = Option<String>, Header, description = "Who is asking; logged"),
    ),
    responses(
        (status = 200, body = DestinationView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "No such destination is configured", body = ErrorBody),
        (status = 503, body = ErrorBody),
    ),
    security(("bearer" = [])))]
#[post("/destinations/<source>/<name>/pause")]
pub async fn pause(
    admin: Result<Operate, ApiError>,
    source: &str,
    name: &str,
    operator: &State<Operator>,
) -> Result<Json<DestinationView>, ApiError> {
    set_paused(admin, source, name, true, operator).await
}

/// Resumes a paused destination: its waiting deliveries go, oldest due first.
#[utoipa::path(post, path = "/destinations/{source}/{name}/resume", tag = "admin",
    params(
        ("source" = String, Path), ("name" = String, Path),
        ("Idemhook-Operator" = Option<String>, Header, description = "Who is asking; logged"),
    ),
    responses(
        (status = 200, body = DestinationView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "No such destination is configured", body = ErrorBody),
        (status = 503, body = ErrorBody),
    ),
    security(("bearer" = [])))]
#[post("/destinations/<source>/<name>/resume")]
pub async fn resume(
    admin: Result<Operate, ApiError>,
    source: &str,
    name: &str,
    operator: &State<Operator>,
) -> Result<Json<DestinationView>, ApiError> {
    set_paused(admin, source, name, false, operator).await
}

/// Ends the pending deliveries of a destination that is no longer configured (listed as
/// `removed`): they become dead, kept, and redeliverable (a redrive) should it come back.
#[utoipa::path(post, path = "/destinations/{source}/{name}/discard", tag = "admin",
    params(
        ("source" = String, Path), ("name" = String, Path),
        ("Idemhook-Operator" = Option<String>, Header, description = "Who is asking; logged"),
    ),
    responses(
        (status = 200, body = DestinationView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "No such destination", body = ErrorBody),
        (status = 409, description = "The destination is configured: pause it instead", body = ErrorBody),
        (status = 503, body = ErrorBody),
    ),
    security(("bearer" = [])))]
#[post("/destinations/<source>/<name>/discard")]
pub async fn discard(
    admin: Result<Operate, ApiError>,
    source: &str,
    name: &str,
    operator: &State<Operator>,
) -> Result<Json<DestinationView>, ApiError> {
    let change = admin?.change(format!("{source}/{name}"), serde_json::json!({}));
    let done = audited(operator, &change, async {
        Ok(operator.discard(source, name, &change).await?)
    });
    Ok(Json(done.await?))
}

async fn set_paused(
    admin: Result<Operate, ApiError>,
    source: &str,
    name: &str,
    pause: bool,
    operator: &Operator,
) -> Result<Json<DestinationView>, ApiError> {
    let change = admin?.change(format!("{source}/{name}"), serde_json::json!({}));
    let done = audited(operator, &change, async {
        Ok(operator.set_paused(source, name, pause, &change).await?)
    });
    Ok(Json(done.await?))
}
