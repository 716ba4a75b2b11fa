//! Settling an attempt on the row its lease holds, and giving leases back at shutdown. Every
//! statement names the lease's token: an instance whose lease ran out and was taken over
//! writes nothing.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    TransactionTrait,
};

use crate::entities::attempt;
use crate::entities::delivery::{self, Column};
use crate::status::{AttemptOutcome, DeliveryStatus};

/// How an attempt settles its row.
pub enum Settle {
    Delivered {
        status: u16,
    },
    Retry {
        at: DateTime<Utc>,
        status: Option<u16>,
        error: String,
        /// The attempt's outcome is unknown: the lease is not ended but runs on until `at`,
        /// which marks the row as in doubt (a pending row with a lease that ran out) for a
        /// claim that takes such rows past the brakes.
        in_doubt: bool,
    },
    Dead {
        status: Option<u16>,
        error: String,
    },
}

/// An UPDATE that ends a lease (every way an attempt ends, and a release).
pub(super) fn without_lease() -> sea_orm::UpdateMany<delivery::Entity> {
    delivery::Entity::update_many()
        .col_expr(Column::LeaseUntil, Expr::val(None::<DateTime<Utc>>))
        .col_expr(Column::LeaseToken, Expr::val(None::<Vec<u8>>))
}

/// Records an attempt's end on the row this lease holds. `false`: the lease was lost (it ran
/// out and another instance took the row), and nothing was written.
pub async fn settle(
    db: &DatabaseConnection,
    row: &delivery::Model,
    token: &[u8; 16],
    settle: Settle,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let id = row.id;
    let (update, outcome, status, error) = match settle {
        Settle::Delivered { status } => {
            return Ok(settle_delivered(db, &[id], token, status, now).await? == 1);
        }
        Settle::Retry {
            at,
            status,
            error,
            in_doubt,
        } => (
            if in_doubt {
                delivery::Entity::update_many()
                    .col_expr(Column::LeaseUntil, Expr::val(Some(at)))
                    .col_expr(Column::LeaseToken, Expr::val(None::<Vec<u8>>))
            } else {
                without_lease()
            }
            .col_expr(Column::NextAttemptAt, Expr::val(at))
            .col_expr(Column::LastStatus, Expr::val(status.map(i32::from)))
            .col_expr(Column::LastError, Expr::val(error.clone())),
            AttemptOutcome::Retry,
            status,
            error,
        ),
        Settle::Dead { status, error } => (
            without_lease()
                .col_expr(Column::Status, Expr::val(DeliveryStatus::Dead))
                .col_expr(Column::LastStatus, Expr::val(status.map(i32::from)))
                .col_expr(Column::LastError, Expr::val(error.clone())),
            AttemptOutcome::Dead,
            status,
            error,
        ),
    };
    // The row and its history row commit together, so whoever reads the row's state (`dead`)
    // finds the attempt that made it so. A failed attempt is the rare path: the transaction
    // costs the drain nothing.
    let txn = db.begin().await?;
    let result = update
        .filter(Column::Id.eq(id))
        .filter(Column::LeaseToken.eq(token.to_vec()))
        .exec(&txn)
        .await?;
    if result.rows_affected != 1 {
        txn.rollback().await?;
        return Ok(false);
    }
    let history = attempt::ActiveModel {
        // The event's key: the event's history lists every destination's attempts.
        key_digest: Set(row.event_key().to_vec()),
        kind: Set(attempt::DELIVERY.to_owned()),
        destination: Set(Some(row.destination.clone())),
        outcome: Set(outcome),
        status_code: Set(status.map(i32::from)),
        error: Set(Some(error)),
        at: Set(now),
        ..Default::default()
    };
    attempt::Entity::insert(history)
        .exec_without_returning(&txn)
        .await?;
    txn.commit().await?;
    Ok(true)
}

pub async fn settle_delivered(
    db: &DatabaseConnection,
    ids: &[i64],
    token: &[u8; 16],
    status: u16,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let result = without_lease()
        .col_expr(Column::Status, Expr::val(DeliveryStatus::Delivered))
        .col_expr(Column::DeliveredAt, Expr::val(now))
        .col_expr(Column::LastStatus, Expr::val(i32::from(status)))
        .col_expr(Column::LastError, Expr::val(None::<String>))
        .filter(Column::Id.is_in(ids.iter().copied()))
        .filter(Column::LeaseToken.eq(token.to_vec()))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// Gives back leases this instance holds without an answer (at shutdown): the rows are due at
/// once for any instance, and the attempt that never finished is not counted.
pub async fn release(db: &DatabaseConnection, leases: &[(i64, [u8; 16])]) -> Result<u64, DbErr> {
    let mut released = 0;
    for (id, token) in leases {
        let result = without_lease()
            .col_expr(Column::Attempts, Expr::col(Column::Attempts).sub(1))
            .filter(Column::Id.eq(*id))
            .filter(Column::LeaseToken.eq(token.to_vec()))
            .exec(db)
            .await?;
        released += result.rows_affected;
    }
    Ok(released)
}
