//! Tables written by the built-in handlers: the transactional inbox, and the reference payment
//! domain (`orders`, `payments`). They are written inside the event's transaction, so they commit
//! or roll back together with its `processed_events` row.

use sea_orm_migration::prelude::*;

use crate::columns::{digest, exact_text, payload, utc_time};
use crate::limits::{
    width, MAX_CURRENCY_BYTES, MAX_KEY_PART_BYTES, MAX_ORDER_ID_BYTES, MAX_SOURCE_BYTES,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Inbox {
    Table,
    Id,
    KeyDigest,
    Source,
    EventType,
    EventId,
    Payload,
    ReceivedAt,
}

#[derive(DeriveIden)]
enum Orders {
    Table,
    OrderId,
    Status,
    AmountPaid,
    Currency,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Payments {
    Table,
    Id,
    OrderId,
    KeyDigest,
    Amount,
    Currency,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_database_backend();
        manager
            .create_table(
                Table::create()
                    .table(Inbox::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Inbox::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    // Unique: a second inbox row for one event would be a double delivery
                    // downstream, so the schema refuses it even if the code were wrong.
                    .col(digest(Inbox::KeyDigest).unique_key())
                    .col(exact_text(db, Inbox::Source, width(MAX_SOURCE_BYTES)))
                    .col(exact_text(db, Inbox::EventType, width(MAX_KEY_PART_BYTES)))
                    .col(exact_text(db, Inbox::EventId, width(MAX_KEY_PART_BYTES)))
                    .col(payload(db, Inbox::Payload))
                    .col(utc_time(db, Inbox::ReceivedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_inbox_received_at")
                    .table(Inbox::Table)
                    .col(Inbox::ReceivedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Orders::Table)
                    .if_not_exists()
                    .col(exact_text(db, Orders::OrderId, width(MAX_ORDER_ID_BYTES)).primary_key())
                    .col(ColumnDef::new(Orders::Status).string_len(32).not_null())
                    .col(ColumnDef::new(Orders::AmountPaid).big_integer().not_null())
                    .col(
                        ColumnDef::new(Orders::Currency)
                            .string_len(width(MAX_CURRENCY_BYTES))
                            .not_null(),
                    )
                    .col(utc_time(db, Orders::CreatedAt))
                    .col(utc_time(db, Orders::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Payments::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Payments::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(exact_text(db, Payments::OrderId, width(MAX_ORDER_ID_BYTES)))
                    .col(digest(Payments::KeyDigest))
                    .col(ColumnDef::new(Payments::Amount).big_integer().not_null())
                    .col(
                        ColumnDef::new(Payments::Currency)
                            .string_len(width(MAX_CURRENCY_BYTES))
                            .not_null(),
                    )
                    .col(utc_time(db, Payments::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_payments_order_id")
                    .table(Payments::Table)
                    .col(Payments::OrderId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Payments::Table.into_iden(),
            Orders::Table.into_iden(),
            Inbox::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
