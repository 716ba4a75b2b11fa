//! `processed_events.mismatches`, `last_mismatch_sha256`, `last_mismatch_at`: duplicates whose
//! body differs from the one that settled the event, counted on the event's own record.
//!
//! A provider that resends an event id with another body is either broken or being
//! impersonated; either way the operator should see it on the event, not only in a log line
//! or a metric without labels per event. Three columns on the record (not a row per delivery)
//! keep the cost bounded whatever a sender floods: one counter, the last body's hash and when.

use sea_orm_migration::prelude::*;

use crate::columns::utc_time_null;
use crate::m20261122_000001_create_events::ProcessedEvents;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Mismatch {
    Mismatches,
    LastMismatchSha256,
    LastMismatchAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        // One column per statement: SQLite alters one at a time.
        for column in [
            ColumnDef::new(Mismatch::Mismatches)
                .big_integer()
                .not_null()
                .default(0)
                .to_owned(),
            ColumnDef::new(Mismatch::LastMismatchSha256)
                .binary_len(32)
                .null()
                .to_owned(),
            utc_time_null(backend, Mismatch::LastMismatchAt),
        ] {
            let mut column = column;
            manager
                .alter_table(
                    Table::alter()
                        .table(ProcessedEvents::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            Mismatch::LastMismatchAt,
            Mismatch::LastMismatchSha256,
            Mismatch::Mismatches,
        ] {
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
