//! Poison events: an event that a handler refuses for good is settled as `rejected`, with its
//! reason, in the dedupe record itself (`processed_events.status`, `.reason`), so that every
//! later delivery is answered the same way and the provider stops retrying. Its raw payload,
//! and that of a failed attempt, is kept in `event_payloads` until the retention sweep, so it
//! can be replayed once the cause is fixed.

use sea_orm_migration::prelude::*;

use crate::columns::{digest, payload, utc_time};
use crate::m20261122_000001_create_events::ProcessedEvents;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Settlement {
    Status,
    Reason,
}

#[derive(DeriveIden)]
pub enum EventPayloads {
    Table,
    KeyDigest,
    Payload,
    StoredAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_database_backend();
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(ProcessedEvents::Table)
                    .add_column(
                        ColumnDef::new(Settlement::Status)
                            .string_len(16)
                            .not_null()
                            .default("processed"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ProcessedEvents::Table)
                    .add_column(ColumnDef::new(Settlement::Reason).text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(EventPayloads::Table)
                    .if_not_exists()
                    .col(digest(EventPayloads::KeyDigest).primary_key())
                    .col(payload(db, EventPayloads::Payload))
                    .col(utc_time(db, EventPayloads::StoredAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_event_payloads_stored_at")
                    .table(EventPayloads::Table)
                    .col(EventPayloads::StoredAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(EventPayloads::Table).to_owned())
            .await?;
        for column in [Settlement::Reason, Settlement::Status] {
            manager
                .alter_table(
                    Table::alter()
                        .table(ProcessedEvents::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
