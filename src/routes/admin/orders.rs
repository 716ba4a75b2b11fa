//! `GET /orders/<id>`: the payments handler's view of an order.

use rocket::serde::json::Json;
use rocket::{get, routes, Route, State};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use serde::Serialize;
use utoipa::ToSchema;

use super::Admin;
use crate::entities::{order as order_entity, payment};
use crate::operator::view::instant;
use crate::routes::error::{ApiError, ErrorBody};

pub fn routes() -> Vec<Route> {
    routes![order]
}

#[derive(Serialize, ToSchema)]
pub struct Order {
    pub order_id: String,
    pub status: String,
    pub amount_paid: i64,
    pub currency: String,
    pub payments: Vec<Payment>,
}

#[derive(Serialize, ToSchema)]
pub struct Payment {
    pub amount: i64,
    pub currency: String,
    #[serde(serialize_with = "instant::serialize")]
    #[schema(value_type = String)]
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// An order and its payments, oldest first.
#[utoipa::path(get, path = "/orders/{order_id}", tag = "admin",
    params(("order_id" = String, Path, description = "The order's id, exact bytes")),
    responses(
        (status = 200, body = Order),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody),
    ),
    security(("bearer" = [])))]
#[get("/orders/<order_id>")]
pub async fn order(
    admin: Result<Admin, ApiError>,
    order_id: &str,
    db: &State<DatabaseConnection>,
) -> Result<Json<Order>, ApiError> {
    admin?;
    let order = order_entity::Entity::find_by_id(order_id.to_owned())
        .one(db.inner())
        .await?
        .ok_or_else(|| ApiError::NotFound("no such order".into()))?;
    let payments = payment::Entity::find()
        .filter(payment::Column::OrderId.eq(order_id))
        .order_by_asc(payment::Column::Id)
        .all(db.inner())
        .await?
        .into_iter()
        .map(|p| Payment {
            amount: p.amount,
            currency: p.currency,
            created_at: p.created_at,
        })
        .collect();
    Ok(Json(Order {
        order_id: order.order_id,
        status: order.status,
        amount_paid: order.amount_paid,
        currency: order.currency,
        payments,
    }))
}
