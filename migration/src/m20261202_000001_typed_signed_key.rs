//! `processed_events.typed_signed_key`: the signed-bytes key counts the event type.
//!
//! The key of `m20261123_000001_signed_key` (source, signed bytes) refused the same bytes under
//! a second type, and providers send byte-identical bodies as distinct events under different
//! types (Shopify's `orders/create` and `orders/paid`): the second was answered `duplicate` and
//! lost. The new key, over (source, type, signed bytes), lives in a column of its own, unique
//! (NULLs apart) like the old one, rather than in the old column: rows written by earlier
//! releases keep their old key in `signed_key`, where the engine still looks them up (same
//! bytes, same type: a replay) until the retention sweep has removed them, and an instance of
//! the earlier release running beside this one during a rolling deploy still writes there.
//!
//! `failed_attempts.typed_signed_key` keeps a failed event's key, so that an operator's replay
//! of it writes the record a provider's delivery would have written.

use sea_orm_migration::prelude::*;

use crate::m20261122_000001_create_events::{FailedAttempts, ProcessedEvents};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum TypedSignedKey {
    TypedSignedKey,
}

const INDEX: &str = "idx_processed_events_typed_signed_key";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ProcessedEvents::Table.into_iden(),
            FailedAttempts::Table.into_iden(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .add_column(
                            ColumnDef::new(TypedSignedKey::TypedSignedKey)
                                .binary_len(32)
                                .null(),
                        )
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(ProcessedEvents::Table)
                    .col(TypedSignedKey::TypedSignedKey)
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
        for table in [
            ProcessedEvents::Table.into_iden(),
            FailedAttempts::Table.into_iden(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .drop_column(TypedSignedKey::TypedSignedKey)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
