//! The raw payload of an event that was rejected or whose attempts failed, kept until the
//! retention sweep so it can be replayed once the cause is fixed. Processed events keep theirs
//! only where a handler stores it (the inbox).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "event_payloads")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub key_digest: Vec<u8>,
    pub payload: Vec<u8>,
    pub stored_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
