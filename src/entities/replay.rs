//! The audit of deliberate re-runs: one row per replay an operator asked for, written in the
//! replay's own transaction, so it exists exactly when the replay's effects do.

use sea_orm::entity::prelude::*;

use crate::status::EventStatus;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "replays")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub key_digest: Vec<u8>,
    pub source: String,
    pub event_type: String,
    pub event_id: String,
    /// What the event was before: rejected, failed, or processed (a forced replay).
    pub previous_status: EventStatus,
    pub forced: bool,
    /// Who asked (the `Idemhook-Operator` header, or `admin`).
    pub operator: String,
    /// The bulk job that replayed it, if any.
    pub job_id: Option<i64>,
    pub replayed_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
