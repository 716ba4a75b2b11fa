//! Fan-out: a source's events go to several destinations, one outbox row per (event,
//! destination).
//!
//! - `deliveries.destination`: the destination a row belongs to. Rows written before fan-out
//!   all belong to each source's forward table, the destination named `forward`: the column's
//!   default says so, for those rows and for any an older binary still writes.
//! - `deliveries.event_digest`: the event's key (the dedupe record's digest). The row's own
//!   `key_digest` stays unique per row: for `forward` it is the event's digest (today's key, so
//!   rows pending from before the upgrade still dedupe), for another destination the SHA-256 of
//!   (event digest, name). The event view, a redelivery, a forced replay and the sweep of
//!   bodies find a `forward` row by its own key (rows from before the upgrade, and rows an
//!   older instance still writes during a rolling upgrade, have no `event_digest`: nothing is
//!   backfilled, so the upgrade does not rewrite the table) and another destination's by
//!   `event_digest`, through an index that is partial on PostgreSQL and SQLite (`WHERE
//!   destination <> 'forward'`): a source with only its forward table pays nothing for it, on
//!   the insert nor on the claim's and the settle's updates.
//! - `delivery_bodies`: an event that goes to several destinations has its body stored once
//!   here, keyed by the event's digest, not once per row (the rows then hold an empty
//!   `payload`); the sweeper deletes a body once no row of its event is left. An event with one
//!   destination keeps its body in its row, as before.
//! - The claim reads one destination's due rows: its index gains the column.
//! - `attempts.destination`: which destination a delivery attempt in an event's history went
//!   to (null for a handler's attempt, and for history from before fan-out: `forward`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

use crate::columns::{digest, exact_text, payload, utc_time};
use crate::m20261123_000004_outbox::Deliveries;
use crate::m20261205_000001_destinations::MAX_DESTINATION_BYTES;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Fanout {
    Destination,
    EventDigest,
}

#[derive(DeriveIden)]
enum Attempts {
    Table,
    Destination,
}

#[derive(DeriveIden)]
pub enum DeliveryBodies {
    Table,
    EventDigest,
    Payload,
    CreatedAt,
}

/// The claim's index, before and after, per backend: (name, definition).
fn claim_index(backend: DatabaseBackend, after: bool) -> (&'static str, &'static str) {
    match (backend, after) {
        (DatabaseBackend::MySql, false) => (
            "idx_deliveries_due",
            "deliveries (source, status, next_attempt_at, id)",
        ),
        (DatabaseBackend::MySql, true) => (
            "idx_deliveries_due_destination",
            "deliveries (source, destination, status, next_attempt_at, id)",
        ),
        (_, false) => (
            "idx_deliveries_due_pending",
            "deliveries (source, next_attempt_at, id) WHERE status = 'pending'",
        ),
        (_, true) => (
            "idx_deliveries_due_destination",
            "deliveries (source, destination, next_attempt_at, id) WHERE status = 'pending'",
        ),
    }
}

async fn swap_claim_index(manager: &SchemaManager<'_>, up: bool) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let backend = db.get_database_backend();
    let (create, definition) = claim_index(backend, up);
    let (drop, _) = claim_index(backend, !up);
    db.execute_unprepared(&format!("CREATE INDEX {create} ON {definition}"))
        .await?;
    let drop = match backend {
        DatabaseBackend::MySql => format!("DROP INDEX {drop} ON deliveries"),
        _ => format!("DROP INDEX {drop}"),
    };
    db.execute_unprepared(&drop).await?;
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        // One column per ALTER: SQLite adds one at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(Deliveries::Table)
                    .add_column(
                        exact_text(backend, Fanout::Destination, MAX_DESTINATION_BYTES)
                            .default("forward")
                            .to_owned(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Deliveries::Table)
                    .add_column(
                        ColumnDef::new(Fanout::EventDigest)
                            .binary_len(32)
                            .null()
                            .to_owned(),
                    )
                    .to_owned(),
            )
            .await?;
        // Partial where the backend has it: a `forward` row is found by its own key, so a
        // source with only its forward table writes no entry here on any insert or update.
        let db = manager.get_connection();
        let event_index = match backend {
            DatabaseBackend::MySql => {
                "CREATE INDEX idx_deliveries_event ON deliveries (event_digest)"
            }
            _ => {
                "CREATE INDEX idx_deliveries_event ON deliveries (event_digest) \
                 WHERE destination <> 'forward'"
            }
        };
        db.execute_unprepared(event_index).await?;
        swap_claim_index(manager, true).await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Attempts::Table)
                    .add_column(
                        ColumnDef::new(Attempts::Destination)
                            .string_len(MAX_DESTINATION_BYTES)
                            .null()
                            .to_owned(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(DeliveryBodies::Table)
                    .col(digest(DeliveryBodies::EventDigest).primary_key())
                    .col(payload(backend, DeliveryBodies::Payload))
                    .col(utc_time(backend, DeliveryBodies::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DeliveryBodies::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Attempts::Table)
                    .drop_column(Attempts::Destination)
                    .to_owned(),
            )
            .await?;
        swap_claim_index(manager, false).await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_deliveries_event")
                    .table(Deliveries::Table)
                    .to_owned(),
            )
            .await?;
        for column in [Fanout::EventDigest, Fanout::Destination] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Deliveries::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
