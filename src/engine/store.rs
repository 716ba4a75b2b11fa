//! The transaction that makes an event's effects exactly-once.
//!
//! ```text
//! BEGIN
//!   INSERT INTO processed_events (key_digest, …)   -- unique violation => duplicate
//!   handler writes …                               -- through the same transaction
//! COMMIT                                           -- dedupe record and effects, together
//! ```
//!
//! The dedupe row is inserted *first*: on PostgreSQL and MySQL a second instance inserting the
//! same key then blocks on the first one's uncommitted index entry, and when the first commits
//! it gets a unique violation, which is answered `duplicate`. If the first rolls back, the
//! second proceeds. No lock is taken in the application; the unique key is the arbiter.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ActiveValue::Set, DatabaseConnection, DbErr, EntityTrait, TransactionTrait};

use super::db_error::{classify, DbErrorKind};
use crate::clock::Clock;
use crate::entities::{failed_attempt, processed_event};
use crate::event::key::Sha256Digest;
use crate::event::{EngineError, Event};
use crate::handlers::{Handler, HandlerError};
use crate::metrics::Metrics;

/// The longest `last_error` kept in the audit table.
const MAX_ERROR_CHARS: usize = 2000;

/// What the database says about an event once its transaction is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// This delivery's transaction committed the event.
    Processed,
    /// The event was committed before; `stored_payload` is the SHA-256 recorded then.
    Duplicate {
        stored_payload: Option<Sha256Digest>,
    },
}

/// Why one attempt at the transaction did not commit.
enum AttemptError {
    Db(DbErr),
    Handler(String),
}

/// A committed outcome and how long the dedupe insert took (the idempotency check's share
/// of the transaction).
pub struct Settled {
    pub committed: Committed,
    pub check: Duration,
}

#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    max_retries: u32,
    clock: Clock,
    metrics: Arc<Metrics>,
}

impl Store {
    pub fn new(
        db: DatabaseConnection,
        max_retries: u32,
        clock: Clock,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            db,
            max_retries,
            clock,
            metrics,
        }
    }

    /// Runs the event's transaction, rerunning it when it lost a deadlock or serialization
    /// race. A failure is recorded in the audit table (outside the rolled-back transaction).
    pub async fn process(
        &self,
        event: &Event,
        handlers: &[Arc<dyn Handler>],
    ) -> Result<Settled, EngineError> {
        let mut attempt = 0;
        loop {
            let err = match self.attempt(event, handlers).await {
                Ok(committed) => return Ok(committed),
                Err(err) => err,
            };
            match err {
                AttemptError::Handler(msg) => {
                    self.record_failure(event, &msg).await;
                    return Err(EngineError::HandlerFailed(msg));
                }
                AttemptError::Db(db_err) => match classify(&db_err) {
                    DbErrorKind::Retryable if attempt < self.max_retries => {
                        attempt += 1;
                        self.metrics.db_retries.inc();
                        tracing::debug!(attempt, error = %db_err, "transaction lost a race; rerunning");
                        tokio::time::sleep(backoff(attempt)).await;
                    }
                    DbErrorKind::Retryable => {
                        return Err(EngineError::Conflict(format!(
                            "transaction still conflicting after {} retries: {db_err}",
                            self.max_retries
                        )));
                    }
                    DbErrorKind::Unavailable => {
                        return Err(EngineError::Unavailable(db_err.to_string()));
                    }
                    DbErrorKind::UniqueViolation | DbErrorKind::Other => {
                        let msg = format!("database error: {db_err}");
                        self.record_failure(event, &msg).await;
                        return Err(EngineError::Internal(msg));
                    }
                },
            }
        }
    }

    async fn attempt(
        &self,
        event: &Event,
        handlers: &[Arc<dyn Handler>],
    ) -> Result<Settled, AttemptError> {
        let started = Instant::now();
        let txn = self.db.begin().await.map_err(AttemptError::Db)?;
        let record = dedupe_record(event, self.clock.now());
        if let Err(err) = processed_event::Entity::insert(record)
            .exec_without_returning(&txn)
            .await
        {
            let _ = txn.rollback().await;
            if classify(&err) != DbErrorKind::UniqueViolation {
                return Err(AttemptError::Db(err));
            }
            let check = started.elapsed();
            let stored_payload = self.stored_payload(&event.digest).await.unwrap_or(None);
            return Ok(Settled {
                committed: Committed::Duplicate { stored_payload },
                check,
            });
        }
        let check = started.elapsed();
        for handler in handlers {
            // A panicking handler fails this event only: the transaction is rolled back and
            // the shard goes on serving.
            let result = AssertUnwindSafe(handler.handle(event, &txn))
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| {
                    Err(HandlerError::failed(format!(
                        "handler panicked: {}",
                        panic_message(&panic)
                    )))
                });
            if let Err(err) = result {
                let _ = txn.rollback().await;
                return Err(match err {
                    HandlerError::Db(db) => AttemptError::Db(db),
                    HandlerError::Failed(msg) => AttemptError::Handler(msg),
                });
            }
        }
        txn.commit().await.map_err(AttemptError::Db)?;
        Ok(Settled {
            committed: Committed::Processed,
            check,
        })
    }

    /// Group commit: the events of one batch in a single transaction, with one multi-row
    /// dedupe insert. `Some(check)` when every event committed (all were new and every
    /// handler succeeded); `None` when anything went wrong, in which case nothing was
    /// committed and the caller runs each event through [`Store::process`], which isolates
    /// duplicates, failures and retries per event. The optimistic path is the common one:
    /// duplicates mostly never get here (the cache answers them) and handler failures are
    /// rare, so a batch of N new events costs one BEGIN, one INSERT and one COMMIT instead
    /// of N of each, and each handler sees the batch's events in one
    /// [`Handler::handle_batch`] call.
    ///
    /// `events` must be sorted by digest and free of repeats: two batches on two instances
    /// then take their dedupe-row locks in the same order and cannot deadlock on them.
    pub async fn commit_batch(&self, events: &[(&Event, &[Arc<dyn Handler>])]) -> Option<Duration> {
        let started = Instant::now();
        let txn = self.db.begin().await.ok()?;
        let now = self.clock.now();
        let records = events.iter().map(|(event, _)| dedupe_record(event, now));
        if processed_event::Entity::insert_many(records)
            .exec_without_returning(&txn)
            .await
            .is_err()
        {
            let _ = txn.rollback().await;
            return None;
        }
        let check = started.elapsed();
        for (handler, its_events) in by_handler(events) {
            let ok = AssertUnwindSafe(handler.handle_batch(&its_events, &txn))
                .catch_unwind()
                .await
                .is_ok_and(|r| r.is_ok());
            if !ok {
                let _ = txn.rollback().await;
                return None;
            }
        }
        txn.commit().await.ok()?;
        Some(check)
    }

    /// The payload digest recorded with a committed event.
    pub async fn stored_payload(
        &self,
        digest: &Sha256Digest,
    ) -> Result<Option<Sha256Digest>, DbErr> {
        let row = processed_event::Entity::find_by_id(digest.to_vec())
            .one(&self.db)
            .await?;
        Ok(row.and_then(|r| r.payload_sha256.try_into().ok()))
    }

    /// Audit only: counts the failed attempt. Best effort, since the database may be the
    /// thing that failed; losing an audit row never affects exactly-once.
    async fn record_failure(&self, event: &Event, error: &str) {
        let now = self.clock.now();
        let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
        let row = failed_attempt::ActiveModel {
            key_digest: Set(event.digest.to_vec()),
            source: Set(event.key.source.clone()),
            event_type: Set(event.key.event_type.clone()),
            event_id: Set(event.key.event_id.clone()),
            payload_sha256: Set(event.payload_sha256.to_vec()),
            attempts: Set(1),
            last_error: Set(error.clone()),
            first_failed_at: Set(now),
            last_failed_at: Set(now),
        };
        let result = failed_attempt::Entity::insert(row)
            .on_conflict(
                OnConflict::column(failed_attempt::Column::KeyDigest)
                    .value(
                        failed_attempt::Column::Attempts,
                        Expr::col((failed_attempt::Entity, failed_attempt::Column::Attempts))
                            .add(1),
                    )
                    .value(failed_attempt::Column::LastError, Expr::value(error))
                    .value(failed_attempt::Column::LastFailedAt, Expr::value(now))
                    .value(
                        failed_attempt::Column::PayloadSha256,
                        Expr::value(event.payload_sha256.to_vec()),
                    )
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await;
        if let Err(err) = result {
            tracing::warn!(error = %err, "could not record the failed attempt for audit");
        }
    }
}

/// Each distinct handler of a batch (in the order sources list them) with the events that run
/// it, so that a handler sees its events together. Sources naming the same handler share one
/// instance (the registry's), which is what makes them one group.
fn by_handler<'a>(
    events: &[(&'a Event, &'a [Arc<dyn Handler>])],
) -> Vec<(&'a Arc<dyn Handler>, Vec<&'a Event>)> {
    let mut groups: Vec<(&Arc<dyn Handler>, Vec<&Event>)> = Vec::new();
    for (event, handlers) in events {
        for handler in handlers.iter() {
            match groups.iter_mut().find(|(h, _)| Arc::ptr_eq(h, handler)) {
                Some((_, its_events)) => its_events.push(event),
                None => groups.push((handler, vec![event])),
            }
        }
    }
    groups
}

/// The dedupe record of an event: its existence, once committed, is the fact "processed".
fn dedupe_record(event: &Event, processed_at: DateTime<Utc>) -> processed_event::ActiveModel {
    processed_event::ActiveModel {
        key_digest: Set(event.digest.to_vec()),
        source: Set(event.key.source.clone()),
        event_type: Set(event.key.event_type.clone()),
        event_id: Set(event.key.event_id.clone()),
        payload_sha256: Set(event.payload_sha256.to_vec()),
        signed_key: Set(event.signed_key.map(|k| k.to_vec())),
        received_at: Set(event.received_at),
        processed_at: Set(processed_at),
    }
}

/// Jittered exponential backoff: 5, 10, 20 … ms (capped at 320), times 0.5–1.5, so that two
/// transactions that deadlocked each other do not collide again in lockstep.
fn backoff(attempt: u32) -> Duration {
    let base = 5u64 << Ord::min(attempt, 6);
    let nanos = u64::from(Utc::now().timestamp_subsec_nanos()); // jitter, not time: system clock
    let jitter = 50 + nanos % 101; // percent
    Duration::from_micros(base * jitter * 10)
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}
