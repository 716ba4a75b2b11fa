//! What an operator does to deliveries' rounds: a new round for one event's redelivery or a
//! redrive job's batch (same row, same `Idempotency-Key`: the app can still apply it once),
//! and the end of the pending ones of a destination that is no longer configured
//! ([`discard`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect, QueryTrait,
};

use crate::entities::delivery::{self, Column};
use crate::status::DeliveryStatus;

/// What an operator's redelivery did to one destination's delivery of the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redelivery {
    /// A new round is due now.
    Scheduled,
    /// It was pending already: left alone.
    AlreadyPending,
}

impl Redelivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Redelivery::Scheduled => "scheduled",
            Redelivery::AlreadyPending => "pending",
        }
    }
}

/// Schedules a new round of attempts, due now, for each delivered or dead delivery of the
/// event (of `destination` only, when given): same row, same `Idempotency-Key`. Pending ones
/// are left alone. What happened to each, by destination; empty when the event has no
/// delivery (to that destination).
pub async fn redeliver(
    db: &impl ConnectionTrait,
    event: &[u8],
    destination: Option<&str>,
    now: DateTime<Utc>,
) -> Result<BTreeMap<String, Redelivery>, DbErr> {
    let rows: Vec<(i64, String)> = delivery::Entity::find()
        .select_only()
        .column(Column::Id)
        .column(Column::Destination)
        .filter(super::of_events(vec![event.to_vec()]))
        .apply_if(destination, |q, name| {
            q.filter(Column::Destination.eq(name))
        })
        .into_tuple()
        .all(db)
        .await?;
    let mut done = BTreeMap::new();
    for (id, name) in rows {
        let scheduled = new_round(now)
            .filter(Column::Id.eq(id))
            .filter(Column::Status.is_in([DeliveryStatus::Delivered, DeliveryStatus::Dead]))
            .exec(db)
            .await?
            .rows_affected
            == 1;
        let what = if scheduled {
            Redelivery::Scheduled
        } else {
            Redelivery::AlreadyPending
        };
        done.insert(name, what);
    }
    Ok(done)
}

/// Starts a new round of attempts, due now, for the deliveries of `events` (to `destination`
/// only, when given) that are in one of the states `from` (a redrive job's batch): how many
/// rows.
pub async fn reschedule(
    db: &impl ConnectionTrait,
    events: &[Vec<u8>],
    destination: Option<&str>,
    from: &[DeliveryStatus],
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let result = new_round(now)
        .filter(super::of_events(events.to_vec()))
        .apply_if(destination, |q, name| {
            q.filter(Column::Destination.eq(name))
        })
        .filter(Column::Status.is_in(from.iter().copied()))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// A new round: pending, no attempt yet, due `now`, its `round` counted (a broker that
/// dedupes by message id takes it as a new message).
fn new_round(now: DateTime<Utc>) -> sea_orm::UpdateMany<delivery::Entity> {
    delivery::Entity::update_many()
        .col_expr(Column::Status, Expr::val(DeliveryStatus::Pending))
        .col_expr(Column::Round, Expr::col(Column::Round).add(1))
        .col_expr(Column::Attempts, Expr::val(0))
        .col_expr(Column::NextAttemptAt, Expr::val(now))
        .col_expr(Column::DeliveredAt, Expr::val(None::<DateTime<Utc>>))
}

/// Ends the pending deliveries of the destination `(source, name)`, no longer configured: they
/// become dead, kept, and redeliverable (a redrive) should the destination come back. How many.
pub async fn discard(
    db: &impl ConnectionTrait,
    (source, name): (&str, &str),
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let result = delivery::Entity::update_many()
        .col_expr(Column::Status, Expr::val(DeliveryStatus::Dead))
        .col_expr(Column::LeaseUntil, Expr::val(None::<DateTime<Utc>>))
        .col_expr(Column::LeaseToken, Expr::val(None::<Vec<u8>>))
        .col_expr(
            Column::LastError,
            Expr::val(format!(
                "discarded by an operator at {}: the destination is no longer configured",
                now.to_rfc3339()
            )),
        )
        .filter(Column::Source.eq(source))
        .filter(Column::Destination.eq(name))
        .filter(Column::Status.eq(DeliveryStatus::Pending))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}
