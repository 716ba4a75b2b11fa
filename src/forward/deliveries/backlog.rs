//! What waits in the outbox, per destination: the gauges, `GET /destinations` and the
//! console's overview read it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect};

use super::not_delivered;
use crate::entities::delivery::{self, Column};
use crate::status::DeliveryStatus;

/// One destination's outbox: what waits, since when, and what gave up.
#[derive(Debug, Clone, Default)]
pub struct Backlog {
    pub pending: u64,
    /// The creation time of the oldest pending delivery.
    pub oldest_pending: Option<DateTime<Utc>>,
    pub dead: u64,
}

/// The outbox's (source, destination) pairs.
pub type DestinationKey = (String, String);

/// Every destination's backlog, in one grouped read of the pending and dead rows (the
/// `(status, created_at, …)` index of undelivered rows serves it). A destination with neither
/// is absent.
pub async fn backlogs<C: ConnectionTrait>(
    db: &C,
) -> Result<HashMap<DestinationKey, Backlog>, DbErr> {
    type Row = (String, String, DeliveryStatus, i64, Option<DateTime<Utc>>);
    let rows: Vec<Row> = delivery::Entity::find()
        .select_only()
        .column(Column::Source)
        .column(Column::Destination)
        .column(Column::Status)
        .column_as(Expr::col(Column::KeyDigest).count(), "n")
        .column_as(Expr::col(Column::CreatedAt).min(), "oldest")
        .filter(Column::Status.is_in([DeliveryStatus::Pending, DeliveryStatus::Dead]))
        .filter(not_delivered())
        .group_by(Column::Source)
        .group_by(Column::Destination)
        .group_by(Column::Status)
        .into_tuple()
        .all(db)
        .await?;
    let mut by_destination = HashMap::<DestinationKey, Backlog>::new();
    for (source, name, status, n, oldest) in rows {
        let entry = by_destination.entry((source, name)).or_default();
        let n = u64::try_from(n).unwrap_or_default();
        if status == DeliveryStatus::Pending {
            entry.pending = n;
            entry.oldest_pending = oldest;
        } else {
            entry.dead = n;
        }
    }
    Ok(by_destination)
}

/// Each source's backlog, its destinations' together: what waits, the oldest of it, and what
/// gave up.
pub fn per_source(backlogs: HashMap<DestinationKey, Backlog>) -> HashMap<String, Backlog> {
    let mut by_source = HashMap::<String, Backlog>::new();
    for ((source, _), b) in backlogs {
        let entry = by_source.entry(source).or_default();
        entry.pending += b.pending;
        entry.dead += b.dead;
        entry.oldest_pending = match (entry.oldest_pending, b.oldest_pending) {
            (Some(a), Some(b)) => Some(Ord::min(a, b)),
            (a, b) => a.or(b),
        };
    }
    by_source
}
