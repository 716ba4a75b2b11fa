//! `deliveries.round`: how many times an operator started a delivery over (a redelivery or a
//! redrive). A broker destination that deduplicates by message id (NATS JetStream's
//! `Nats-Msg-Id`) puts the round in the id: the attempts of one round are the same message,
//! dropped by the stream when it already has it, while an operator's redelivery is a new
//! one, published again. Rows from before the upgrade are in round 0, as new rows are.

use sea_orm_migration::prelude::*;

use crate::m20261123_000004_outbox::Deliveries;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Round {
    Round,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Deliveries::Table)
                    .add_column(
                        ColumnDef::new(Round::Round)
                            .integer()
                            .not_null()
                            .default(0)
                            .to_owned(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Deliveries::Table)
                    .drop_column(Round::Round)
                    .to_owned(),
            )
            .await
    }
}
