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
//! - **Circuit breaker** ([`failed`], [`succeeded`], [`take_probe`]): `pause_after_failures`
//!   failed attempts in a row, counted across the fleet in the row (a 2xx resets the count),
//!   pause the destination with reason `failures`; while so paused, one instance at a time
//!   tries one due delivery every `probe_secs` (a probe), and a probe's 2xx resumes it. A
//!   `410 Gone` pauses it with reason `gone`, without probes: the endpoint says it is gone,
//!   so only an operator resumes it.

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
        consecutive_failures: Set(0),
        next_probe_at: Set(None),
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
        consecutive_failures: Set(0),
        next_probe_at: Set(None),
        updated_at: Set(now),
    };
    upsert(db, row, [C::PausedReason, C::PausedAt, C::UpdatedAt]).await
}

/// Ends a pause of `source`'s destination `name`, whatever its reason, and starts the
/// breaker's count afresh (a destination not paused is left as it is).
pub async fn resume(
    db: &impl ConnectionTrait,
    source: &str,
    name: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    unpause(source, name, now).exec(db).await.map(|_| ())
}

fn unpause(
    source: &str,
    name: &str,
    now: DateTime<Utc>,
) -> sea_orm::UpdateMany<destination::Entity> {
    destination::Entity::update_many()
        .col_expr(C::PausedReason, Expr::val(None::<String>))
        .col_expr(C::PausedAt, Expr::val(None::<DateTime<Utc>>))
        .col_expr(C::NextProbeAt, Expr::val(None::<DateTime<Utc>>))
        .col_expr(C::ConsecutiveFailures, Expr::val(0))
        .col_expr(C::UpdatedAt, Expr::val(now))
        .filter(C::Source.eq(source))
        .filter(C::Name.eq(name))
}

/// Counts a failed attempt (not a throttling answer) toward the breaker, and pauses the
/// destination once `threshold` (> 0) failures in a row are counted, its first probe due
/// `probe` later. Whether the destination is paused now, by any reason (a delivery that fails
/// while it is must not become dead).
pub async fn failed(
    db: &impl ConnectionTrait,
    source: &str,
    name: &str,
    threshold: u32,
    probe: chrono::TimeDelta,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let row = destination::ActiveModel {
        source: Set(source.to_owned()),
        name: Set(name.to_owned()),
        hold_until: Set(None),
        paused_reason: Set(None),
        paused_at: Set(None),
        consecutive_failures: Set(1),
        next_probe_at: Set(None),
        updated_at: Set(now),
    };
    destination::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([C::Source, C::Name])
                .value(
                    C::ConsecutiveFailures,
                    Expr::col((destination::Entity, C::ConsecutiveFailures)).add(1),
                )
                .value(C::UpdatedAt, Expr::val(now))
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    let tripped = destination::Entity::update_many()
        .col_expr(C::PausedReason, Expr::val(PauseReason::Failures))
        .col_expr(C::PausedAt, Expr::val(now))
        .col_expr(C::NextProbeAt, Expr::val(now + probe))
        .filter(C::Source.eq(source))
        .filter(C::Name.eq(name))
        .filter(C::PausedReason.is_null())
        .filter(C::ConsecutiveFailures.gte(i64::from(threshold)))
        .exec(db)
        .await?;
    if tripped.rows_affected == 1 {
        tracing::warn!(source, destination = name, failures = threshold, reason = %PauseReason::Failures,
            "destination paused after failed attempts in a row: its deliveries wait, one is \
             tried every probe_secs, and a 2xx resumes it");
        return Ok(true);
    }
    let row = destination::Entity::find_by_id((source.to_owned(), name.to_owned()))
        .one(db)
        .await?;
    Ok(row.is_some_and(|r| r.paused_reason.is_some()))
}

/// A 2xx: the breaker's count starts afresh, and a destination the breaker paused resumes.
/// Whether it resumed.
pub async fn succeeded(
    db: &impl ConnectionTrait,
    source: &str,
    name: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let resumed = unpause(source, name, now)
        .filter(C::PausedReason.eq(PauseReason::Failures))
        .exec(db)
        .await?
        .rows_affected
        == 1;
    if resumed {
        tracing::warn!(
            source,
            destination = name,
            "destination resumed: a probe was answered 2xx"
        );
    } else {
        destination::Entity::update_many()
            .col_expr(C::ConsecutiveFailures, Expr::val(0))
            .filter(C::Source.eq(source))
            .filter(C::Name.eq(name))
            .filter(C::ConsecutiveFailures.gt(0))
            .exec(db)
            .await?;
    }
    Ok(resumed)
}

/// Takes the destination's due probe, if it is paused by failures and one is due: at most one
/// instance gets it per `probe` (the row's update is the arbiter).
pub async fn take_probe(
    db: &impl ConnectionTrait,
    source: &str,
    name: &str,
    probe: chrono::TimeDelta,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let taken = destination::Entity::update_many()
        .col_expr(C::NextProbeAt, Expr::val(now + probe))
        .filter(C::Source.eq(source))
        .filter(C::Name.eq(name))
        .filter(C::PausedReason.eq(PauseReason::Failures))
        .filter(
            Condition::any()
                .add(C::NextProbeAt.is_null())
                .add(C::NextProbeAt.lte(now)),
        )
        .exec(db)
        .await?;
    Ok(taken.rows_affected == 1)
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
