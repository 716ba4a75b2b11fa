//! Read APIs for operators: what happened to an event, and the state of an order.
//!
//! Disabled unless `IDEMHOOK_ADMIN_TOKEN` is set; then every request needs
//! `Authorization: Bearer <token>`, compared in constant time.

use chrono::{DateTime, SecondsFormat, Utc};
use rocket::http::Status;
use rocket::request::{FromRequest, Outcome, Request};
use rocket::response::status;
use rocket::serde::json::{json, Json, Value};
use rocket::{get, post, routes, FromForm, Route, State};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use subtle::ConstantTimeEq;

use crate::clock::Clock;
use crate::entities::{delivery, failed_attempt, order as order_entity, payment, processed_event};
use crate::error::ApiError;
use crate::event::key::{sha256, EventKey};
use crate::forward::attempt::idempotency_key;
use crate::forward::lease::{self, Redelivery};

pub fn routes() -> Vec<Route> {
    routes![event, redeliver, order]
}

/// The admin token, if the admin API is enabled.
pub struct AdminToken(pub Option<String>);

/// Proof that the request carried the admin token.
pub struct Admin;

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
        if ok {
            Outcome::Success(Admin)
        } else {
            Outcome::Error((
                Status::Unauthorized,
                ApiError::Unauthorized("missing or wrong bearer token".to_owned()),
            ))
        }
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The key named by the path and the required `type` parameter.
fn key_of(source: &str, event_id: &str, query: &EventQuery<'_>) -> Result<EventKey, ApiError> {
    let event_type = query
        .event_type
        .ok_or_else(|| ApiError::BadRequest("the query parameter `type` is required".into()))?;
    Ok(EventKey::new(
        source,
        event_type.to_owned(),
        event_id.to_owned(),
    )?)
}

/// The outbox row's state, for a forwarding source's event.
fn delivery_view(d: &delivery::Model) -> Value {
    json!({
        "status": d.status,
        "idempotency_key": idempotency_key(&d.key_digest),
        "attempts": d.attempts,
        "last_status": d.last_status,
        "last_error": d.last_error,
        "next_attempt_at": (d.status == crate::forward::outbox::PENDING).then(|| rfc3339(d.next_attempt_at)),
        "delivered_at": d.delivered_at.map(rfc3339),
    })
}

#[derive(FromForm)]
struct EventQuery<'r> {
    #[field(name = "type")]
    event_type: Option<&'r str>,
}

/// The audit view of one event: processed (with any failed attempts before), failed, or 404.
#[get("/webhooks/<source>/events/<event_id>?<query..>")]
async fn event(
    admin: Result<Admin, ApiError>,
    source: &str,
    event_id: &str,
    query: EventQuery<'_>,
    db: &State<DatabaseConnection>,
) -> Result<Json<Value>, ApiError> {
    admin?;
    let key = key_of(source, event_id, &query)?;
    let digest = key.digest().to_vec();
    let processed = processed_event::Entity::find_by_id(digest.clone())
        .one(db.inner())
        .await?;
    let failed = failed_attempt::Entity::find_by_id(digest.clone())
        .one(db.inner())
        .await?;
    let delivery = delivery::Entity::find()
        .filter(delivery::Column::KeyDigest.eq(digest))
        .one(db.inner())
        .await?;
    let failed_attempts = failed.as_ref().map_or(0, |f| f.attempts);
    let last_error = failed.as_ref().map(|f| f.last_error.clone());
    let body = match (processed, failed) {
        // Settled: processed, or rejected by a handler (with its reason).
        (Some(p), _) => json!({
            "status": p.status,
            "reason": p.reason,
            "received_at": rfc3339(p.received_at),
            "processed_at": rfc3339(p.processed_at),
            "attempts": failed_attempts + 1,
            "payload_sha256": hex::encode(&p.payload_sha256),
        }),
        (None, Some(f)) => json!({
            "status": "failed",
            "received_at": rfc3339(f.first_failed_at),
            "processed_at": null,
            "attempts": failed_attempts,
            "payload_sha256": hex::encode(&f.payload_sha256),
        }),
        (None, None) => return Err(ApiError::NotFound("no such event".into())),
    };
    let mut body = body;
    body["source"] = json!(key.source);
    body["event_type"] = json!(key.event_type);
    body["event_id"] = json!(key.event_id);
    body["last_error"] = json!(last_error);
    body["delivery"] = delivery.as_ref().map_or(Value::Null, delivery_view);
    Ok(Json(body))
}

/// Schedules a new round of delivery attempts for a delivered or dead event, with the same
/// `Idempotency-Key`: 202; 404 for an event with no delivery; 409 while one is pending.
#[post("/webhooks/<source>/events/<event_id>/redeliver?<query..>")]
async fn redeliver(
    admin: Result<Admin, ApiError>,
    source: &str,
    event_id: &str,
    query: EventQuery<'_>,
    db: &State<DatabaseConnection>,
    clock: &State<Clock>,
) -> Result<status::Accepted<Json<Value>>, ApiError> {
    admin?;
    let key = key_of(source, event_id, &query)?;
    let digest = key.digest();
    match lease::redeliver(db.inner(), &digest, clock.now()).await? {
        Redelivery::Scheduled => {
            tracing::info!(source = %key.source, "redelivery scheduled by an operator");
            Ok(status::Accepted(Json(json!({
                "status": "scheduled",
                "idempotency_key": idempotency_key(&digest),
            }))))
        }
        Redelivery::AlreadyPending => Err(ApiError::Conflict(
            "a delivery of this event is already pending".into(),
        )),
        Redelivery::NoDelivery => Err(ApiError::NotFound(
            "no delivery of this event (unknown event, a source that does not forward, or a \
             delivery past its retention)"
                .into(),
        )),
    }
}

#[get("/orders/<order_id>")]
async fn order(
    admin: Result<Admin, ApiError>,
    order_id: &str,
    db: &State<DatabaseConnection>,
) -> Result<Json<Value>, ApiError> {
    admin?;
    let order = order_entity::Entity::find_by_id(order_id.to_owned())
        .one(db.inner())
        .await?
        .ok_or_else(|| ApiError::NotFound("no such order".into()))?;
    let payments: Vec<Value> = payment::Entity::find()
        .filter(payment::Column::OrderId.eq(order_id))
        .order_by_asc(payment::Column::Id)
        .all(db.inner())
        .await?
        .into_iter()
        .map(|p| {
            json!({
                "amount": p.amount,
                "currency": p.currency,
                "created_at": rfc3339(p.created_at),
            })
        })
        .collect();
    Ok(Json(json!({
        "order_id": order.order_id,
        "status": order.status,
        "amount_paid": order.amount_paid,
        "currency": order.currency,
        "payments": payments,
    })))
}
