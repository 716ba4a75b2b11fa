//! What an operator does to deliveries' rounds: a new round for one event's redelivery or a
//! redrive job's batch (same row, same `Idempotency-Key`: the app can still apply it once),
//! and the end of the pending ones of a destination that is no longer configured
//! ([`discard`]).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

use crate::entities::delivery::{self, Column};
use crate::status::DeliveryStatus;

/// What an operator's redelivery found.
#[derive(Debug, PartialEq, Eq)]
pub enum Redelivery {
    Scheduled,
    AlreadyPending,
    NoDelivery,
}

/// Schedules a new round of attempts for a delivered or dead event (same row, same
/// `Idempotency-Key`), due now. A pending one is left alone.
pub async fn redeliver(
    db: &impl ConnectionTrait,
    key_digest: &[u8],
    now: DateTime<Utc>,
) -> Result<Redelivery, DbErr> {
    let rescheduled = reschedule(
        db,
        &[key_digest.to_vec()],
        &[DeliveryStatus::Delivered, DeliveryStatus::Dead],
        now,
    )
    .await?;
    if rescheduled == 1 {
        return Ok(Redelivery::Scheduled);
    }
    let exists = delivery::Entity::find()
        .filter(Column::KeyDigest.eq(key_digest.to_vec()))
        .one(db)
        .await?;
    Ok(if exists.is_some() {
        Redelivery::AlreadyPending
    } else {
        Redelivery::NoDelivery
    })
}

/// Starts a new round of attempts, due now, for the deliveries among `digests` that are in
/// one of the states `from` (an operator's redelivery, a redrive job's batch): how many.
pub async fn reschedule(
    db: &impl ConnectionTrait,
    digests: &[Vec<u8>],
    from: &[DeliveryStatus],
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let result = delivery::Entity::update_many()
        .col_expr(Column::Status, Expr::val(DeliveryStatus::Pending))
        .col_expr(Column::Attempts, Expr::val(0))
        .col_expr(Column::NextAttemptAt, Expr::val(now))
        .col_expr(Column::DeliveredAt, Expr::val(None::<DateTime<Utc>>))
        .filter(Column::KeyDigest.is_in(digests.to_vec()))
        .filter(Column::Status.is_in(from.iter().copied()))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// Ends the pending deliveries of `source`'s destination, no longer configured: they become
/// dead, kept, and redeliverable (a redrive) should the destination come back. How many.
pub async fn discard(
    db: &impl ConnectionTrait,
    source: &str,
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
        .filter(Column::Status.eq(DeliveryStatus::Pending))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}
