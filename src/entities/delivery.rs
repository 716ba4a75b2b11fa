//! The outbox: one row per (forwarded event, destination) (see `forward`). Written by the
//! `forward` handler in the event's transaction; claimed, attempted and settled by the
//! delivery worker.

use sea_orm::entity::prelude::*;

use crate::status::DeliveryStatus;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "deliveries")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The row's own key: the event's digest for the `forward` destination, the SHA-256 of
    /// (event digest, destination) for another (`forward::handler::row_key`).
    #[sea_orm(unique)]
    pub key_digest: Vec<u8>,
    pub source: String,
    /// The destination's name (`forward`: the source's forward table).
    pub destination: String,
    /// The event's key (its dedupe record's digest). `None` only in a row written by a release
    /// before fan-out after the upgrade's backfill: then it is `key_digest`.
    pub event_digest: Option<Vec<u8>>,
    pub event_type: String,
    pub event_id: String,
    pub content_type: Option<String>,
    /// The body, or empty when it is stored once for the event in `delivery_bodies` (an event
    /// that goes to several destinations; see `forward::deliveries::bodies`).
    pub payload: Vec<u8>,
    pub ordering_key: Option<Vec<u8>>,
    pub status: DeliveryStatus,
    /// Attempts in the current round (a redelivery starts a new round).
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    pub lease_until: Option<DateTimeUtc>,
    pub lease_token: Option<Vec<u8>>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub delivered_at: Option<DateTimeUtc>,
    /// Redeliveries and redrives so far: the message id of a broker that dedupes by it.
    pub round: i32,
    /// The event's W3C `traceparent`, when tracing was on as the row was written.
    pub traceparent: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// The event's key: the same for each of the event's destinations (its `Idempotency-Key`).
    pub fn event_key(&self) -> &[u8] {
        self.event_digest.as_deref().unwrap_or(&self.key_digest)
    }
}
