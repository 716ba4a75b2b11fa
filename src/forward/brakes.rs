//! The brakes on a destination, kept in its `destinations` row so that the whole fleet obeys
//! them, and read by every claim in its own statement ([`available`]). A brake holds rows
//! back; it never drops, skips or kills one: they stay `pending` and go once it is released.
//!
//! - **Hold** ([`hold`]): the app asked for room. A `429` (with or without `Retry-After`), or
//!   a `503` with `Retry-After`, holds every attempt to the destination, not only the
//!   answered delivery's, until `Retry-After` (or else the backoff) has passed, capped at
//!   `backoff_max_secs`. An instance that did not get the answer must not keep hammering an
//!   app that asked for room. The answered delivery is retried (and counts toward its
//!   `max_attempts`) as any failure is.
//! - **Pause** ([`pause`], [`resume`]): an operator stops every attempt to the destination
//!   until an operator resumes it. Nothing becomes dead meanwhile: nothing is attempted.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

use crate::entities::{delivery, destination};
use crate::status::PauseReason;

use destination::Column as C;

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
        paused_reason: Set(None),
        paused_at: Set(None),
        updated_at: Set(now),
    };
    upsert(db, row, [C::HoldUntil, C::UpdatedAt]).await
}

/// Pauses `source`'s destination `name` for `reason` (again: the reason and time are replaced).
pub async fn pause(
    db: &impl ConnectionTrait,
    source: &str,
    name: &str,
    reason: PauseReason,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let row = destination::ActiveModel {
        source: Set(source.to_owned()),
        name: Set(name.to_owned()),
        hold_until: Set(None),
        paused_reason: Set(Some(reason)),
        paused_at: Set(Some(now)),
        updated_at: Set(now),
    };
    upsert(db, row, [C::PausedReason, C::PausedAt, C::UpdatedAt]).await
}

/// Ends a pause of `source`'s destination `name` (a destination not paused is left as it is).
pub async fn resume(
    db: &impl ConnectionTrait,
    source: &str,
    name: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    destination::Entity::update_many()
        .col_expr(C::PausedReason, Expr::val(None::<String>))
        .col_expr(C::PausedAt, Expr::val(None::<DateTime<Utc>>))
        .col_expr(C::UpdatedAt, Expr::val(now))
        .filter(C::Source.eq(source))
        .filter(C::Name.eq(name))
        .exec(db)
        .await
        .map(|_| ())
}

/// Every destination's row (few: one per destination that was ever held or paused).
pub async fn all(db: &impl ConnectionTrait) -> Result<Vec<destination::Model>, DbErr> {
    destination::Entity::find().all(db).await
}

async fn upsert<const N: usize>(
    db: &impl ConnectionTrait,
    row: destination::ActiveModel,
    update: [C; N],
) -> Result<(), DbErr> {
    destination::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([C::Source, C::Name])
                .update_columns(update)
                .to_owned(),
        )
        .exec_without_returning(db)
        .await
        .map(|_| ())
}

/// The claim's condition: the row's destination (`name`) is neither paused nor held past
/// `now`. A primary-key lookup per candidate row, in the claim's own statement: no round trip
/// of its own.
pub fn available(name: &str, now: DateTime<Utc>) -> Expr {
    let braked = Alias::new("braked");
    let brakes = Query::select()
        .expr(Expr::val(1))
        .from_as(destination::Entity, braked.clone())
        .and_where(
            Expr::col((braked.clone(), C::Source))
                .equals((delivery::Entity, delivery::Column::Source)),
        )
        .and_where(Expr::col((braked.clone(), C::Name)).eq(name))
        .cond_where(
            Condition::any()
                .add(Expr::col((braked.clone(), C::PausedReason)).is_not_null())
                .add(Expr::col((braked, C::HoldUntil)).gt(now)),
        )
        .to_owned();
    Expr::exists(brakes).not()
}
