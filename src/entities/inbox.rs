//! The transactional inbox: every processed event, for downstream consumers to read at their
//! own pace. Written by the `inbox` handler inside the event's transaction. Ids are unique
//! and increasing at insert, not at commit: see `handlers::inbox` for how to read it.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "inbox")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub key_digest: Vec<u8>,
    pub source: String,
    pub event_type: String,
    pub event_id: String,
    pub payload: Vec<u8>,
    pub received_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
