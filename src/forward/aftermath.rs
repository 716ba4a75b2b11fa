//! What an attempt's answer does: to its row (delivered, retried after the backoff, or dead:
//! [`outcome`]), and to its destination's brakes ([`brake`], see `forward::brakes`): a
//! throttling answer holds it, a `410 Gone` pauses it, a failure counts toward the circuit
//! breaker, and a 2xx after failures starts the count afresh (and resumes a destination the
//! breaker paused). While the destination is paused, and for a probe, nothing becomes dead.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{DatabaseConnection, DbErr};

use super::attempt::{self, Answer, Fault};
use super::brakes;
use super::deliveries::Settle;
use super::metrics::Settled;
use super::Target;
use crate::status::PauseReason;

/// What an answer did to the destination.
pub struct Braked {
    /// The destination is paused now: the answered delivery must not become dead.
    pub paused: bool,
    /// This instance may have failures counted for it: its next 2xx resets the count.
    pub suspect: bool,
}

/// Applies the answer to the destination's brakes. `probe`: the attempt was the breaker's
/// probe; `suspect`: this instance may have failures counted for the destination. A database
/// error is logged: the brakes then miss one answer, and nothing else changes.
pub async fn brake(
    db: &DatabaseConnection,
    target: &Target,
    answer: &Answer,
    attempts: u32,
    now: DateTime<Utc>,
    probe: bool,
    suspect: bool,
) -> Braked {
    let (source, name) = (target.source.as_str(), target.name.as_str());
    let braked = async {
        if answer.delivered() {
            if probe || suspect {
                brakes::succeeded(db, source, name, now).await?;
            }
            return Ok(Braked {
                paused: false,
                suspect: false,
            });
        }
        if answer.throttled() {
            hold(db, target, answer, attempts, now).await?;
            return Ok(Braked {
                paused: probe,
                suspect,
            });
        }
        if answer.fault == Fault::Misconfigured {
            brakes::pause(db, source, name, PauseReason::Misconfigured, now).await?;
            tracing::error!(source, destination = name, reason = %PauseReason::Misconfigured,
                error = %answer.error,
                "destination paused: it is misconfigured; its deliveries wait until an \
                 operator fixes it and resumes it");
            return Ok(Braked {
                paused: true,
                suspect,
            });
        }
        if answer.status == Some(410) {
            brakes::pause(db, source, name, PauseReason::Gone, now).await?;
            tracing::warn!(source, destination = name, reason = %PauseReason::Gone,
                "destination paused: its app answered 410 Gone; its deliveries wait until an \
                 operator resumes it");
            return Ok(Braked {
                paused: true,
                suspect,
            });
        }
        if target.pause_after_failures == 0 {
            return Ok(Braked {
                paused: probe,
                suspect,
            });
        }
        let probe_every = TimeDelta::from_std(target.probe).unwrap_or(TimeDelta::MAX);
        let paused = brakes::failed(
            db,
            source,
            name,
            target.pause_after_failures,
            probe_every,
            now,
        )
        .await?;
        Ok::<_, DbErr>(Braked {
            paused: paused || probe,
            suspect: true,
        })
    };
    braked.await.unwrap_or_else(|e| {
        tracing::warn!(source, destination = name, error = %e, "forwarding: cannot update the destination's brakes");
        Braked {
            paused: probe,
            suspect: true,
        }
    })
}

/// Holds the attempt's destination back, fleet-wide, as its app asked: `Retry-After`, or
/// else the backoff, capped at `backoff_max_secs`. Written before the row is settled, so a
/// slot this frees does not claim the destination's next row meanwhile.
async fn hold(
    db: &DatabaseConnection,
    target: &Target,
    answer: &Answer,
    attempts: u32,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let wait = match answer.retry_after {
        Some(secs) => Duration::from_secs(secs).min(target.backoff_max),
        None => attempt::backoff(target.backoff_base, target.backoff_max, attempts, None),
    };
    let until = TimeDelta::from_std(wait)
        .ok()
        .and_then(|wait| now.checked_add_signed(wait))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    brakes::hold(db, &target.source, &target.name, until, now).await?;
    tracing::info!(
        source = %target.source,
        destination = %target.name,
        status = answer.status,
        hold_ms = wait.as_millis() as u64,
        "forwarding: the app asked for room; its deliveries are held back"
    );
    Ok(())
}

/// What an answer does to the row: delivered, retried after the backoff, or dead (only when
/// `may_die`: not for a probe, nor while the destination is paused).
pub fn outcome(
    target: &Target,
    answer: &Answer,
    attempts: u32,
    now: DateTime<Utc>,
    may_die: bool,
) -> (Settled, Settle) {
    if answer.delivered() {
        let status = answer.status.unwrap_or(200);
        return (Settled::Delivered, Settle::Delivered { status });
    }
    if answer.fault == Fault::Undeliverable || (attempts >= target.max_attempts && may_die) {
        return (
            Settled::Dead,
            Settle::Dead {
                status: answer.status,
                error: answer.error.clone(),
            },
        );
    }
    let wait = attempt::backoff(
        target.backoff_base,
        target.backoff_max,
        attempts,
        answer.retry_after,
    );
    let at = TimeDelta::from_std(wait)
        .ok()
        .and_then(|wait| now.checked_add_signed(wait))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    (
        Settled::Retry,
        Settle::Retry {
            at,
            status: answer.status,
            error: answer.error.clone(),
            in_doubt: answer.fault == Fault::InDoubt,
        },
    )
}

/// The destinations, (source, name), that may have failures counted by this instance (or, as
/// the last gauge refresh saw, by another): the next 2xx to one of them resets the breaker's
/// count. A 2xx to any other writes nothing (the drain's common case).
#[derive(Default)]
pub struct Suspects(Mutex<HashMap<String, HashSet<String>>>);

impl Suspects {
    /// Asked on every attempt: a lookup by the target's own strings, no allocation.
    pub fn is(&self, target: &Target) -> bool {
        self.0.lock().is_ok_and(|s| {
            s.get(&target.source)
                .is_some_and(|names| names.contains(&target.name))
        })
    }

    /// Changed only when a destination starts or stops failing.
    pub fn set(&self, target: &Target, suspect: bool) {
        if let Ok(mut suspects) = self.0.lock() {
            if suspect {
                suspects
                    .entry(target.source.clone())
                    .or_default()
                    .insert(target.name.clone());
            } else if let Some(names) = suspects.get_mut(&target.source) {
                names.remove(&target.name);
            }
        }
    }
}
