//! Payload mismatches, recorded on the event's own record.
//!
//! A duplicate whose body differs from the one that settled its event is never applied, but
//! the operator must be able to see it on the event: `processed_events.mismatches`,
//! `last_mismatch_sha256` and `last_mismatch_at`. Most duplicates are answered from the
//! cache without touching the database, and a sender can flood mismatching duplicates of one
//! event (an unsigned source accepts any body), so the writes are coalesced: each mismatch
//! is added to a pending entry per event, and a task writes every pending entry once a
//! second, one UPDATE per event however many mismatches it gathered. The count is exact: an
//! entry leaves the map only with the write that adds it (a failed write puts it back).
//!
//! Memory stays bounded: past [`MAX_PENDING`] events with pending mismatches, a mismatch of
//! yet another event is written by the delivery itself before it is answered, which slows
//! the flood that caused it, not anyone else.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};

use crate::clock::Clock;
use crate::entities::processed_event;
use crate::event::key::Sha256Digest;
use crate::task::TaskGuard;

/// How often pending mismatches are written.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Most events whose mismatches may wait for the next write.
pub const MAX_PENDING: usize = 10_000;

/// Mismatches of one event not yet written.
#[derive(Debug, Clone, Copy)]
struct Pending {
    count: i64,
    last_sha256: Sha256Digest,
    last_at: DateTime<Utc>,
}

pub struct Mismatches {
    db: DatabaseConnection,
    clock: Clock,
    pending: DashMap<Sha256Digest, Pending>,
}

impl Mismatches {
    pub fn new(db: DatabaseConnection, clock: Clock) -> Self {
        Self {
            db,
            clock,
            pending: DashMap::new(),
        }
    }

    /// Notes a duplicate of event `digest` whose body hashed to `payload_sha256`.
    pub async fn note(&self, digest: &Sha256Digest, payload_sha256: &Sha256Digest) {
        let now = self.clock.now();
        let add = |p: &mut Pending| {
            p.count += 1;
            p.last_sha256 = *payload_sha256;
            p.last_at = now;
        };
        if let Some(mut pending) = self.pending.get_mut(digest) {
            add(&mut pending);
            return;
        }
        let one = Pending {
            count: 1,
            last_sha256: *payload_sha256,
            last_at: now,
        };
        if self.pending.len() < MAX_PENDING {
            self.pending
                .entry(*digest)
                .and_modify(|p| add(p))
                .or_insert(one);
            return;
        }
        if let Err(err) = self.write(digest, one).await {
            tracing::warn!(error = %err, "could not record a payload mismatch");
        }
    }

    /// Writes every pending entry, one UPDATE per event. An entry whose write fails goes back
    /// into the map (added to what arrived meanwhile), for the next flush.
    pub async fn flush(&self) {
        let digests: Vec<Sha256Digest> = self.pending.iter().map(|e| *e.key()).collect();
        for digest in digests {
            let Some((_, pending)) = self.pending.remove(&digest) else {
                continue;
            };
            if let Err(err) = self.write(&digest, pending).await {
                tracing::warn!(error = %err, "could not record payload mismatches; retrying");
                self.pending
                    .entry(digest)
                    .and_modify(|p| p.count += pending.count)
                    .or_insert(pending);
                return;
            }
        }
    }

    async fn write(&self, digest: &Sha256Digest, pending: Pending) -> Result<(), DbErr> {
        use processed_event::Column as C;
        processed_event::Entity::update_many()
            .col_expr(
                C::Mismatches,
                Expr::col((processed_event::Entity, C::Mismatches)).add(pending.count),
            )
            .col_expr(
                C::LastMismatchSha256,
                Expr::val(pending.last_sha256.to_vec()),
            )
            .col_expr(C::LastMismatchAt, Expr::val(pending.last_at))
            .filter(C::KeyDigest.eq(digest.to_vec()))
            .exec(&self.db)
            .await
            .map(|_| ())
    }

    /// Starts the task that flushes every second; it flushes once more when stopped, and the
    /// guard's `stop` waits for that flush ([`crate::task::OnStop::AwaitEnd`]).
    pub fn spawn(self: Arc<Self>) -> TaskGuard {
        TaskGuard::every("mismatch recorder", FLUSH_EVERY, move || {
            let this = self.clone();
            async move { this.flush().await }
        })
    }
}
