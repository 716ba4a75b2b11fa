//! `payments`: the reference domain, and the proof of exactly-once.
//!
//! It is deliberately *not* idempotent on its own: every event it applies adds its amount to
//! the order's `amount_paid`. If idemhook ever ran an event twice, the order would show it.
//!
//! Understood event types (others are ignored, so the handler can sit on any source):
//! - `payment_succeeded`: `data.order_id` (string), `data.amount` (integer, minor units),
//!   `data.currency` (string).
//! - Stripe's `payment_intent.succeeded`: `data.object.metadata.order_id`,
//!   `data.object.amount_received`, `data.object.currency`.

use async_trait::async_trait;
use chrono::Utc;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ActiveValue::Set, DatabaseTransaction, EntityTrait};
use serde_json::Value;

use super::{Handler, HandlerError};
use crate::engine::Event;
use crate::entities::{order, payment};

pub struct Payments;

/// A payment as read from an event, before it touches the database.
#[derive(Debug, PartialEq, Eq)]
struct Payment {
    order_id: String,
    amount: i64,
    currency: String,
}

/// Where each understood event type keeps the three fields, as JSON pointers.
fn pointers(event_type: &str) -> Option<[&'static str; 3]> {
    match event_type {
        "payment_succeeded" => Some(["/data/order_id", "/data/amount", "/data/currency"]),
        "payment_intent.succeeded" => Some([
            "/data/object/metadata/order_id",
            "/data/object/amount_received",
            "/data/object/currency",
        ]),
        _ => None,
    }
}

fn parse(event_type: &str, json: Option<&Value>) -> Result<Option<Payment>, HandlerError> {
    let Some([order_ptr, amount_ptr, currency_ptr]) = pointers(event_type) else {
        return Ok(None);
    };
    let json = json.ok_or_else(|| HandlerError::failed("payment event body is not JSON"))?;
    let string = |ptr: &str| {
        json.pointer(ptr)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| HandlerError::failed(format!("payment event needs a string at {ptr}")))
    };
    let order_id = string(order_ptr)?;
    if order_id.len() > 255 {
        return Err(HandlerError::failed("order id is longer than 255 bytes"));
    }
    let currency = string(currency_ptr)?;
    if currency.len() > 16 {
        return Err(HandlerError::failed("currency is longer than 16 bytes"));
    }
    let amount = json
        .pointer(amount_ptr)
        .and_then(Value::as_i64)
        .filter(|&a| a > 0)
        .ok_or_else(|| {
            HandlerError::failed(format!(
                "payment event needs a positive integer at {amount_ptr}"
            ))
        })?;
    Ok(Some(Payment {
        order_id,
        amount,
        currency,
    }))
}

#[async_trait]
impl Handler for Payments {
    async fn handle(&self, event: &Event, txn: &DatabaseTransaction) -> Result<(), HandlerError> {
        let Some(p) = parse(&event.key.event_type, event.json.as_ref())? else {
            return Ok(());
        };
        let now = Utc::now();
        payment::Entity::insert(payment::ActiveModel {
            order_id: Set(p.order_id.clone()),
            key_digest: Set(event.digest.to_vec()),
            amount: Set(p.amount),
            currency: Set(p.currency.clone()),
            created_at: Set(now),
            ..Default::default()
        })
        .exec_without_returning(txn)
        .await?;
        // One statement creates the order or adds to it, so two shards paying the same order
        // at once serialise on its row lock instead of racing a read-modify-write.
        order::Entity::insert(order::ActiveModel {
            order_id: Set(p.order_id),
            status: Set("paid".to_owned()),
            amount_paid: Set(p.amount),
            currency: Set(p.currency),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .on_conflict(
            OnConflict::column(order::Column::OrderId)
                .value(
                    order::Column::AmountPaid,
                    Expr::col((order::Entity, order::Column::AmountPaid)).add(p.amount),
                )
                .value(order::Column::UpdatedAt, Expr::value(now))
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_generic_and_stripe_payments() {
        let generic = json!({"data": {"order_id": "o1", "amount": 250, "currency": "eur"}});
        assert_eq!(
            parse("payment_succeeded", Some(&generic)).unwrap(),
            Some(Payment {
                order_id: "o1".into(),
                amount: 250,
                currency: "eur".into()
            })
        );
        let stripe = json!({"data": {"object": {
            "amount_received": 999, "currency": "usd", "metadata": {"order_id": "o2"}
        }}});
        assert_eq!(
            parse("payment_intent.succeeded", Some(&stripe)).unwrap(),
            Some(Payment {
                order_id: "o2".into(),
                amount: 999,
                currency: "usd".into()
            })
        );
    }

    #[test]
    fn other_types_are_ignored_and_bad_fields_fail() {
        assert_eq!(parse("customer.created", None).unwrap(), None);
        for bad in [
            json!({"data": {"order_id": "o1", "amount": "250", "currency": "eur"}}),
            json!({"data": {"order_id": 7, "amount": 250, "currency": "eur"}}),
            json!({"data": {"order_id": "o1", "amount": -5, "currency": "eur"}}),
            json!({"data": {"order_id": "o1", "amount": 1.5, "currency": "eur"}}),
            json!({"data": {"amount": 250, "currency": "eur"}}),
        ] {
            assert!(parse("payment_succeeded", Some(&bad)).is_err(), "{bad}");
        }
        assert!(parse("payment_succeeded", None).is_err());
    }
}
