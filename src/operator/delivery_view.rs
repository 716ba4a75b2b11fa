//! An event's deliveries as the admin API shows them: one summary per destination, and the
//! body the outbox holds for it (in a row, or stored once for several).

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use serde::Serialize;
use utoipa::ToSchema;

use super::instant;
use crate::entities::delivery;
use crate::forward::attempt::idempotency_key;
use crate::forward::deliveries::{self, bodies};
use crate::status::DeliveryStatus;

/// The state of an event's delivery to one destination.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliverySummary {
    /// The destination's name (`forward`: the source's forward table).
    pub destination: String,
    /// `pending`, `delivered` or `dead`.
    #[schema(value_type = String)]
    pub status: DeliveryStatus,
    /// The `Idempotency-Key` every attempt carries.
    pub idempotency_key: String,
    /// Attempts in the current round (a redelivery starts a new round).
    pub attempts: i32,
    /// The app's last HTTP status.
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    /// When the next attempt is due, while pending.
    #[serde(serialize_with = "instant::option::serialize")]
    #[schema(value_type = Option<String>)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "instant::option::serialize")]
    #[schema(value_type = Option<String>)]
    pub delivered_at: Option<DateTime<Utc>>,
}

pub fn delivery_summary(d: &delivery::Model) -> DeliverySummary {
    DeliverySummary {
        destination: d.destination.clone(),
        status: d.status,
        idempotency_key: idempotency_key(d.event_key()),
        attempts: d.attempts,
        last_status: d.last_status,
        last_error: d.last_error.clone(),
        next_attempt_at: (d.status == DeliveryStatus::Pending).then_some(d.next_attempt_at),
        delivered_at: d.delivered_at,
    }
}

/// The event's body as its outbox rows hold it: in a row, or stored once for them all.
pub async fn outbox_payload(
    db: &impl ConnectionTrait,
    event: &[u8],
) -> Result<Option<(Vec<u8>, &'static str)>, DbErr> {
    let Some(row) = delivery::Entity::find()
        .filter(deliveries::of_events(vec![event.to_vec()]))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    if !row.payload.is_empty() {
        return Ok(Some((row.payload, "outbox")));
    }
    let body = bodies::find(db, event).await?.unwrap_or_default();
    Ok(Some((body, "outbox")))
}
