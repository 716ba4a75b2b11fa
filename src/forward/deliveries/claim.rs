//! Claiming due deliveries under a lease.
//!
//! **One in flight per event, across instances.** A claim sets `lease_until` and a fresh
//! random `lease_token` on rows that are pending, due, and not leased (or whose lease ran
//! out: the instance that held it crashed). On PostgreSQL and SQLite it is one statement,
//! `UPDATE … WHERE id IN (candidates) RETURNING *`: PostgreSQL selects the candidates
//! `FOR UPDATE SKIP LOCKED`, so concurrent claims take different rows, and SQLite runs one
//! writing statement at a time. MariaDB, which cannot update a table it reads in a subquery,
//! selects the whole rows `FOR UPDATE SKIP LOCKED` and then updates them in the same
//! transaction, repeating the conditions; on Galera, where row locks are local to a node, two
//! nodes' claims of one row collide at COMMIT (error 1213) and one of them claims nothing. Every later
//! statement on the row names the token (a fence): an instance whose lease expired and was
//! taken over cannot settle a row it no longer holds.
//!
//! **Order.** With an ordering key, a row is claimable only while no earlier row (smaller id)
//! of the same key is pending: delivery N+1 does not start until N is delivered or dead.
//! Ids follow insert order, which is commit order for events posted one after another.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, LockBehavior, LockType, Query};
use sea_orm::{
    ColumnTrait, Condition, DatabaseBackend, DatabaseConnection, DbErr, EntityTrait,
    IsolationLevel, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Select, TransactionTrait,
};

use super::{bodies, state_is};
use crate::entities::delivery::{self, Column};
use crate::forward::brakes::available;
use crate::status::DeliveryStatus;

/// What a claim makes of the destination's brakes (a pause, a hold: `forward::brakes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Brakes<'a> {
    /// Only rows of a destination neither paused nor held back.
    Respect,
    /// As `Respect`, but a row in doubt (pending, its lease run out: an attempt whose outcome
    /// is unknown, cut off by a crash or settled as `Fault::InDoubt`) is taken past them: a
    /// destination that dedupes within a window (NATS JetStream) must see its retry soon.
    InDoubtPast,
    /// Past the brakes: the circuit breaker's probe.
    Ignore,
    /// Only these rows, past the brakes: this instance's retries in doubt, due now (primary
    /// key lookups: no scan of the backlog for them).
    Only(&'a [i64]),
}

/// Claims up to `limit` due deliveries of the destination `(source, name)` until
/// `lease_until`, under `token`; returns the claimed rows, their `attempts` already counting
/// this attempt and their bodies read ([`bodies::fill`]). A claim that lost a race
/// to another node claims nothing (`Ok(vec![])`). `brakes`: see [`Brakes`].
pub async fn claim(
    db: &DatabaseConnection,
    destination: (&str, &str),
    limit: u64,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    token: &[u8; 16],
    brakes: Brakes<'_>,
) -> Result<Vec<delivery::Model>, DbErr> {
    let take = |update: sea_orm::UpdateMany<delivery::Entity>| {
        update
            .col_expr(Column::LeaseUntil, Expr::val(lease_until))
            .col_expr(Column::LeaseToken, Expr::val(token.to_vec()))
            .col_expr(Column::Attempts, Expr::col(Column::Attempts).add(1))
    };
    let backend = db.get_database_backend();
    if backend != DatabaseBackend::MySql {
        // One statement: the candidates (locked, skipping rows another claim holds, on
        // PostgreSQL; SQLite has one writer at a time) are updated and returned by id, so the
        // UPDATE has no condition of its own for a planner to read from another index. Its
        // earlier form repeated `status = 'pending'` and, on a table not yet analyzed after a
        // burst of inserts, PostgreSQL intersected the primary key with a scan of every
        // pending row's index entry: 6.7 ms a claim with 100,000 pending (BENCHMARKS.md).
        let mut rows = take(delivery::Entity::update_many())
            .filter(
                Column::Id
                    .in_subquery(candidates(backend, destination, limit, now, brakes).into_query()),
            )
            .exec_with_returning(db)
            .await?;
        rows.sort_unstable_by_key(|row| row.id);
        bodies::fill(db, &mut rows).await?;
        return Ok(rows);
    }
    // READ COMMITTED: under MariaDB's default REPEATABLE READ, the locking read also locks
    // the gaps of the index range it walks, and every new event's outbox INSERT falls into
    // that range (due now): ingestion waited on each claim, and with claims as frequent as
    // commits, commit → delivered reached seconds at half the ingest rate (BENCHMARKS.md).
    // Row locks on the candidates are all a claim needs.
    let txn = db
        .begin_with_config(Some(IsolationLevel::ReadCommitted), None)
        .await?;
    let mut rows = candidates(backend, destination, limit, now, brakes)
        .all(&txn)
        .await?;
    if rows.is_empty() {
        txn.rollback().await?;
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
    let taken = take(delivery::Entity::update_many())
        .filter(Column::Id.is_in(ids))
        .filter(unleased(now))
        .exec(&txn)
        .await?;
    if taken.rows_affected != rows.len() as u64 {
        // Cannot happen under the rows' locks; should it, claim nothing rather than attempt a
        // row this claim does not hold.
        txn.rollback().await?;
        return Ok(Vec::new());
    }
    txn.commit().await?;
    // The rows as the UPDATE left them: the locking read returned them whole, so no read
    // after the commit (one round trip fewer per claim; BENCHMARKS.md).
    for row in &mut rows {
        row.attempts += 1;
        row.lease_until = Some(lease_until);
        row.lease_token = Some(token.to_vec());
    }
    rows.sort_unstable_by_key(|row| row.id);
    bodies::fill(db, &mut rows).await?;
    Ok(rows)
}

/// Up to `limit` claimable rows of the destination `(source, name)`, the longest due first, as
/// `backend`'s claim reads them from `idx_deliveries_due_destination` (a test checks each
/// backend's plan of this statement): their ids, locked skipping rows another claim holds, on
/// PostgreSQL; their ids on SQLite (one writer at a time); whole rows, locked the same way,
/// on MariaDB, where they are the claim's answer.
pub fn candidates(
    backend: DatabaseBackend,
    destination: (&str, &str),
    limit: u64,
    now: DateTime<Utc>,
    brakes: Brakes<'_>,
) -> Select<delivery::Entity> {
    let due = delivery::Entity::find()
        .filter(claimable(destination, now, brakes))
        .order_by_asc(Column::NextAttemptAt)
        .order_by_asc(Column::Id)
        .limit(limit);
    let locked = |select: Select<delivery::Entity>| {
        select.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
    };
    match backend {
        DatabaseBackend::MySql => locked(due),
        DatabaseBackend::Postgres => locked(due.select_only().column(Column::Id)),
        _ => due.select_only().column(Column::Id),
    }
}

/// Pending and not leased (or the lease ran out). The UPDATE that takes a lease repeats this
/// (MySQL refuses an UPDATE whose subquery reads its own table, so the ordering check is the
/// SELECT's, under its row locks).
fn unleased(now: DateTime<Utc>) -> Condition {
    Condition::all()
        .add(state_is(delivery::Entity, DeliveryStatus::Pending))
        .add(
            Condition::any()
                .add(Column::LeaseUntil.is_null())
                .add(Column::LeaseUntil.lt(now)),
        )
}

/// Pending, due, not leased (or the lease ran out), its destination neither paused nor held
/// back by its app ([`available`], as `brakes` says), and first of its ordering key.
fn claimable((source, name): (&str, &str), now: DateTime<Utc>, brakes: Brakes<'_>) -> Condition {
    let earlier = Alias::new("earlier");
    let table = Alias::new("deliveries");
    let earlier_pending = Query::select()
        .expr(Expr::val(1))
        .from_as(delivery::Entity, earlier.clone())
        .and_where(
            Expr::col((earlier.clone(), Column::OrderingKey))
                .equals((table.clone(), Column::OrderingKey)),
        )
        // The equality implies `ordering_key IS NOT NULL`, the ordering index's predicate
        // (migration `m20261210_000001`), for PostgreSQL's generic plan and SQLite alike (the
        // plans test reads both).
        .and_where(state_is(earlier.clone(), DeliveryStatus::Pending))
        .and_where(Expr::col((earlier, Column::Id)).lt(Expr::col((table, Column::Id))))
        .to_owned();
    unleased(now)
        .add(Column::Source.eq(source))
        .add(Column::Destination.eq(name))
        .add(Column::NextAttemptAt.lte(now))
        .add_option(match brakes {
            Brakes::Respect => Some(Condition::all().add(available(name, now))),
            Brakes::InDoubtPast => Some(
                Condition::any()
                    .add(available(name, now))
                    .add(Column::LeaseUntil.is_not_null()),
            ),
            Brakes::Ignore => None,
            Brakes::Only(ids) => Some(Condition::all().add(Column::Id.is_in(ids.iter().copied()))),
        })
        .add(
            Condition::any()
                .add(Column::OrderingKey.is_null())
                .add(Expr::exists(earlier_pending).not()),
        )
}
