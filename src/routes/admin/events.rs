//! The events of the admin API: the list, one event's detail, and what an operator does to
//! one (replay, redeliver) or to many (a bulk replay job).

use rocket::http::uri::Origin;
use rocket::response::status;
use rocket::serde::json::Json;
use rocket::{get, post, routes, Route, State};
use serde::Serialize;
use utoipa::ToSchema;

use super::jobs::start_job;
use super::{audited, Admin, Operate};
use crate::engine::store::ReplayRequest;
use crate::event::key::EventKey;
use crate::operator::filter::{pairs, ListQuery, Status};
use crate::operator::jobs::{JobView, REPLAY};
use crate::operator::view::{EventDetail, EventPage};
use crate::operator::Operator;
use crate::routes::error::{ApiError, ErrorBody};
use crate::status::EventStatus;

pub fn routes() -> Vec<Route> {
    routes![list, event, replay_one, redeliver, replay_many]
}

/// Events, newest first, one page at a time.
#[utoipa::path(get, path = "/events", tag = "admin",
    params(
        ("source" = Option<String>, Query, description = "Only this source"),
        ("type" = Option<String>, Query, description = "Only this event type (exact bytes)"),
        ("status" = Option<Status>, Query, description = "processed, failed, rejected, delivery_pending, delivered or dead"),
        ("since" = Option<String>, Query, format = DateTime, description = "RFC 3339; events at or after"),
        ("until" = Option<String>, Query, format = DateTime, description = "RFC 3339; events before"),
        ("destination" = Option<String>, Query, description = "With a delivery status: that destination's delivery is in it (without: `delivered` means every delivery of the event, `delivery_pending` and `dead` any one)"),
        ("limit" = Option<u32>, Query, description = "Page size, 1 to 500 (default 50)", minimum = 1, maximum = 500),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, body = EventPage),
        (status = 400, description = "An unknown, repeated or malformed parameter", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ),
    security(("bearer" = [])))]
#[get("/events")]
pub async fn list(
    admin: Result<Admin, ApiError>,
    uri: &Origin<'_>,
    operator: &State<Operator>,
) -> Result<Json<EventPage>, ApiError> {
    admin?;
    let query = ListQuery::parse(uri.query().map(|q| q.as_str()))?;
    Ok(Json(operator.page(&query).await?))
}

/// The key named by the path and the query's required `type`; the query's other parameters
/// (of `extra`) are returned.
pub fn key_of(
    source: &str,
    event_id: &str,
    uri: &Origin<'_>,
    extra: &[&str],
) -> Result<(EventKey, Vec<(String, String)>), ApiError> {
    let allowed: Vec<&str> = ["type"].iter().chain(extra).copied().collect();
    let mut params = pairs(uri.query().map(|q| q.as_str()), &allowed)?;
    let at = params
        .iter()
        .position(|(n, _)| n == "type")
        .ok_or_else(|| ApiError::BadRequest("the query parameter `type` is required".into()))?;
    let (_, event_type) = params.remove(at);
    let key = EventKey::new(source, event_type, event_id.to_owned())?;
    Ok((key, params))
}

/// One event: its record, attempts, delivery, replays, and the raw payload where idemhook
/// holds it.
#[utoipa::path(get, path = "/webhooks/{source}/events/{event_id}", tag = "admin",
    params(
        ("source" = String, Path), ("event_id" = String, Path, description = "Exact bytes, percent-encoded"),
        ("type" = String, Query, description = "The event type (exact bytes)"),
    ),
    responses(
        (status = 200, body = EventDetail),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ),
    security(("bearer" = [])))]
#[get("/webhooks/<source>/events/<event_id>")]
pub async fn event(
    admin: Result<Admin, ApiError>,
    source: &str,
    event_id: &str,
    uri: &Origin<'_>,
    operator: &State<Operator>,
) -> Result<Json<EventDetail>, ApiError> {
    admin?;
    let (key, _) = key_of(source, event_id, uri, &[])?;
    operator
        .detail(&key.digest())
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound("no such event".into()))
}

#[derive(Serialize, ToSchema)]
pub struct ReplayAnswer {
    /// `processed`.
    pub status: String,
    /// What the event was before: `rejected`, `failed`, or `processed` (forced).
    pub previous_status: String,
    pub forced: bool,
    pub operator: String,
}

/// Re-runs the source's handlers for a rejected or failed event, from the payload idemhook
/// kept, in a new transaction that marks it processed and records who asked. An event that
/// is already processed is refused unless `force=true`, which runs its handlers again
/// (dangerous for handlers that are not idempotent: the payments handler applies the payment
/// again).
#[utoipa::path(post, path = "/webhooks/{source}/events/{event_id}/replay", tag = "admin",
    params(
        ("source" = String, Path), ("event_id" = String, Path),
        ("type" = String, Query),
        ("force" = Option<bool>, Query, description = "Replay a processed event too"),
        ("Idemhook-Operator" = Option<String>, Header, description = "Who is asking; recorded"),
    ),
    responses(
        (status = 200, body = ReplayAnswer),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Already processed (without force), or no payload kept", body = ErrorBody),
        (status = 422, description = "A handler rejected or failed it again; nothing was applied", body = ErrorBody),
        (status = 503, body = ErrorBody),
    ),
    security(("bearer" = [])))]
#[post("/webhooks/<source>/events/<event_id>/replay")]
pub async fn replay_one(
    admin: Result<Operate, ApiError>,
    source: &str,
    event_id: &str,
    uri: &Origin<'_>,
    operator: &State<Operator>,
) -> Result<Json<ReplayAnswer>, ApiError> {
    let admin = admin?;
    let query = uri.query().map(|q| q.as_str());
    let target = format!("{source}/{event_id}");
    let change = admin.change(target, serde_json::json!({ "query": query }));
    let done = audited(operator, &change, async {
        let (key, params) = key_of(source, event_id, uri, &["force"])?;
        let force = match params.first().map(|(_, v)| v.as_str()) {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => return Err(ApiError::BadRequest("`force` must be true or false".into())),
        };
        let request = ReplayRequest {
            force,
            operator: admin.admin.operator.clone(),
            job_id: None,
            audit: Some(change.row("ok", operator.now())),
        };
        Ok(operator.replay(&key.digest(), &request).await?)
    })
    .await?;
    Ok(Json(ReplayAnswer {
        status: EventStatus::Processed.to_string(),
        previous_status: done.previous.to_string(),
        forced: done.previous == EventStatus::Processed,
        operator: admin.admin.operator,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct Redelivered {
    /// `scheduled`: at least one destination's delivery got a new round.
    pub status: String,
    /// The event's `Idempotency-Key`, the same at every destination.
    pub idempotency_key: String,
    /// By destination: `scheduled` (a new round, due now) or `pending` (left alone).
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub destinations: std::collections::BTreeMap<String, &'static str>,
}

/// Schedules a new round of delivery attempts for each delivered or dead delivery of the event
/// (to one destination with `destination`), with the same `Idempotency-Key`.
#[utoipa::path(post, path = "/webhooks/{source}/events/{event_id}/redeliver", tag = "admin",
    params(("source" = String, Path), ("event_id" = String, Path), ("type" = String, Query),
        ("destination" = Option<String>, Query, description = "only this destination's delivery")),
    responses(
        (status = 202, body = Redelivered),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "No delivery of this event (to that destination)", body = ErrorBody),
        (status = 409, description = "Every delivery of it is already pending", body = ErrorBody),
        (status = 503, body = ErrorBody),
    ),
    security(("bearer" = [])))]
#[post("/webhooks/<source>/events/<event_id>/redeliver")]
pub async fn redeliver(
    admin: Result<Operate, ApiError>,
    source: &str,
    event_id: &str,
    uri: &Origin<'_>,
    operator: &State<Operator>,
) -> Result<status::Accepted<Json<Redelivered>>, ApiError> {
    let query = uri.query().map(|q| q.as_str());
    let change = admin?.change(
        format!("{source}/{event_id}"),
        serde_json::json!({ "query": query }),
    );
    let (idempotency_key, done) = audited(operator, &change, async {
        let (key, params) = key_of(source, event_id, uri, &["destination"])?;
        let destination = params
            .into_iter()
            .next()
            .map(|(_, v)| crate::operator::filter::destination(v))
            .transpose()?;
        Ok(operator
            .redeliver(&key, destination.as_deref(), &change)
            .await?)
    })
    .await?;
    Ok(status::Accepted(Json(Redelivered {
        status: "scheduled".into(),
        idempotency_key,
        destinations: done
            .into_iter()
            .map(|(name, r)| (name, r.as_str()))
            .collect(),
    })))
}

/// Starts a job that replays every matching `rejected` (the default) or `failed` event, as
/// `POST …/replay` would one at a time (never forced). Follow it at `GET /jobs/{id}`.
#[utoipa::path(post, path = "/events/replay", tag = "admin",
    params(
        ("source" = Option<String>, Query), ("type" = Option<String>, Query),
        ("status" = Option<Status>, Query, description = "rejected (default) or failed"),
        ("since" = Option<String>, Query, format = DateTime), ("until" = Option<String>, Query, format = DateTime),
        ("Idemhook-Operator" = Option<String>, Header),
    ),
    responses(
        (status = 202, body = JobView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 503, body = ErrorBody),
    ),
    security(("bearer" = [])))]
#[post("/events/replay")]
pub async fn replay_many(
    admin: Result<Operate, ApiError>,
    uri: &Origin<'_>,
    operator: &State<Operator>,
) -> Result<status::Custom<Json<JobView>>, ApiError> {
    start_job(admin?, REPLAY, uri, operator).await
}
