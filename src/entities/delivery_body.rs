//! The body of an event that goes to several destinations, stored once for all its outbox rows
//! (which then hold an empty `payload`); swept once none of them is left.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "delivery_bodies")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub event_digest: Vec<u8>,
    pub payload: Vec<u8>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
