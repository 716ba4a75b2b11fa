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
//! - **Rate limit** ([`take_tokens`], [`give_back`]): `rate_per_sec` attempts a second to the
//!   destination across the fleet, from a token bucket in the row holding at most one
//!   second's worth. A claim takes its tokens first, with a compare-and-swap on the row (a
//!   claim that loses the race, to another instance or on Galera, takes none and claims
//!   nothing this round), and gives back what it could not use.
//! - **Circuit breaker** ([`failed`], [`succeeded`], [`take_probe`]): `pause_after_failures`
//!   failed attempts in a row, counted across the fleet in the row (a 2xx resets the count),
//!   pause the destination with reason `failures`; while so paused, one instance at a time
//!   tries one due delivery every `probe_secs` (a probe), and a probe's 2xx resumes it. A
//!   `410 Gone` pauses it with reason `gone`, without probes: the endpoint says it is gone,
//!   so only an operator resumes it.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    QueryFilter,
};

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
        hold_until: Set(Some(until)),
        ..fresh(source, name, now)
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
        paused_reason: Set(Some(reason)),
        paused_at: Set(Some(now)),
        ..fresh(source, name, now)
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
        consecutive_failures: Set(1),
        ..fresh(source, name, now)
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

/// A row for a destination no brake holds yet (the bucket not started).
fn fresh(source: &str, name: &str, now: DateTime<Utc>) -> destination::ActiveModel {
    destination::ActiveModel {
        source: Set(source.to_owned()),
        name: Set(name.to_owned()),
        hold_until: Set(None),
        paused_reason: Set(None),
        paused_at: Set(None),
        consecutive_failures: Set(0),
        next_probe_at: Set(None),
        tokens: NotSet,
        refilled_at: NotSet,
        updated_at: Set(now),
    }
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

/// Takes up to `want` tokens of `source`'s destination `name`, limited to `rate` a second
/// (the bucket refills continuously and holds at most one second's worth): how many were
/// granted. Zero when the bucket is empty or another claim changed it meanwhile.
pub async fn take_tokens(
    db: &impl ConnectionTrait,
    source: &str,
    name: &str,
    want: u64,
    rate: u32,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let key = (source.to_owned(), name.to_owned());
    let row = match destination::Entity::find_by_id(key.clone()).one(db).await? {
        Some(row) => row,
        None => {
            let row = destination::ActiveModel {
                tokens: Set(None),
                refilled_at: Set(None),
                ..fresh(source, name, now)
            };
            // Another claim may create it meanwhile: then this only touches `updated_at`.
            upsert(db, row, [C::UpdatedAt]).await?;
            match destination::Entity::find_by_id(key).one(db).await? {
                Some(row) => row,
                None => return Ok(0),
            }
        }
    };
    let rate = f64::from(rate);
    let elapsed = row.refilled_at.map_or(1.0, |at| {
        std::cmp::max((now - at).num_milliseconds(), 0) as f64 / 1000.0
    });
    let tokens = f64::min(row.tokens.unwrap_or(rate) + rate * elapsed, rate);
    let granted = f64::max(f64::min(tokens.floor(), want as f64), 0.0) as u64;
    if granted == 0 {
        return Ok(0);
    }
    let mut swap = destination::Entity::update_many()
        .col_expr(C::Tokens, Expr::val(tokens - granted as f64))
        .col_expr(C::RefilledAt, Expr::val(now))
        .filter(C::Source.eq(source))
        .filter(C::Name.eq(name));
    swap = match row.refilled_at {
        Some(at) => swap.filter(C::RefilledAt.eq(at)),
        None => swap.filter(C::RefilledAt.is_null()),
    };
    let swapped = swap.exec(db).await?.rows_affected == 1;
    Ok(if swapped { granted } else { 0 })
}

/// Returns `unused` tokens a claim took but found no due row for.
pub async fn give_back(
    db: &impl ConnectionTrait,
    source: &str,
    name: &str,
    unused: u64,
) -> Result<(), DbErr> {
    destination::Entity::update_many()
        .col_expr(
            C::Tokens,
            Expr::col(C::Tokens).add(Expr::val(unused as f64)),
        )
        .filter(C::Source.eq(source))
        .filter(C::Name.eq(name))
        .exec(db)
        .await
        .map(|_| ())
}
