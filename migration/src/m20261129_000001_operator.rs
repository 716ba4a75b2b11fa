//! The operator surface: indexes that make `GET /events` a bounded index walk on any table
//! size, the `jobs` table that bulk operations (redrive, replay) report and resume from, and
//! the `replays` audit of every deliberate re-run, and the `attempts` history.
//!
//! Every list is read newest first by keyset (`ORDER BY t DESC, key_digest DESC`, then
//! `WHERE (t, key_digest) < cursor`), so each index below ends with the time column and the
//! digest: the database walks it backwards from the cursor and stops after one page, whatever
//! the table holds. Filters on status and source come first, as equalities. The event type is
//! a residual filter (no index of its own: each index costs every insert on the hot path).

use sea_orm_migration::prelude::*;

use crate::columns::{digest, exact_text, utc_time, utc_time_null};
use crate::limits::{width, MAX_KEY_PART_BYTES, MAX_SOURCE_BYTES};
use crate::m20261122_000001_create_events::{FailedAttempts, ProcessedEvents};
use crate::m20261123_000004_outbox::Deliveries;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub enum Jobs {
    Table,
    Id,
    Kind,
    Filters,
    Status,
    Matched,
    Done,
    Failed,
    Skipped,
    Cursor,
    LeaseUntil,
    LeaseToken,
    LastError,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
    FinishedAt,
}

/// One row per attempt that did not settle its event (a handler's failure, a delivery that
/// will be retried or went dead): the history `GET /webhooks/<s>/events/<id>` lists. A
/// success writes nothing here; the event's own row says when it settled, so the hot path
/// pays nothing for the history.
#[derive(DeriveIden)]
pub enum Attempts {
    Table,
    Id,
    KeyDigest,
    Kind,
    Outcome,
    StatusCode,
    Error,
    At,
}

#[derive(DeriveIden)]
pub enum Replays {
    Table,
    Id,
    KeyDigest,
    Source,
    EventType,
    EventId,
    PreviousStatus,
    Forced,
    Operator,
    JobId,
    ReplayedAt,
}

/// (name, table, columns) of each list index.
fn list_indexes() -> Vec<(&'static str, DynIden, Vec<DynIden>)> {
    let p = |c: ProcessedEvents| -> DynIden { c.into_iden() };
    let f = |c: FailedAttempts| -> DynIden { c.into_iden() };
    let d = |c: Deliveries| -> DynIden { c.into_iden() };
    // Added by the rejections migration, under its own name.
    let status = || -> DynIden { Alias::new("status").into_iden() };
    use Deliveries as D;
    use FailedAttempts as F;
    use ProcessedEvents as P;
    vec![
        (
            "idx_processed_events_status_recent",
            p(P::Table),
            vec![status(), p(P::ProcessedAt), p(P::KeyDigest)],
        ),
        (
            "idx_processed_events_source_recent",
            p(P::Table),
            vec![p(P::Source), status(), p(P::ProcessedAt), p(P::KeyDigest)],
        ),
        (
            "idx_failed_attempts_source_recent",
            f(F::Table),
            vec![f(F::Source), f(F::LastFailedAt), f(F::KeyDigest)],
        ),
        (
            "idx_deliveries_status_recent",
            d(D::Table),
            vec![d(D::Status), d(D::CreatedAt), d(D::KeyDigest)],
        ),
        (
            "idx_deliveries_source_recent",
            d(D::Table),
            vec![d(D::Source), d(D::Status), d(D::CreatedAt), d(D::KeyDigest)],
        ),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_database_backend();
        for (name, table, cols) in list_indexes() {
            let mut index = Index::create();
            index.name(name).table(table);
            for col in cols {
                index.col(col);
            }
            manager.create_index(index.to_owned()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(Jobs::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Jobs::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    // `redrive` or `replay`.
                    .col(ColumnDef::new(Jobs::Kind).string_len(16).not_null())
                    // The filters as JSON, exactly as the request gave them.
                    .col(ColumnDef::new(Jobs::Filters).text().not_null())
                    // `running`, `done` or `failed`.
                    .col(ColumnDef::new(Jobs::Status).string_len(16).not_null())
                    .col(ColumnDef::new(Jobs::Matched).big_integer().not_null())
                    .col(ColumnDef::new(Jobs::Done).big_integer().not_null())
                    .col(ColumnDef::new(Jobs::Failed).big_integer().not_null())
                    .col(ColumnDef::new(Jobs::Skipped).big_integer().not_null())
                    // Where the next batch starts (an opaque list cursor); NULL: the first.
                    .col(ColumnDef::new(Jobs::Cursor).text().null())
                    .col(utc_time_null(db, Jobs::LeaseUntil))
                    .col(ColumnDef::new(Jobs::LeaseToken).binary_len(16).null())
                    .col(ColumnDef::new(Jobs::LastError).text().null())
                    .col(ColumnDef::new(Jobs::CreatedBy).string_len(200).not_null())
                    .col(utc_time(db, Jobs::CreatedAt))
                    .col(utc_time(db, Jobs::UpdatedAt))
                    .col(utc_time_null(db, Jobs::FinishedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_jobs_status")
                    .table(Jobs::Table)
                    .col(Jobs::Status)
                    .col(Jobs::LeaseUntil)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Attempts::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Attempts::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(digest(Attempts::KeyDigest))
                    // `handler` or `delivery`.
                    .col(ColumnDef::new(Attempts::Kind).string_len(16).not_null())
                    // `failed` (handler), `retry` or `dead` (delivery).
                    .col(ColumnDef::new(Attempts::Outcome).string_len(16).not_null())
                    .col(ColumnDef::new(Attempts::StatusCode).integer().null())
                    .col(ColumnDef::new(Attempts::Error).text().null())
                    .col(utc_time(db, Attempts::At))
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("idx_attempts_key_digest", Attempts::KeyDigest),
            ("idx_attempts_at", Attempts::At),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Attempts::Table)
                        .col(col)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(Replays::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Replays::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(digest(Replays::KeyDigest))
                    .col(exact_text(db, Replays::Source, width(MAX_SOURCE_BYTES)))
                    .col(exact_text(
                        db,
                        Replays::EventType,
                        width(MAX_KEY_PART_BYTES),
                    ))
                    .col(exact_text(db, Replays::EventId, width(MAX_KEY_PART_BYTES)))
                    // `rejected`, `failed` or `processed` (a forced replay).
                    .col(
                        ColumnDef::new(Replays::PreviousStatus)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(ColumnDef::new(Replays::Forced).boolean().not_null())
                    .col(ColumnDef::new(Replays::Operator).string_len(200).not_null())
                    .col(ColumnDef::new(Replays::JobId).big_integer().null())
                    .col(utc_time(db, Replays::ReplayedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_replays_key_digest")
                    .table(Replays::Table)
                    .col(Replays::KeyDigest)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_replays_replayed_at")
                    .table(Replays::Table)
                    .col(Replays::ReplayedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Replays::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Jobs::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Attempts::Table).to_owned())
            .await?;
        for (name, table, _) in list_indexes() {
            manager
                .drop_index(Index::drop().name(name).table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
