//! `processed_events.attempt_token`: the token of the delivery whose transaction wrote the
//! record. A COMMIT can fail on the client (the connection dropped) after the server applied
//! it; when that delivery's rerun then meets the record, the token tells it the record is its
//! own, and it is answered `processed` rather than `duplicate`. Nullable: rows written before
//! it existed hold NULL.

use sea_orm_migration::prelude::*;

use crate::m20261122_000001_create_events::ProcessedEvents;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Attempt {
    AttemptToken,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ProcessedEvents::Table)
                    .add_column(ColumnDef::new(Attempt::AttemptToken).binary_len(16).null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ProcessedEvents::Table)
                    .drop_column(Attempt::AttemptToken)
                    .to_owned(),
            )
            .await
    }
}
