//! Every statement forwarding makes on the `deliveries` table (the outbox): the insert the
//! `forward` handler makes in the event's transaction, the worker's claim under a lease
//! ([`claim`]), the end of an attempt ([`settle`]), an operator's new round ([`reschedule`]),
//! and the per-source backlog ([`backlog`]). Each is one short transaction or one statement:
//! nothing here is held while an attempt runs.
//!
//! The predicates on a delivery's state live here too, written so that the partial indexes
//! of migration `m20261129_000002` serve them; the operator's lists use them.

pub mod backlog;
pub mod bodies;
pub mod claim;
pub mod pull;
pub mod reschedule;
pub mod settle;

use sea_orm::sea_query::{Alias, Expr, ExprTrait, IntoIden, Query};
use sea_orm::{ColumnTrait, Condition, DatabaseTransaction, DbErr, EntityTrait, QueryFilter};

pub use backlog::{backlogs, per_source, Backlog, DestinationKey};
pub use claim::{candidates, claim, Brakes};
pub use reschedule::{discard, redeliver, reschedule, Redelivery};
pub use settle::{release, settle, settle_delivered, Settle};

use crate::config::FORWARD_HANDLER;
use crate::entities::{delivery, delivery_body};
use crate::status::DeliveryStatus;

/// Writes the outbox rows of a group of events, and the bodies of those that go to several
/// destinations, in their transaction: one multi-row INSERT each (none when empty).
pub async fn insert(
    rows: Vec<delivery::ActiveModel>,
    shared: Vec<delivery_body::ActiveModel>,
    txn: &DatabaseTransaction,
) -> Result<(), DbErr> {
    bodies::insert(shared, txn).await?;
    if rows.is_empty() {
        return Ok(());
    }
    delivery::Entity::insert_many(rows)
        .exec_without_returning(txn)
        .await
        .map(|_| ())
}

/// The rows of any of `events` (their digests): the `forward` destination's by its own key,
/// which is the event's (also in a row an older release wrote, without `event_digest`), and
/// another destination's by `event_digest`. Written so that the partial index
/// `idx_deliveries_event` (`WHERE destination <> 'forward'`, migration `m20261206_000001`)
/// serves the second half: a source with only its forward table writes no entry to it.
pub fn of_events(events: Vec<Vec<u8>>) -> Condition {
    Condition::any()
        .add(delivery::Column::KeyDigest.is_in(events.clone()))
        .add(
            Condition::all()
                .add(delivery::Column::EventDigest.is_in(events))
                .add(not_forward(delivery::Entity)),
        )
}

/// `<table>.destination <> 'forward'`, the name in the SQL text (see [`state_is`] for why).
pub fn not_forward(table: impl IntoIden) -> Expr {
    Expr::col((table, delivery::Column::Destination)).ne(Expr::cust(format!("'{FORWARD_HANDLER}'")))
}

/// The rows of `alias` that belong to the same event as `event_key`, an expression giving an
/// event's digest (a correlated subquery's condition; see [`of_events`]).
pub fn same_event(alias: Alias, event_key: Expr) -> Condition {
    Condition::any()
        .add(Expr::col((alias.clone(), delivery::Column::KeyDigest)).eq(event_key.clone()))
        .add(
            Condition::all()
                .add(Expr::col((alias.clone(), delivery::Column::EventDigest)).eq(event_key))
                .add(not_forward(alias)),
        )
}

/// Deletes every outbox row of an event, whatever its destination, in a forced replay's
/// transaction: the replay's handlers then write the rows today's configuration wants (its
/// body, if stored once for several, is replaced by the new rows' or swept).
pub async fn forget(txn: &DatabaseTransaction, event: &[u8]) -> Result<(), DbErr> {
    delivery::Entity::delete_many()
        .filter(of_events(vec![event.to_vec()]))
        .exec(txn)
        .await
        .map(|_| ())
}

/// The delivered and dead rows the retention may sweep: a configured destination's, or a
/// removed one's once it has no pending row left (an operator discarded them). Until then a
/// removed destination keeps all its rows, so that nothing of it goes while it may come back.
pub fn sweepable(configured: &[(String, String)]) -> Condition {
    let pending = Alias::new("pending");
    let still_pending = Query::select()
        .expr(Expr::val(1))
        .from_as(delivery::Entity, pending.clone())
        .and_where(
            Expr::col((pending.clone(), delivery::Column::Source))
                .equals((delivery::Entity, delivery::Column::Source)),
        )
        .and_where(
            Expr::col((pending.clone(), delivery::Column::Destination))
                .equals((delivery::Entity, delivery::Column::Destination)),
        )
        .and_where(state_is(pending, DeliveryStatus::Pending))
        .to_owned();
    configured
        .iter()
        .fold(Condition::any(), |any, (source, name)| {
            any.add(
                Condition::all()
                    .add(delivery::Column::Source.eq(source.as_str()))
                    .add(delivery::Column::Destination.eq(name.as_str())),
            )
        })
        .add(Expr::exists(still_pending).not())
}

/// `<table>.status = '<state>'`, the state written into the SQL text rather than bound.
/// PostgreSQL and SQLite use a partial index (migration `m20261129_000002`) only when the
/// query's own text implies the index's predicate, which a bound parameter never does.
pub fn state_is(table: impl IntoIden, state: DeliveryStatus) -> Expr {
    Expr::col((table, delivery::Column::Status)).eq(Expr::cust(format!("'{}'", state.as_str())))
}

/// Pending or dead, as the predicate of the partial list indexes reads: the condition that
/// lets a list of pending or dead rows, or the backlog count, walk those small indexes.
pub fn not_delivered() -> Expr {
    Expr::col((delivery::Entity, delivery::Column::Status)).ne(Expr::cust(format!(
        "'{}'",
        DeliveryStatus::Delivered.as_str()
    )))
}

/// Rows in `state` (pending or dead), written so that the partial list indexes serve them.
pub fn in_undelivered_state(state: DeliveryStatus) -> Expr {
    state_is(delivery::Entity, state).and(not_delivered())
}
