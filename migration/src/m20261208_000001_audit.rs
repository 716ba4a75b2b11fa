//! The `audit` table: every change an operator made through the admin API, the CLI or the
//! console (replay, forced replay, redeliver, redrive and replay jobs, pause, resume, discard),
//! each sign-in and sign-out, each change refused to a signed-in operator, and the failed
//! authentications of each client address, one row per address and minute with a count.
//!
//! A change's row is written in the change's own transaction: it exists exactly when the
//! change does. Read newest first by id (`GET /audit`, keyset on the id), filtered by
//! operator, action and time.

use sea_orm_migration::prelude::*;

use crate::columns::utc_time;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub enum Audit {
    Table,
    Id,
    At,
    Operator,
    Role,
    OnBehalfOf,
    Action,
    Target,
    Params,
    Outcome,
    Client,
    Count,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_database_backend();
        manager
            .create_table(
                Table::create()
                    .table(Audit::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Audit::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(utc_time(db, Audit::At))
                    // NULL: an unauthenticated failure (no operator proven).
                    .col(ColumnDef::new(Audit::Operator).string_len(64).null())
                    .col(ColumnDef::new(Audit::Role).string_len(16).null())
                    .col(ColumnDef::new(Audit::OnBehalfOf).string_len(800).null())
                    .col(ColumnDef::new(Audit::Action).string_len(32).not_null())
                    .col(ColumnDef::new(Audit::Target).text().not_null())
                    // The request's parameters, as JSON.
                    .col(ColumnDef::new(Audit::Params).text().not_null())
                    .col(ColumnDef::new(Audit::Outcome).string_len(32).not_null())
                    .col(ColumnDef::new(Audit::Client).string_len(64).null())
                    .col(ColumnDef::new(Audit::Count).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            ("idx_audit_at", vec![Audit::At]),
            ("idx_audit_operator", vec![Audit::Operator, Audit::Id]),
            ("idx_audit_action", vec![Audit::Action, Audit::Id]),
        ] {
            let mut index = Index::create();
            index.name(name).table(Audit::Table);
            for col in cols {
                index.col(col);
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Audit::Table).to_owned())
            .await
    }
}
