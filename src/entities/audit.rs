//! Who changed what, when, from where: one row per operator change (written in the change's
//! own transaction), sign-in, sign-out and refusal, and one per client address and minute of
//! failed authentications (`count`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub at: DateTimeUtc,
    /// The authenticated operator; `None` for failed authentications.
    pub operator: Option<String>,
    pub role: Option<String>,
    /// The free-text `Idemhook-Operator` note: whom the operator says they act for.
    pub on_behalf_of: Option<String>,
    pub action: String,
    #[sea_orm(column_type = "Text")]
    pub target: String,
    /// The request's parameters, as JSON.
    #[sea_orm(column_type = "Text")]
    pub params: String,
    pub outcome: String,
    pub client: Option<String>,
    /// 1, or the failures an address made in one minute.
    pub count: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
