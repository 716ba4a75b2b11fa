//! `processed_events.signed_key`: a second unique key on the dedupe record, over (source, the
//! SHA-256 of the bytes a delivery's signature covers).
//!
//! GitHub, Shopify and the generic provider sign the body alone and carry the event id in a
//! header the signature does not cover: without this key, a captured delivery re-sent under a
//! new id would be a new event. The column is nullable (unsigned sources, and rows written
//! before it existed, hold NULL) and its unique index ignores NULLs on every backend, so it
//! is added in place over a table of live records.

use sea_orm_migration::prelude::*;

use crate::m20261122_000001_create_events::ProcessedEvents;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SignedKey {
    SignedKey,
}

const INDEX: &str = "idx_processed_events_signed_key";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ProcessedEvents::Table)
                    .add_column(ColumnDef::new(SignedKey::SignedKey).binary_len(32).null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(ProcessedEvents::Table)
                    .col(SignedKey::SignedKey)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(INDEX)
                    .table(ProcessedEvents::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ProcessedEvents::Table)
                    .drop_column(SignedKey::SignedKey)
                    .to_owned(),
            )
            .await
    }
}
