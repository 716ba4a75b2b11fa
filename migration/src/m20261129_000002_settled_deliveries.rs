//! Indexes on `deliveries` that a delivered row leaves alone.
//!
//! The claim (`idx_deliveries_due`), the ordering check (`idx_deliveries_ordering`) and the
//! operator's lists of pending and dead deliveries (`idx_deliveries_status_recent`,
//! `idx_deliveries_source_recent`) all key on `status`. On PostgreSQL an UPDATE that changes an
//! indexed column cannot be HOT and adds an entry to *every* index of the table, so each
//! delivered attempt wrote seven index entries. (The drain's slowdown once blamed on the two
//! list indexes turned out to be the claim's plan on an unanalyzed table; BENCHMARKS.md,
//! "Forwarding: the drain, found and fixed". This migration still saves the index writes.)
//!
//! Only pending rows are claimed or block an ordering key, and only pending and dead rows are
//! few enough to need an index of their own: delivered rows are nearly all of the table, and
//! their list walks `(created_at, key_digest)` with the status as a residual filter. So on
//! PostgreSQL and SQLite the status-keyed indexes become **partial**: a row that becomes
//! `delivered` drops out of them, and its UPDATE writes three index entries (the primary key,
//! `key_digest`, `idx_deliveries_recent`) instead of seven.
//!
//! A partial index is used only when the query's own text implies its predicate; a bound
//! parameter never does. The queries therefore carry the predicates as literals
//! (`forward::outbox::state_is`, `forward::outbox::not_delivered`).
//!
//! MariaDB and MySQL have no partial indexes; there InnoDB rewrites only the secondary indexes
//! whose columns an UPDATE changes, and an index without `status` would make the dead list walk
//! every delivered row. Their indexes stay as they are.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// What `up` drops on PostgreSQL and SQLite, and `down` recreates.
const BEFORE: &[(&str, &str)] = &[
    (
        "idx_deliveries_due",
        "deliveries (source, status, next_attempt_at, id)",
    ),
    (
        "idx_deliveries_ordering",
        "deliveries (ordering_key, status, id)",
    ),
    ("idx_deliveries_created_at", "deliveries (created_at)"),
    (
        "idx_deliveries_status_recent",
        "deliveries (status, created_at, key_digest)",
    ),
    (
        "idx_deliveries_source_recent",
        "deliveries (source, status, created_at, key_digest)",
    ),
];

/// What `up` creates in their place.
const AFTER: &[(&str, &str)] = &[
    // The claim: a source's due pending rows, oldest first, stopped at the batch.
    (
        "idx_deliveries_due_pending",
        "deliveries (source, next_attempt_at, id) WHERE status = 'pending'",
    ),
    // Ordering: is an earlier delivery of the same key still pending?
    (
        "idx_deliveries_ordering_pending",
        "deliveries (ordering_key, id) WHERE status = 'pending'",
    ),
    // Retention, and the list of delivered rows (newest first, by keyset).
    (
        "idx_deliveries_recent",
        "deliveries (created_at, key_digest)",
    ),
    // The lists of pending and dead rows, and the backlog gauges.
    (
        "idx_deliveries_undelivered_recent",
        "deliveries (status, created_at, key_digest) WHERE status <> 'delivered'",
    ),
    (
        "idx_deliveries_undelivered_source",
        "deliveries (source, status, created_at, key_digest) WHERE status <> 'delivered'",
    ),
];

async fn swap(
    manager: &SchemaManager<'_>,
    drop: &[(&str, &str)],
    create: &[(&str, &str)],
) -> Result<(), DbErr> {
    let db = manager.get_connection();
    if db.get_database_backend() == DatabaseBackend::MySql {
        return Ok(());
    }
    for (name, _) in drop {
        db.execute_unprepared(&format!("DROP INDEX {name}")).await?;
    }
    for (name, definition) in create {
        db.execute_unprepared(&format!("CREATE INDEX {name} ON {definition}"))
            .await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        swap(manager, BEFORE, AFTER).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        swap(manager, AFTER, BEFORE).await
    }
}
