//! A bulk operation an operator started (redrive dead deliveries, replay rejected events).
//! Its state lives here, not in memory, so any instance can report it and, when the one
//! running it dies, another takes it over once its lease expires (see `operator::jobs`).

use sea_orm::entity::prelude::*;

use crate::status::JobStatus;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "jobs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// `redrive` or `replay`.
    pub kind: String,
    /// The request's filters, as JSON.
    #[sea_orm(column_type = "Text")]
    pub filters: String,
    pub status: JobStatus,
    pub matched: i64,
    pub done: i64,
    pub failed: i64,
    /// Matched when the job started, but no longer in the state it acts on when reached.
    pub skipped: i64,
    /// Where the next batch starts; `None`: at the beginning.
    #[sea_orm(column_type = "Text", nullable)]
    pub cursor: Option<String>,
    pub lease_until: Option<DateTimeUtc>,
    pub lease_token: Option<Vec<u8>>,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    pub created_by: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
