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

use std::collections::BTreeMap;

use async_trait::async_trait;
use migration::limits::{MAX_CURRENCY_BYTES, MAX_ORDER_ID_BYTES};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ActiveValue::Set, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait};
use serde_json::Value;

use super::{Handler, HandlerError};
use crate::clock::Clock;
use crate::entities::{order, payment};
use crate::event::Event;

/// Stamps its rows with `clock`, like every other database timestamp, so tests that move time
/// see payments and orders move with it.
pub struct Payments {
    clock: Clock,
}

impl Payments {
    pub fn new(clock: Clock) -> Self {
        Self { clock }
    }
}

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
    if order_id.len() > MAX_ORDER_ID_BYTES {
        return Err(HandlerError::failed(format!(
            "order id is longer than {MAX_ORDER_ID_BYTES} bytes"
        )));
    }
    let currency = string(currency_ptr)?;
    if currency.len() > MAX_CURRENCY_BYTES {
        return Err(HandlerError::failed(format!(
            "currency is longer than {MAX_CURRENCY_BYTES} bytes"
        )));
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
        self.handle_batch(&[event], txn).await
    }

    /// Two statements for the whole batch: one multi-row INSERT of the payments, one
    /// multi-row upsert of the orders they touch.
    async fn handle_batch(
        &self,
        events: &[&Event],
        txn: &DatabaseTransaction,
    ) -> Result<(), HandlerError> {
        let mut payments = Vec::with_capacity(events.len());
        for event in events {
            if let Some(p) = parse(&event.key.event_type, event.json.as_ref())? {
                payments.push((*event, p));
            }
        }
        if payments.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        payment::Entity::insert_many(payments.iter().map(|(event, p)| payment::ActiveModel {
            order_id: Set(p.order_id.clone()),
            key_digest: Set(event.digest.to_vec()),
            amount: Set(p.amount),
            currency: Set(p.currency.clone()),
            created_at: Set(now),
            ..Default::default()
        }))
        .exec_without_returning(txn)
        .await?;
        let orders = order_totals(payments.iter().map(|(_, p)| p))?;
        let added = excluded(txn.get_database_backend(), "amount_paid");
        order::Entity::insert_many(orders.into_iter().map(|(order_id, (amount, currency))| {
            order::ActiveModel {
                order_id: Set(order_id.to_owned()),
                status: Set("paid".to_owned()),
                amount_paid: Set(amount),
                currency: Set(currency.to_owned()),
                created_at: Set(now),
                updated_at: Set(now),
            }
        }))
        .on_conflict(
            OnConflict::column(order::Column::OrderId)
                .value(
                    order::Column::AmountPaid,
                    Expr::col((order::Entity, order::Column::AmountPaid)).add(added),
                )
                .value(order::Column::UpdatedAt, Expr::value(now))
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
        Ok(())
    }
}

/// One row per order with the batch's amounts summed: an upsert may not touch a row twice in
/// one statement (PostgreSQL refuses it; SQLite would quietly apply both). The map keeps
/// orders sorted, so two instances' batches lock the same orders in the same order. An
/// order's currency is its first payment's, as when its events are applied one by one.
fn order_totals<'a>(
    payments: impl Iterator<Item = &'a Payment>,
) -> Result<BTreeMap<&'a str, (i64, &'a str)>, HandlerError> {
    let mut orders: BTreeMap<&str, (i64, &str)> = BTreeMap::new();
    for p in payments {
        let (sum, _) = orders
            .entry(p.order_id.as_str())
            .or_insert((0, p.currency.as_str()));
        *sum = sum
            .checked_add(p.amount)
            .ok_or_else(|| HandlerError::failed("order amount overflows"))?;
    }
    Ok(orders)
}

/// The value a conflicting upsert row tried to insert into `column`.
fn excluded(backend: DbBackend, column: &str) -> Expr {
    match backend {
        DbBackend::MySql => Expr::cust(format!("VALUES(`{column}`)")),
        _ => Expr::cust(format!("excluded.\"{column}\"")),
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

    /// The rows the order upsert is built from: one per order, amounts summed, orders sorted,
    /// the first payment's currency, and an overflow refused rather than wrapped.
    #[test]
    fn order_totals_sum_per_order_in_order() {
        let p = |order: &str, amount, currency: &str| Payment {
            order_id: order.to_owned(),
            amount,
            currency: currency.to_owned(),
        };
        let payments = [p("o2", 7, "usd"), p("o1", 100, "eur"), p("o1", 20, "gbp")];
        let totals: Vec<_> = order_totals(payments.iter()).unwrap().into_iter().collect();
        assert_eq!(totals, [("o1", (120, "eur")), ("o2", (7, "usd"))]);
        let huge = [p("o1", i64::MAX, "eur"), p("o1", 1, "eur")];
        assert!(order_totals(huge.iter()).is_err());
    }

    /// A batch touching one order twice must add both amounts (one upsert row per order) and
    /// leave other event types alone; a second batch adds to the existing rows.
    #[tokio::test]
    async fn a_batch_sums_payments_per_order() {
        use sea_orm::TransactionTrait;
        let settings = crate::config::Settings::default();
        let db = crate::db::connect(crate::config::IN_MEMORY_DATABASE_URL, &settings)
            .await
            .unwrap();
        crate::db::migrate(&db).await.unwrap();
        let (a, b, c) = (
            Event::payment("e1", "o1", 100, "eur"),
            Event::payment("e2", "o2", 7, "usd"),
            Event::payment("e3", "o1", 20, "gbp"),
        );
        let mut other = Event::payment("e4", "o1", 1000, "eur");
        other.key = crate::event::key::EventKey::new("test", "refund".into(), "e4".into()).unwrap();
        let txn = db.begin().await.unwrap();
        let payments = Payments::new(crate::clock::Clock::system());
        payments
            .handle_batch(&[&a, &b, &c, &other], &txn)
            .await
            .unwrap();
        txn.commit().await.unwrap();
        let txn = db.begin().await.unwrap();
        payments
            .handle(&Event::payment("e5", "o2", 3, "usd"), &txn)
            .await
            .unwrap();
        txn.commit().await.unwrap();
        let orders = order::Entity::find().all(&db).await.unwrap();
        let got: Vec<_> = orders
            .iter()
            .map(|o| (o.order_id.as_str(), o.amount_paid, o.currency.as_str()))
            .collect();
        assert_eq!(got, [("o1", 120, "eur"), ("o2", 10, "usd")]);
        assert_eq!(payment::Entity::find().all(&db).await.unwrap().len(), 4);
    }
}
