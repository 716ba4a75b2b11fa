//! The bodies of events that go to several destinations: stored once per event
//! (`delivery_bodies`, keyed by the event's digest) instead of once per outbox row, whose
//! `payload` is then empty. An event with one destination keeps its body in its row, so the
//! common case costs no second table on either side.
//!
//! A body is written in the event's transaction with its rows, read back after a claim for
//! the claimed rows that hold none ([`fill`]), and swept once none of its event's rows is left
//! ([`orphaned`]): a row is never without its body, since both commit together and the body goes
//! only after the last row.

use std::collections::HashMap;

use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect};

use crate::entities::delivery_body::{self, Column};
use crate::entities::{delivery, delivery_body::Entity as Bodies};

/// Writes `bodies` (one multi-row INSERT). A body already there (a forced replay of the event
/// rewrites its rows) is replaced by the same bytes.
pub async fn insert(
    bodies: Vec<delivery_body::ActiveModel>,
    db: &impl ConnectionTrait,
) -> Result<(), DbErr> {
    if bodies.is_empty() {
        return Ok(());
    }
    Bodies::insert_many(bodies)
        .on_conflict(
            OnConflict::column(Column::EventDigest)
                .update_columns([Column::Payload, Column::CreatedAt])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await
        .map(|_| ())
}

/// Puts the stored body into each of `rows` that holds none (one read for all of them). A row
/// whose event has no stored body keeps its empty payload: the event's body was empty.
pub async fn fill(db: &impl ConnectionTrait, rows: &mut [delivery::Model]) -> Result<(), DbErr> {
    let wanted: Vec<Vec<u8>> = rows
        .iter()
        .filter(|row| row.payload.is_empty())
        .map(|row| row.event_key().to_vec())
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let found: HashMap<Vec<u8>, Vec<u8>> = Bodies::find()
        .select_only()
        .column(Column::EventDigest)
        .column(Column::Payload)
        .filter(Column::EventDigest.is_in(wanted))
        .into_tuple::<(Vec<u8>, Vec<u8>)>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    for row in rows.iter_mut().filter(|row| row.payload.is_empty()) {
        if let Some(body) = found.get(row.event_key()) {
            row.payload.clone_from(body);
        }
    }
    Ok(())
}

/// The stored body of one event, if it has one here.
pub async fn find(db: &impl ConnectionTrait, event: &[u8]) -> Result<Option<Vec<u8>>, DbErr> {
    Ok(Bodies::find_by_id(event.to_vec())
        .one(db)
        .await?
        .map(|b| b.payload))
}

/// Bodies whose event has no outbox row left: what the sweeper deletes (a body newer than its
/// cutoff may belong to a transaction whose rows are not visible yet, so it also asks for age).
pub fn orphaned() -> Expr {
    let row = Alias::new("row_left");
    let rows_left = Query::select()
        .expr(Expr::val(1))
        .from_as(delivery::Entity, row.clone())
        .cond_where(super::same_event(
            row,
            Expr::col((Bodies, Column::EventDigest)),
        ))
        .to_owned();
    Expr::exists(rows_left).not()
}
