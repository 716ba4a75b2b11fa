//! Fewer index entries per event: four indexes stop holding rows that no lookup of theirs
//! can find.
//!
//! An insert writes an entry into every index whose predicate its row meets, NULL keys
//! included, and on PostgreSQL index insertion was half of the database's CPU per event with
//! three destinations (BENCHMARKS, change 25). Three indexes held mostly NULLs:
//! - `processed_events.signed_key`, the key of earlier releases: no row this release writes
//!   has one, so only the old rows are left in it;
//! - `processed_events.typed_signed_key`: NULL for every unsigned source;
//! - `deliveries.ordering_key` in the ordering check's index: NULL for every destination
//!   without `ordering`, the usual case.
//!
//! Each becomes partial, `WHERE <column> IS NOT NULL`, on PostgreSQL and SQLite. Uniqueness is
//! what it was (NULLs never conflicted); every lookup names a value, which implies the
//! predicate, or states `IS NOT NULL` in its own text (an `IN` list), so PostgreSQL's generic
//! plans and SQLite use the index (a test reads the claim's plans).
//!
//! And `deliveries (created_at, key_digest)`, which only the list of delivered rows and the
//! sweep of delivered rows walk, holds delivered rows only (`WHERE status = 'delivered'`): a
//! new row is pending, and the sweep of dead rows walks `(status, created_at, …)` of
//! undelivered rows instead. The entry is written when the row is delivered, as it was: its
//! UPDATE already wrote one into every index it is in.
//!
//! MariaDB and MySQL have no partial indexes: theirs stay.
//!
//! Each new index is built before the old one is dropped, in the migration's transaction: on
//! PostgreSQL it holds the table's lock until the index is built (seconds per million rows).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (index before, index after): each a name and a definition. The new index has a name of its
/// own and is built before the old one is dropped: on SQLite, another connection of the pool
/// may still hold the schema that has the old name.
type Swap = ((&'static str, &'static str), (&'static str, &'static str));

const INDEXES: &[Swap] = &[
    (
        (
            "idx_processed_events_signed_key",
            "UNIQUE INDEX {} ON processed_events (signed_key)",
        ),
        (
            "idx_processed_events_signed_key_set",
            "UNIQUE INDEX {} ON processed_events (signed_key) WHERE signed_key IS NOT NULL",
        ),
    ),
    (
        (
            "idx_processed_events_typed_signed_key",
            "UNIQUE INDEX {} ON processed_events (typed_signed_key)",
        ),
        (
            "idx_processed_events_typed_signed_key_set",
            "UNIQUE INDEX {} ON processed_events (typed_signed_key) \
             WHERE typed_signed_key IS NOT NULL",
        ),
    ),
    (
        (
            "idx_deliveries_recent",
            "INDEX {} ON deliveries (created_at, key_digest)",
        ),
        (
            "idx_deliveries_delivered_recent",
            "INDEX {} ON deliveries (created_at, key_digest) WHERE status = 'delivered'",
        ),
    ),
    (
        (
            "idx_deliveries_ordering_pending",
            "INDEX {} ON deliveries (ordering_key, id) WHERE status = 'pending'",
        ),
        (
            "idx_deliveries_ordering_keyed",
            "INDEX {} ON deliveries (ordering_key, id) \
             WHERE status = 'pending' AND ordering_key IS NOT NULL",
        ),
    ),
];

async fn swap(manager: &SchemaManager<'_>, up: bool) -> Result<(), DbErr> {
    let db = manager.get_connection();
    if db.get_database_backend() == DatabaseBackend::MySql {
        return Ok(());
    }
    for &(before, after) in INDEXES {
        let ((drop, _), (create, definition)) = if up { (before, after) } else { (after, before) };
        db.execute_unprepared(&format!("CREATE {}", definition.replace("{}", create)))
            .await?;
        db.execute_unprepared(&format!("DROP INDEX {drop}")).await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        swap(manager, true).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        swap(manager, false).await
    }
}
