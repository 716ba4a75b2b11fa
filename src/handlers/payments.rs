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

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use migration::limits::{MAX_CURRENCY_BYTES, MAX_ORDER_ID_BYTES};
use sea_orm::sea_query::{Alias, CommonTableExpression, Expr, ExprTrait, OnConflict, WithClause};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait,
    QueryFilter, QueryTrait,
};
use serde_json::Value;

use super::{Handler, HandlerError, Rows, Upsert, Writes};
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
    // A Stripe PaymentIntent without our order id (Checkout, invoices) is not for this
    // handler: processed, with no effect.
    let absent = |ptr: &str| json.pointer(ptr).is_none_or(Value::is_null);
    if event_type == "payment_intent.succeeded" && absent(order_ptr) {
        tracing::info!("payment_intent.succeeded without metadata.order_id: not an order payment");
        return Ok(None);
    }
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

    /// A few statements for the whole batch, whatever its size: on MySQL the orders it
    /// touches are read first; then one multi-row INSERT of the payments and one multi-row
    /// upsert of the orders, which PostgreSQL runs as one statement. A payment that can never
    /// apply (another currency than its order's, a total past `i64`) rejects the event for
    /// good.
    async fn handle_batch(
        &self,
        events: &[&Event],
        txn: &DatabaseTransaction,
    ) -> Result<(), HandlerError> {
        let payments = payments(events)?;
        if payments.is_empty() {
            return Ok(());
        }
        let orders = order_totals(payments.iter().map(|(_, p)| p))?;
        let backend = txn.get_database_backend();
        // MySQL's upsert has no condition: there the orders are read first (one round trip).
        // PostgreSQL and SQLite check in the upsert itself, for free.
        let read_first = backend == DbBackend::MySql;
        let kept = if read_first {
            let kept = existing_orders(txn, orders.keys().copied()).await?;
            for (order_id, (sum, currency)) in &orders {
                if let Some((paid, kept_in)) = kept.get(*order_id) {
                    refuse_unless_applicable(order_id, *sum, currency, *paid, kept_in)?;
                }
            }
            Some(kept)
        } else {
            None
        };
        let now = self.clock.now();
        let payments_insert = payment::Entity::insert_many(
            payments.iter().map(|(event, p)| payment_row(event, p, now)),
        );
        let added = excluded(backend, "amount_paid");
        let mut upsert = OnConflict::column(order::Column::OrderId);
        upsert
            .value(
                order::Column::AmountPaid,
                Expr::col((order::Entity, order::Column::AmountPaid)).add(added.clone()),
            )
            .value(order::Column::UpdatedAt, Expr::value(now));
        if !read_first {
            // The row is updated only in its own currency and below i64::MAX; a row left
            // alone is missing from the count of rows the statement applied.
            upsert
                .action_and_where(
                    Expr::col((order::Entity, order::Column::Currency))
                        .eq(excluded(backend, "currency")),
                )
                .action_and_where(
                    Expr::col((order::Entity, order::Column::AmountPaid))
                        .lte(Expr::val(i64::MAX).sub(added)),
                );
        }
        let orders_upsert = order::Entity::insert_many(
            orders
                .iter()
                .map(|(id, (amount, currency))| order_row(id, *amount, currency, now)),
        )
        .on_conflict(upsert.to_owned());
        let applied = if backend == DbBackend::Postgres {
            // One round trip instead of two: the payments' INSERT runs as a data-modifying
            // CTE of the orders' upsert. Both see the same snapshot and commit or fail as one
            // statement, and the statement's count is the upsert's alone. Under load a
            // batch's round trips, not its rows, are what it costs (BENCHMARKS.md).
            let paid = CommonTableExpression::new()
                .query(payments_insert.into_query())
                .table_name(Alias::new("paid"))
                .to_owned();
            let both = WithClause::new()
                .cte(paid)
                .to_owned()
                .query(orders_upsert.into_query());
            txn.execute(&both).await?.rows_affected()
        } else {
            payments_insert.exec_without_returning(txn).await?;
            orders_upsert.exec_without_returning(txn).await?
        };
        match kept {
            None if applied < orders.len() as u64 => {
                // Which order, and why: read only on this rare path (the upsert holds the rows).
                let now_kept = existing_orders(txn, orders.keys().copied()).await?;
                for (order_id, (sum, currency)) in &orders {
                    if let Some((paid, kept_in)) = now_kept.get(*order_id) {
                        refuse_unless_applicable(order_id, *sum, currency, *paid, kept_in)?;
                    }
                }
                Err(HandlerError::reject("an order refused a payment"))?;
            }
            None => {}
            Some(kept) => {
                // An order that did not exist when it was read may have been created meanwhile
                // by another instance, whose currency then stands (the upsert holds its row).
                let created: Vec<&str> = orders
                    .keys()
                    .copied()
                    .filter(|id| !kept.contains_key(*id))
                    .collect();
                if !created.is_empty() {
                    let now_kept = existing_orders(txn, created.iter().copied()).await?;
                    for order_id in created {
                        if let (Some((_, currency)), Some((_, kept_in))) =
                            (orders.get(order_id), now_kept.get(order_id))
                        {
                            same_currency(order_id, currency, kept_in)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The payments' rows and their orders' as an upsert adding to the total, only in the
    /// order's own currency: what `handle_batch` writes on PostgreSQL, where an order that
    /// refuses a payment fails the statement and the redo finds out which and why.
    fn writes(&self, events: &[&Event]) -> Option<Result<Writes, HandlerError>> {
        let writes = || {
            let payments = payments(events)?;
            let orders = order_totals(payments.iter().map(|(_, p)| p))?;
            let now = self.clock.now();
            let upsert = Upsert::on(order::Column::OrderId)
                .adds_to(order::Column::AmountPaid)
                .only_if_same(order::Column::Currency)
                .replace(order::Column::UpdatedAt);
            let orders = orders
                .iter()
                .map(|(id, (amount, currency))| order_row(id, *amount, currency, now));
            Ok(Writes::none()
                .and(Rows::of(
                    payments.iter().map(|(event, p)| payment_row(event, p, now)),
                ))
                .and(Rows::of(orders).upsert(upsert)))
        };
        Some(writes())
    }
}

/// The payments among `events`. Only a payment's body is parsed, one at a time, and dropped
/// once read.
fn payments<'a>(events: &[&'a Event]) -> Result<Vec<(&'a Event, Payment)>, HandlerError> {
    let mut payments = Vec::new();
    for event in events {
        if pointers(&event.key.event_type).is_none() {
            continue;
        }
        if let Some(p) = parse(&event.key.event_type, event.json().as_ref())? {
            payments.push((*event, p));
        }
    }
    Ok(payments)
}

fn payment_row(event: &Event, p: &Payment, now: DateTime<Utc>) -> payment::ActiveModel {
    payment::ActiveModel {
        order_id: Set(p.order_id.clone()),
        key_digest: Set(event.digest.to_vec()),
        amount: Set(p.amount),
        currency: Set(p.currency.clone()),
        created_at: Set(now),
        ..Default::default()
    }
}

/// A new order holding `amount`; on a conflict, `amount` is what is added to its total.
fn order_row(id: &str, amount: i64, currency: &str, now: DateTime<Utc>) -> order::ActiveModel {
    order::ActiveModel {
        order_id: Set(id.to_owned()),
        status: Set("paid".to_owned()),
        amount_paid: Set(amount),
        currency: Set(currency.to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
    }
}

/// The orders among `ids` that exist, with their total and currency. Read without a lock: an
/// order's currency is set when it is created and never changes (an order created meanwhile
/// is checked again after the upsert), and a total that another transaction grows past `i64`
/// in between makes the upsert itself fail (PostgreSQL and MySQL refuse the overflow; SQLite
/// has one writer, so what this reads is exact). A lock here would cost a write per order.
async fn existing_orders<'a>(
    txn: &DatabaseTransaction,
    ids: impl Iterator<Item = &'a str>,
) -> Result<HashMap<String, (i64, String)>, HandlerError> {
    let rows = order::Entity::find()
        .filter(order::Column::OrderId.is_in(ids.map(str::to_owned)))
        .all(txn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|o| (o.order_id, (o.amount_paid, o.currency)))
        .collect())
}

/// A payment of `sum` in `currency` onto an order holding `paid` in `kept_in`: refused for good
/// in another currency, or past `i64`.
fn refuse_unless_applicable(
    order_id: &str,
    sum: i64,
    currency: &str,
    paid: i64,
    kept_in: &str,
) -> Result<(), HandlerError> {
    same_currency(order_id, currency, kept_in)?;
    paid.checked_add(sum)
        .map(|_| ())
        .ok_or_else(|| HandlerError::reject(format!("order {order_id}'s total would overflow")))
}

/// An order is kept in one currency: a payment in another is refused for good, not summed.
fn same_currency(order_id: &str, currency: &str, kept_in: &str) -> Result<(), HandlerError> {
    if currency == kept_in {
        Ok(())
    } else {
        Err(HandlerError::reject(format!(
            "a payment in {currency} for order {order_id}, which is kept in {kept_in}"
        )))
    }
}

/// One row per order with the batch's amounts summed: an upsert may not touch a row twice in
/// one statement (PostgreSQL refuses it; SQLite would quietly apply both). The map keeps
/// orders sorted, so two instances' batches lock the same orders in the same order. Payments
/// of one order in two currencies, or a sum past `i64`, reject (the batch is then redone
/// event by event, and only the event at fault is rejected).
fn order_totals<'a>(
    payments: impl Iterator<Item = &'a Payment>,
) -> Result<BTreeMap<&'a str, (i64, &'a str)>, HandlerError> {
    let mut orders: BTreeMap<&str, (i64, &str)> = BTreeMap::new();
    for p in payments {
        let (sum, currency) = orders
            .entry(p.order_id.as_str())
            .or_insert((0, p.currency.as_str()));
        same_currency(&p.order_id, &p.currency, currency)?;
        *sum = sum.checked_add(p.amount).ok_or_else(|| {
            HandlerError::reject(format!("order {}'s total would overflow", p.order_id))
        })?;
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
mod tests;
