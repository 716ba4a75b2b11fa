//! The outbox: one row per forwarded event (see `forward`). Written by the `forward` handler
//! in the event's transaction; claimed, attempted and settled by the delivery worker.

use sea_orm::entity::prelude::*;

use crate::status::DeliveryStatus;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "deliveries")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub key_digest: Vec<u8>,
    pub source: String,
    pub event_type: String,
    pub event_id: String,
    pub content_type: Option<String>,
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
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
