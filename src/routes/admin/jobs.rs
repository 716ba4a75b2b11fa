//! Bulk jobs: `POST /deliveries/redrive` starts one, `GET /jobs/<id>` follows it. The job
//! lives in the database (`operator::jobs`), so any instance answers for it.

use rocket::http::uri::Origin;
use rocket::http::Status;
use rocket::response::status;
use rocket::serde::json::Json;
use rocket::{get, post, routes, Route, State};
use sea_orm::DatabaseConnection;

use super::Admin;
use crate::clock::Clock;
use crate::operator::filter::{pairs, Filters, FILTER_PARAMS};
use crate::operator::jobs::{self, JobView, REDRIVE};
use crate::operator::runner::JobsWake;
use crate::operator::OperatorLimits;
use crate::routes::error::{ApiError, ErrorBody};

pub fn routes() -> Vec<Route> {
    routes![redrive, job]
}

/// Starts a `kind` job over the filters in the query string, and wakes this instance's
/// runner for it.
pub async fn start_job(
    admin: Admin,
    kind: &str,
    uri: &Origin<'_>,
    db: &State<DatabaseConnection>,
    clock: &State<Clock>,
    runner: &State<JobsWake>,
    limits: &State<OperatorLimits>,
) -> Result<status::Custom<Json<JobView>>, ApiError> {
    let mut params = pairs(uri.query().map(|q| q.as_str()), &FILTER_PARAMS)?;
    let filters = jobs::job_filters(kind, Filters::take(&mut params)?)?;
    // Counting what matches is a read like a list's, bounded the same way.
    let txn = limits.begin(db.inner()).await?;
    let matched = jobs::count(&txn, &filters).await?;
    txn.commit().await?;
    let job = jobs::create(
        db.inner(),
        kind,
        &filters,
        matched,
        &admin.operator,
        clock.now(),
    )
    .await?;
    tracing::info!(job = job.id, kind, operator = %admin.operator, matched = job.matched, "job started");
    runner.wake();
    Ok(status::Custom(Status::Accepted, Json(job.into())))
}

/// Starts a job that reschedules every matching dead delivery (a new round of attempts, the
/// same `Idempotency-Key`). Follow it at `GET /jobs/{id}`.
#[utoipa::path(post, path = "/deliveries/redrive", tag = "admin",
    params(
        ("source" = Option<String>, Query), ("type" = Option<String>, Query),
        ("status" = Option<crate::operator::filter::Status>, Query, description = "dead (the default and only choice)"),
        ("since" = Option<String>, Query, format = DateTime, description = "RFC 3339; deliveries created at or after"),
        ("until" = Option<String>, Query, format = DateTime, description = "RFC 3339; deliveries created before"),
        ("Idemhook-Operator" = Option<String>, Header),
    ),
    responses(
        (status = 202, body = JobView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 503, body = ErrorBody),
    ),
    security(("bearer" = [])))]
#[post("/deliveries/redrive")]
pub async fn redrive(
    admin: Result<Admin, ApiError>,
    uri: &Origin<'_>,
    db: &State<DatabaseConnection>,
    clock: &State<Clock>,
    runner: &State<JobsWake>,
    limits: &State<OperatorLimits>,
) -> Result<status::Custom<Json<JobView>>, ApiError> {
    start_job(admin?, REDRIVE, uri, db, clock, runner, limits).await
}

/// A job's progress.
#[utoipa::path(get, path = "/jobs/{id}", tag = "admin",
    params(("id" = i64, Path)),
    responses(
        (status = 200, body = JobView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody),
    ),
    security(("bearer" = [])))]
#[get("/jobs/<id>")]
pub async fn job(
    admin: Result<Admin, ApiError>,
    id: &str,
    db: &State<DatabaseConnection>,
) -> Result<Json<JobView>, ApiError> {
    admin?;
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::NotFound("no such job".into()))?;
    jobs::get(db.inner(), id)
        .await?
        .map(|j| Json(j.into()))
        .ok_or_else(|| ApiError::NotFound("no such job".into()))
}
