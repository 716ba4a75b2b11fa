//! Audit of attempts whose transaction rolled back. Written outside the event's transaction,
//! so it survives the rollback; it never makes an event count as processed.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "failed_attempts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub key_digest: Vec<u8>,
    pub source: String,
    pub event_type: String,
    pub event_id: String,
    pub payload_sha256: Vec<u8>,
    /// The failed delivery's `event::key::signed_key`, written into the record when an
    /// operator replays it (the payload alone cannot recompute it: the signed bytes may
    /// include a timestamp).
    pub typed_signed_key: Option<Vec<u8>>,
    pub attempts: i32,
    #[sea_orm(column_type = "Text")]
    pub last_error: String,
    pub first_failed_at: DateTimeUtc,
    pub last_failed_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
