//! The outbox: one row per event a source forwards to the user's app, written by the
//! `forward` handler in the event's own transaction, so an event is recorded and scheduled for
//! delivery together or not at all. The delivery worker claims due rows with a lease
//! (`lease_until`, fenced by `lease_token`), so two instances never deliver one event at the
//! same time and a crashed instance's leases expire.

use sea_orm_migration::prelude::*;

use crate::columns::{digest, exact_text, payload, utc_time, utc_time_null};
use crate::limits::{width, MAX_KEY_PART_BYTES, MAX_SOURCE_BYTES};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub enum Deliveries {
    Table,
    Id,
    KeyDigest,
    Source,
    EventType,
    EventId,
    ContentType,
    Payload,
    OrderingKey,
    Status,
    Attempts,
    NextAttemptAt,
    LeaseUntil,
    LeaseToken,
    LastStatus,
    LastError,
    CreatedAt,
    DeliveredAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_database_backend();
        manager
            .create_table(
                Table::create()
                    .table(Deliveries::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Deliveries::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    // One delivery per event: a redelivery reschedules the same row.
                    .col(digest(Deliveries::KeyDigest).unique_key())
                    .col(exact_text(db, Deliveries::Source, width(MAX_SOURCE_BYTES)))
                    .col(exact_text(
                        db,
                        Deliveries::EventType,
                        width(MAX_KEY_PART_BYTES),
                    ))
                    .col(exact_text(
                        db,
                        Deliveries::EventId,
                        width(MAX_KEY_PART_BYTES),
                    ))
                    .col(
                        ColumnDef::new(Deliveries::ContentType)
                            .string_len(255)
                            .null(),
                    )
                    .col(payload(db, Deliveries::Payload))
                    // SHA-256 of (source, the ordering pointer's value); NULL: unordered.
                    .col(
                        ColumnDef::new(Deliveries::OrderingKey)
                            .binary_len(32)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Deliveries::Status)
                            .string_len(16)
                            .not_null()
                            .default("pending"),
                    )
                    .col(
                        ColumnDef::new(Deliveries::Attempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(utc_time(db, Deliveries::NextAttemptAt))
                    .col(utc_time_null(db, Deliveries::LeaseUntil))
                    .col(ColumnDef::new(Deliveries::LeaseToken).binary_len(16).null())
                    .col(ColumnDef::new(Deliveries::LastStatus).integer().null())
                    .col(ColumnDef::new(Deliveries::LastError).text().null())
                    .col(utc_time(db, Deliveries::CreatedAt))
                    .col(utc_time_null(db, Deliveries::DeliveredAt))
                    .to_owned(),
            )
            .await?;
        // The claim: a source's due pending rows, oldest first, read in index order and
        // stopped at the batch (without it, PostgreSQL sorts the whole backlog per claim:
        // 100,000 pending rows made each claim 45 ms instead of 0.14 ms; BENCHMARKS.md).
        manager
            .create_index(
                Index::create()
                    .name("idx_deliveries_due")
                    .table(Deliveries::Table)
                    .col(Deliveries::Source)
                    .col(Deliveries::Status)
                    .col(Deliveries::NextAttemptAt)
                    .col(Deliveries::Id)
                    .to_owned(),
            )
            .await?;
        // Ordering: is an earlier delivery of the same key still pending?
        manager
            .create_index(
                Index::create()
                    .name("idx_deliveries_ordering")
                    .table(Deliveries::Table)
                    .col(Deliveries::OrderingKey)
                    .col(Deliveries::Status)
                    .col(Deliveries::Id)
                    .to_owned(),
            )
            .await?;
        // Retention.
        manager
            .create_index(
                Index::create()
                    .name("idx_deliveries_created_at")
                    .table(Deliveries::Table)
                    .col(Deliveries::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Deliveries::Table).to_owned())
            .await
    }
}
