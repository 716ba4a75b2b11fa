//! The payments handler's view of an order (`GET /orders/<id>`): the order and its payments,
//! oldest first.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};
use serde::Serialize;
use utoipa::ToSchema;

use super::instant;
use crate::entities::{order as order_entity, payment};

#[derive(Debug, Serialize, ToSchema)]
pub struct Order {
    pub order_id: String,
    pub status: String,
    pub amount_paid: i64,
    pub currency: String,
    pub payments: Vec<Payment>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Payment {
    pub amount: i64,
    pub currency: String,
    #[serde(serialize_with = "instant::serialize")]
    #[schema(value_type = String)]
    pub created_at: DateTime<Utc>,
}

/// The order `order_id` and its payments, or `None` when there is no such order.
pub async fn order(db: &impl ConnectionTrait, order_id: &str) -> Result<Option<Order>, DbErr> {
    let Some(order) = order_entity::Entity::find_by_id(order_id.to_owned())
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let payments = payment::Entity::find()
        .filter(payment::Column::OrderId.eq(order_id))
        .order_by_asc(payment::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(|p| Payment {
            amount: p.amount,
            currency: p.currency,
            created_at: p.created_at,
        })
        .collect();
    Ok(Some(Order {
        order_id: order.order_id,
        status: order.status,
        amount_paid: order.amount_paid,
        currency: order.currency,
        payments,
    }))
}
