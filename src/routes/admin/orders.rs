//! `GET /orders/<id>`: the payments handler's view of an order.

use rocket::serde::json::Json;
use rocket::{get, routes, Route, State};

use super::Admin;
use crate::operator::orders::Order;
use crate::operator::Operator;
use crate::routes::error::{ApiError, ErrorBody};

pub fn routes() -> Vec<Route> {
    routes![order]
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
    operator: &State<Operator>,
) -> Result<Json<Order>, ApiError> {
    admin?;
    operator
        .order(order_id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound("no such order".into()))
}
