//! Bulk jobs: `POST /deliveries/redrive` starts one, `GET /jobs/<id>` follows it. The job
//! lives in the database (`operator::jobs`), so any instance answers for it.

use rocket::http::uri::Origin;
use rocket::http::Status;
use rocket::response::status;
use rocket::serde::json::Json;
use rocket::{get, post, routes, Route, State};

use super::{audited, Admin, Operate};
use crate::operator::filter::{pairs, Filters, FILTER_PARAMS};
use crate::operator::jobs::{JobView, REDRIVE};
use crate::operator::Operator;
use crate::routes::error::{ApiError, ErrorBody};

pub fn routes() -> Vec<Route> {
    routes![redrive, job]
}

/// Starts a `kind` job over the filters in the query string.
pub async fn start_job(
    admin: Operate,
    kind: &str,
    uri: &Origin<'_>,
    operator: &State<Operator>,
) -> Result<status::Custom<Json<JobView>>, ApiError> {
    let query = uri.query().map(|q| q.as_str());
    let change = admin.change(kind.to_owned(), serde_json::json!({ "query": query }));
    let job = audited(operator, &change, async {
        let mut params = pairs(query, &FILTER_PARAMS)?;
        let filters = Filters::take(&mut params)?;
        Ok(operator.start_job(kind, filters, &change).await?)
    })
    .await?;
    Ok(status::Custom(Status::Accepted, Json(job)))
}

/// Starts a job that reschedules every matching dead delivery (a new round of attempts, the
/// same `Idempotency-Key`). Follow it at `GET /jobs/{id}`.
#[utoipa::path(post, path = "/deliveries/redrive", tag = "admin",
    params(
        ("source" = Option<String>, Query), ("type" = Option<String>, Query),
        ("status" = Option<crate::operator::filter::Status>, Query, description = "dead (the default and only choice)"),
        ("since" = Option<String>, Query, format = DateTime, description = "RFC 3339; deliveries created at or after"),
        ("until" = Option<String>, Query, format = DateTime, description = "RFC 3339; deliveries created before"),
        ("destination" = Option<String>, Query, description = "Only this destination's dead deliveries (default: every destination's)"),
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
    admin: Result<Operate, ApiError>,
    uri: &Origin<'_>,
    operator: &State<Operator>,
) -> Result<status::Custom<Json<JobView>>, ApiError> {
    start_job(admin?, REDRIVE, uri, operator).await
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
    operator: &State<Operator>,
) -> Result<Json<JobView>, ApiError> {
    admin?;
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::NotFound("no such job".into()))?;
    operator
        .job(id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound("no such job".into()))
}
