//! `destinations`: what the whole fleet knows about one destination of a source, one row each
//! (created when first needed): how long its app asked to be left alone (`hold_until`, from a
//! 429, or a 503 with `Retry-After`), whether it is paused (`paused_reason`, `paused_at`),
//! which every instance's claim respects, the circuit breaker's count of consecutive
//! failed attempts and its next probe while paused by them, and the rate limit's token bucket
//! (`tokens` as of `refilled_at`).
//!
//! In the database, not in an instance's memory, because the app's "slow down" is about the
//! app: an instance that did not get the answer must hold off too.

use sea_orm_migration::prelude::*;

use crate::columns::{exact_text, utc_time, utc_time_null};
use crate::limits::{width, MAX_SOURCE_BYTES};

/// A destination's name: `[a-z0-9_-]{1,64}` (the forward table's is `forward`).
pub const MAX_DESTINATION_BYTES: u32 = 64;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub enum Destinations {
    Table,
    Source,
    Name,
    HoldUntil,
    PausedReason,
    PausedAt,
    ConsecutiveFailures,
    NextProbeAt,
    Tokens,
    RefilledAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        manager
            .create_table(
                Table::create()
                    .table(Destinations::Table)
                    .col(exact_text(
                        backend,
                        Destinations::Source,
                        width(MAX_SOURCE_BYTES),
                    ))
                    .col(exact_text(
                        backend,
                        Destinations::Name,
                        MAX_DESTINATION_BYTES,
                    ))
                    .col(utc_time_null(backend, Destinations::HoldUntil))
                    .col(
                        ColumnDef::new(Destinations::PausedReason)
                            .string_len(16)
                            .null(),
                    )
                    .col(utc_time_null(backend, Destinations::PausedAt))
                    .col(
                        ColumnDef::new(Destinations::ConsecutiveFailures)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(utc_time_null(backend, Destinations::NextProbeAt))
                    .col(ColumnDef::new(Destinations::Tokens).double().null())
                    .col(utc_time_null(backend, Destinations::RefilledAt))
                    .col(utc_time(backend, Destinations::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(Destinations::Source)
                            .col(Destinations::Name),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Destinations::Table).to_owned())
            .await
    }
}
