//! The dedupe record (`processed_events`) and the audit of failed attempts
//! (`failed_attempts`).
//!
//! They are separate tables on purpose: a `processed_events` row is only ever written inside the
//! event's own transaction, so its existence *is* the fact "this event's effects committed". A
//! failed attempt is written after that transaction rolled back, and must never be mistaken for
//! a processed one.

use sea_orm_migration::prelude::*;

use crate::columns::{digest, exact_text, utc_time};
use crate::limits::{width, MAX_KEY_PART_BYTES, MAX_SOURCE_BYTES};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub enum ProcessedEvents {
    Table,
    KeyDigest,
    Source,
    EventType,
    EventId,
    PayloadSha256,
    ReceivedAt,
    ProcessedAt,
}

#[derive(DeriveIden)]
pub enum FailedAttempts {
    Table,
    KeyDigest,
    Source,
    EventType,
    EventId,
    PayloadSha256,
    Attempts,
    LastError,
    FirstFailedAt,
    LastFailedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_database_backend();
        manager
            .create_table(
                Table::create()
                    .table(ProcessedEvents::Table)
                    .if_not_exists()
                    .col(digest(ProcessedEvents::KeyDigest).primary_key())
                    .col(exact_text(
                        db,
                        ProcessedEvents::Source,
                        width(MAX_SOURCE_BYTES),
                    ))
                    .col(exact_text(
                        db,
                        ProcessedEvents::EventType,
                        width(MAX_KEY_PART_BYTES),
                    ))
                    .col(exact_text(
                        db,
                        ProcessedEvents::EventId,
                        width(MAX_KEY_PART_BYTES),
                    ))
                    .col(digest(ProcessedEvents::PayloadSha256))
                    .col(utc_time(db, ProcessedEvents::ReceivedAt))
                    .col(utc_time(db, ProcessedEvents::ProcessedAt))
                    .to_owned(),
            )
            .await?;
        // The retention sweeper deletes by age; without this index it would scan the table.
        manager
            .create_index(
                Index::create()
                    .name("idx_processed_events_processed_at")
                    .table(ProcessedEvents::Table)
                    .col(ProcessedEvents::ProcessedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(FailedAttempts::Table)
                    .if_not_exists()
                    .col(digest(FailedAttempts::KeyDigest).primary_key())
                    .col(exact_text(
                        db,
                        FailedAttempts::Source,
                        width(MAX_SOURCE_BYTES),
                    ))
                    .col(exact_text(
                        db,
                        FailedAttempts::EventType,
                        width(MAX_KEY_PART_BYTES),
                    ))
                    .col(exact_text(
                        db,
                        FailedAttempts::EventId,
                        width(MAX_KEY_PART_BYTES),
                    ))
                    .col(digest(FailedAttempts::PayloadSha256))
                    .col(
                        ColumnDef::new(FailedAttempts::Attempts)
                            .integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(FailedAttempts::LastError).text().not_null())
                    .col(utc_time(db, FailedAttempts::FirstFailedAt))
                    .col(utc_time(db, FailedAttempts::LastFailedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_failed_attempts_last_failed_at")
                    .table(FailedAttempts::Table)
                    .col(FailedAttempts::LastFailedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(FailedAttempts::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(ProcessedEvents::Table).to_owned())
            .await
    }
}
