//! The statements of a `pull` destination's consumer: what it leased, acked or gave back.
//! A lease is the claim's (`claim`): the same rows, the same fence (the lease's token), so a
//! pull consumer and the rest of the outbox never disagree about who holds a row.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, TransactionTrait};

use super::settle::without_lease;
use crate::entities::delivery::{self, Column};
use crate::status::DeliveryStatus;

/// A lease of one delivery: the row and the claim's token.
pub type Lease = (i64, [u8; 16]);

/// The condition every consumer's answer needs: the row is still held under this lease, and
/// the lease has not run out (a lease that ran out may have been given to another consumer:
/// its token is stale, whatever became of the row).
fn held(
    (source, name): (&str, &str),
    (id, token): &Lease,
    now: DateTime<Utc>,
) -> sea_orm::Condition {
    sea_orm::Condition::all()
        .add(Column::Id.eq(*id))
        .add(Column::Source.eq(source))
        .add(Column::Destination.eq(name))
        .add(Column::LeaseToken.eq(token.to_vec()))
        .add(Column::Status.eq(DeliveryStatus::Pending))
        .add(Column::LeaseUntil.gte(now))
}

/// Marks each delivery of the destination `(source, name)` still held under its lease
/// delivered; returns, for each lease, whether it was (`false`: stale). One transaction: one
/// commit for the whole batch.
pub async fn ack(
    db: &DatabaseConnection,
    destination: (&str, &str),
    leases: &[Lease],
    now: DateTime<Utc>,
) -> Result<Vec<bool>, DbErr> {
    let txn = db.begin().await?;
    let mut acked = Vec::with_capacity(leases.len());
    for lease in leases {
        let done = without_lease()
            .col_expr(Column::Status, Expr::val(DeliveryStatus::Delivered))
            .col_expr(Column::DeliveredAt, Expr::val(now))
            .col_expr(Column::LastError, Expr::val(None::<String>))
            .filter(held(destination, lease, now))
            .exec(&txn)
            .await?;
        acked.push(done.rows_affected == 1);
    }
    txn.commit().await?;
    Ok(acked)
}

/// The held delivery of `lease`, for a nack to settle (`None`: stale).
pub async fn held_row(
    db: &DatabaseConnection,
    destination: (&str, &str),
    lease: &Lease,
    now: DateTime<Utc>,
) -> Result<Option<delivery::Model>, DbErr> {
    delivery::Entity::find()
        .filter(held(destination, lease, now))
        .one(db)
        .await
}
