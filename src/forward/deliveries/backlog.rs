//! What waits in the outbox, per source: the gauges and the console's overview read it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect};

use super::not_delivered;
use crate::entities::delivery::{self, Column};
use crate::status::DeliveryStatus;

/// One source's outbox: what waits, since when, and what gave up.
#[derive(Debug, Clone, Default)]
pub struct Backlog {
    pub pending: u64,
    /// The creation time of the oldest pending delivery.
    pub oldest_pending: Option<DateTime<Utc>>,
    pub dead: u64,
}

/// Every source's backlog, in one grouped read of the pending and dead rows (the
/// `(source, status, created_at, …)` index of undelivered rows covers it). A source with
/// neither is absent.
pub async fn backlogs<C: ConnectionTrait>(db: &C) -> Result<HashMap<String, Backlog>, DbErr> {
    let rows: Vec<(String, DeliveryStatus, i64, Option<DateTime<Utc>>)> = delivery::Entity::find()
        .select_only()
        .column(Column::Source)
        .column(Column::Status)
        .column_as(Expr::col(Column::KeyDigest).count(), "n")
        .column_as(Expr::col(Column::CreatedAt).min(), "oldest")
        .filter(Column::Status.is_in([DeliveryStatus::Pending, DeliveryStatus::Dead]))
        .filter(not_delivered())
        .group_by(Column::Source)
        .group_by(Column::Status)
        .into_tuple()
        .all(db)
        .await?;
    let mut by_source = HashMap::<String, Backlog>::new();
    for (source, status, n, oldest) in rows {
        let entry = by_source.entry(source).or_default();
        let n = u64::try_from(n).unwrap_or_default();
        if status == DeliveryStatus::Pending {
            entry.pending = n;
            entry.oldest_pending = oldest;
        } else {
            entry.dead = n;
        }
    }
    Ok(by_source)
}
