//! The history of attempts that did not settle an event: a handler's failure, a delivery that
//! will be retried or went dead. Successes write nothing here (the event's own row says when
//! it settled), so the history costs the hot path nothing.

use sea_orm::entity::prelude::*;

use crate::status::AttemptOutcome;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "attempts")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub key_digest: Vec<u8>,
    /// [`HANDLER`] or [`DELIVERY`].
    pub kind: String,
    /// The destination a delivery attempt went to (`None`: a handler's attempt, or a delivery
    /// attempt recorded before fan-out, which went to `forward`).
    pub destination: Option<String>,
    /// Failed (a handler), retry or dead (a delivery).
    pub outcome: AttemptOutcome,
    /// The receiving app's HTTP status, for a delivery that got an answer.
    pub status_code: Option<i32>,
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
    pub at: DateTimeUtc,
}

pub const HANDLER: &str = "handler";
pub const DELIVERY: &str = "delivery";

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
