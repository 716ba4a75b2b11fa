//! A destination held back by its app: a `429 Too Many Requests` (with or without
//! `Retry-After`), or a `503` with `Retry-After`, holds every attempt to the destination, not
//! only the answered delivery's, until `Retry-After` (or else the backoff) has passed, capped
//! at `backoff_max_secs`. The hold is a row of `destinations`, so the whole fleet respects it:
//! an instance that did not get the answer must not keep hammering an app that asked for
//! room. Every claim reads it ([`not_held`]); the delivery that got the answer is retried
//! (and counts toward its `max_attempts`) as any failure is.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait};

use crate::entities::{delivery, destination};

/// Holds `source`'s destination `name` until `until` (the app's latest answer wins).
pub async fn hold(
    db: &impl ConnectionTrait,
    source: &str,
    name: &str,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let row = destination::ActiveModel {
        source: Set(source.to_owned()),
        name: Set(name.to_owned()),
        hold_until: Set(Some(until)),
        updated_at: Set(now),
    };
    destination::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([destination::Column::Source, destination::Column::Name])
                .update_columns([
                    destination::Column::HoldUntil,
                    destination::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await
        .map(|_| ())
}

/// The claim's condition: no hold of the row's destination (`name`) runs past `now`. A
/// primary-key lookup per candidate row, in the claim's own statement: no round trip of its
/// own.
pub fn not_held(name: &str, now: DateTime<Utc>) -> Expr {
    let held = Alias::new("held");
    let holds = Query::select()
        .expr(Expr::val(1))
        .from_as(destination::Entity, held.clone())
        .and_where(
            Expr::col((held.clone(), destination::Column::Source))
                .equals((delivery::Entity, delivery::Column::Source)),
        )
        .and_where(Expr::col((held.clone(), destination::Column::Name)).eq(name))
        .and_where(Expr::col((held, destination::Column::HoldUntil)).gt(now))
        .to_owned();
    Expr::exists(holds).not()
}
