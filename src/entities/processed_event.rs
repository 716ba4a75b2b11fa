//! The dedupe record. A row exists if, and only if, the event is settled: its handlers
//! committed (`EventStatus::Processed`), or one of them refused it for good (`Rejected`, with
//! the reason, and nothing else written).

use sea_orm::entity::prelude::*;

use crate::status::EventStatus;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "processed_events")]
pub struct Model {
    /// SHA-256 of the length-prefixed (source, event type, event id): see `event::key`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub key_digest: Vec<u8>,
    pub source: String,
    pub event_type: String,
    pub event_id: String,
    pub payload_sha256: Vec<u8>,
    /// `event::key::legacy_signed_key`: the signed-bytes key of releases before the type
    /// counted (source, signed bytes); unique (NULLs apart). This release writes NULL and
    /// looks rows of those releases up by it until the retention sweep has removed them.
    #[sea_orm(column_name = "signed_key")]
    pub legacy_signed_key: Option<Vec<u8>>,
    /// `event::key::signed_key` of a signed delivery; unique (NULLs apart), so the same signed
    /// bytes commit once per (source, event type) whatever unsigned id they came with.
    pub typed_signed_key: Option<Vec<u8>>,
    pub received_at: DateTimeUtc,
    pub processed_at: DateTimeUtc,
    /// Processed or rejected (never failed: see [`EventStatus::Failed`]).
    pub status: EventStatus,
    /// Why a handler rejected the event.
    pub reason: Option<String>,
    /// The token of the delivery that wrote the record (`Event::attempt_token`).
    pub attempt_token: Option<Vec<u8>>,
    /// Duplicates whose body differed from the one that settled the event
    /// (`engine::mismatches`, written within about a second of each).
    pub mismatches: i64,
    /// SHA-256 of the last such body, and when it came.
    pub last_mismatch_sha256: Option<Vec<u8>>,
    pub last_mismatch_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
