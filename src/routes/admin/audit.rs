//! `GET /audit`: who changed what, newest first, one page at a time (`operator::audit`).
//! Open to every operator, `read` included.

use rocket::http::uri::Origin;
use rocket::serde::json::Json;
use rocket::{get, routes, Route, State};

use super::Admin;
use crate::operator::audit::{AuditPage, AuditQuery};
use crate::operator::Operator;
use crate::routes::error::{ApiError, ErrorBody};

pub fn routes() -> Vec<Route> {
    routes![audit]
}

/// The audit: each change made through the admin API, the CLI or the console (its outcome,
/// who, on whose behalf, from where), sign-ins, sign-outs, refusals, and failed
/// authentications counted per address and minute.
#[utoipa::path(get, path = "/audit", tag = "admin",
    params(
        ("operator" = Option<String>, Query, description = "Only this operator's entries"),
        ("action" = Option<String>, Query, description = "replay, forced_replay, redeliver, replay_job, redrive_job, pause, resume, discard, sign_in, sign_out or auth_failed"),
        ("since" = Option<String>, Query, format = DateTime, description = "RFC 3339; entries at or after"),
        ("until" = Option<String>, Query, format = DateTime, description = "RFC 3339; entries before"),
        ("limit" = Option<u32>, Query, description = "Page size, 1 to 500 (default 50)", minimum = 1, maximum = 500),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, body = AuditPage),
        (status = 400, description = "An unknown, repeated or malformed parameter", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ),
    security(("bearer" = [])))]
#[get("/audit")]
pub async fn audit(
    admin: Result<Admin, ApiError>,
    uri: &Origin<'_>,
    operator: &State<Operator>,
) -> Result<Json<AuditPage>, ApiError> {
    admin?;
    let query = AuditQuery::parse(uri.query().map(|q| q.as_str()))?;
    Ok(Json(operator.audit(&query).await?))
}
