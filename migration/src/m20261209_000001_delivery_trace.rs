//! `deliveries.traceparent`: the W3C trace context of the event an outbox row delivers, when
//! tracing was on as it was written. Whichever instance makes an attempt makes its span a
//! child of the event's, and sends it on to the consumer. Nullable: rows written with tracing
//! off, or before the upgrade, have none, and are delivered as before.

use sea_orm_migration::prelude::*;

use crate::m20261123_000004_outbox::Deliveries;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Trace {
    Traceparent,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Deliveries::Table)
                    // 55 characters: version 00's `00-<32 hex>-<16 hex>-<2 hex>`.
                    .add_column(ColumnDef::new(Trace::Traceparent).string_len(55).null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Deliveries::Table)
                    .drop_column(Trace::Traceparent)
                    .to_owned(),
            )
            .await
    }
}
