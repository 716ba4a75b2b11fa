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
//!
//! Every transaction sets its [`Limits`] first (a lock or statement timeout ends a wait on a
//! row held elsewhere) and is bounded as a whole by `db_timeout` on the client (a database
//! that stopped answering mid-query ends it too).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::Set, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait, TransactionTrait,
};

use super::db_error::{classify, DbErrorKind};
use crate::clock::Clock;
use crate::db::Limits;
use crate::entities::{event_payload, failed_attempt, processed_event};
use crate::event::key::Sha256Digest;
use crate::event::{EngineError, Event, Settled};
use crate::handlers::{Handler, HandlerError};
use crate::metrics::Metrics;

/// The longest `last_error` kept in the audit table.
const MAX_ERROR_CHARS: usize = 2000;

/// What the database says about an event once its transaction is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// This delivery's transaction committed the event.
    Processed,
    /// A handler refused the event for good: its writes were rolled back, and this delivery
    /// settled it as rejected.
    Rejected,
    /// The event was settled before; `stored` is what its record says, when it could be read
    /// (`None` also when the record found was another key's: the same signed bytes).
    Duplicate { stored: Option<Settled> },
}

/// Why one attempt at the transaction did not commit.
enum AttemptError {
    Db(DbErr),
    Handler(String),
    /// A handler's [`HandlerError::Reject`].
    Reject(String),
    /// The client-side bound on the whole transaction ran out: the database stopped answering.
    Stalled,
}

/// Why a group commit did not commit.
pub enum BatchFailure {
    /// The database cannot be reached or stopped answering: every event of the group is
    /// answered 503 at once, rather than each waiting its turn to find out again.
    Unavailable(String),
    /// Anything else (a duplicate, a handler's failure, a conflict, a lock timeout): each
    /// event is redone alone, so only the event at fault fails.
    Redo,
}

/// A committed outcome and how long the dedupe insert took (the idempotency check's share
/// of the transaction).
pub struct Verdict {
    pub committed: Committed,
    pub check: Duration,
}

/// What bounds an ingest transaction.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Set on the transaction itself (lock, statement, idle).
    pub limits: Limits,
    /// The longest a whole transaction may take, measured by the client.
    pub transaction: Duration,
}

#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    max_retries: u32,
    bounds: Bounds,
    clock: Clock,
    metrics: Arc<Metrics>,
}

impl Store {
    pub fn new(
        db: DatabaseConnection,
        max_retries: u32,
        bounds: Bounds,
        clock: Clock,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            db,
            max_retries,
            bounds,
            clock,
            metrics,
        }
    }

    /// BEGIN, then the transaction's limits.
    async fn begin(&self) -> Result<DatabaseTransaction, DbErr> {
        let txn = self.db.begin().await?;
        if let Err(err) = self.bounds.limits.apply(&txn).await {
            let _ = txn.rollback().await;
            return Err(err);
        }
        Ok(txn)
    }

    /// Runs the event's transaction, rerunning it when it lost a deadlock or serialization
    /// race. A failure is recorded in the audit table (outside the rolled-back transaction).
    pub async fn process(
        &self,
        event: &Event,
        handlers: &[Arc<dyn Handler>],
    ) -> Result<Verdict, EngineError> {
        let mut attempt = 0;
        loop {
            let bounded =
                tokio::time::timeout(self.bounds.transaction, self.attempt(event, handlers));
            let err = match bounded.await {
                Ok(Ok(committed)) => return Ok(committed),
                Ok(Err(err)) => err,
                Err(_) => AttemptError::Stalled,
            };
            match err {
                AttemptError::Stalled => {
                    return Err(EngineError::Unavailable(format!(
                        "the database did not finish the transaction within {:?}",
                        self.bounds.transaction
                    )));
                }
                AttemptError::Handler(msg) => {
                    self.record_failure(event, &msg).await;
                    return Err(EngineError::HandlerFailed(msg));
                }
                AttemptError::Reject(reason) => {
                    let started = Instant::now();
                    let settle = self.record_rejection(event, &reason);
                    let committed =
                        match tokio::time::timeout(self.bounds.transaction, settle).await {
                            Ok(result) => result?,
                            Err(_) => {
                                return Err(EngineError::Unavailable(
                                    "the database did not record the rejection in time".into(),
                                ))
                            }
                        };
                    return Ok(Verdict {
                        committed,
                        check: started.elapsed(),
                    });
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
                    DbErrorKind::Timeout => {
                        return Err(EngineError::Timeout(db_err.to_string()));
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
    ) -> Result<Verdict, AttemptError> {
        let started = Instant::now();
        let txn = self.begin().await.map_err(AttemptError::Db)?;
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
            let stored = self.settled(&event.digest).await.unwrap_or(None);
            return Ok(Verdict {
                committed: Committed::Duplicate { stored },
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
                    HandlerError::Reject(reason) => AttemptError::Reject(reason),
                });
            }
        }
        txn.commit().await.map_err(AttemptError::Db)?;
        Ok(Verdict {
            committed: Committed::Processed,
            check,
        })
    }

    /// Group commit: the events of one batch in a single transaction, with one multi-row
    /// dedupe insert. `Ok(check)` when every event committed (all were new and every handler
    /// succeeded). Otherwise nothing was committed, and either the database is unreachable
    /// (every event is answered 503 at once) or the caller runs each event through
    /// [`Store::process`], which isolates duplicates, failures, timeouts and retries per
    /// event. The optimistic path is the common one: duplicates mostly never get here (the
    /// cache answers them) and handler failures are rare, so a batch of N new events costs
    /// one BEGIN, one INSERT and one COMMIT instead of N of each, and each handler sees the
    /// batch's events in one [`Handler::handle_batch`] call.
    ///
    /// `events` must be sorted by digest and free of repeats: two batches on two instances
    /// then take their dedupe-row locks in the same order and cannot deadlock on them.
    pub async fn commit_batch(
        &self,
        events: &[(&Event, &[Arc<dyn Handler>])],
    ) -> Result<Duration, BatchFailure> {
        match tokio::time::timeout(self.bounds.transaction, self.try_batch(events)).await {
            Ok(result) => result,
            Err(_) => Err(BatchFailure::Unavailable(format!(
                "the database did not finish a group's transaction within {:?}",
                self.bounds.transaction
            ))),
        }
    }

    async fn try_batch(
        &self,
        events: &[(&Event, &[Arc<dyn Handler>])],
    ) -> Result<Duration, BatchFailure> {
        let started = Instant::now();
        let txn = self.begin().await.map_err(batch_failure)?;
        let now = self.clock.now();
        let records = events.iter().map(|(event, _)| dedupe_record(event, now));
        if let Err(err) = processed_event::Entity::insert_many(records)
            .exec_without_returning(&txn)
            .await
        {
            let _ = txn.rollback().await;
            return Err(batch_failure(err));
        }
        let check = started.elapsed();
        for (handler, its_events) in by_handler(events) {
            let result = AssertUnwindSafe(handler.handle_batch(&its_events, &txn))
                .catch_unwind()
                .await;
            let failure = match result {
                Ok(Ok(())) => continue,
                Ok(Err(HandlerError::Db(err))) => batch_failure(err),
                Ok(Err(_)) | Err(_) => BatchFailure::Redo,
            };
            let _ = txn.rollback().await;
            return Err(failure);
        }
        txn.commit().await.map_err(batch_failure)?;
        Ok(check)
    }

    /// What the record of a settled event says.
    pub async fn settled(&self, digest: &Sha256Digest) -> Result<Option<Settled>, DbErr> {
        let row = processed_event::Entity::find_by_id(digest.to_vec())
            .one(&self.db)
            .await?;
        Ok(row.and_then(|r| {
            Some(Settled {
                payload_sha256: r.payload_sha256.try_into().ok()?,
                rejected: r.status == processed_event::REJECTED,
            })
        }))
    }

    /// Settles a rejected event in a transaction of its own (the handlers' was rolled back):
    /// its dedupe record says `rejected` with the reason, and its raw payload is kept for a
    /// replay. If another delivery settled it meanwhile, that one stands.
    async fn record_rejection(
        &self,
        event: &Event,
        reason: &str,
    ) -> Result<Committed, EngineError> {
        let reason: String = reason.chars().take(MAX_ERROR_CHARS).collect();
        let write = async {
            let txn = self.begin().await?;
            let mut record = dedupe_record(event, self.clock.now());
            record.status = Set(processed_event::REJECTED.to_owned());
            record.reason = Set(Some(reason.clone()));
            processed_event::Entity::insert(record)
                .exec_without_returning(&txn)
                .await?;
            keep_payload(&txn, event, self.clock.now()).await?;
            txn.commit().await
        };
        match write.await {
            Ok(()) => {
                tracing::warn!(
                    source = %event.key.source,
                    event_type = %event.key.event_type,
                    event_id = %event.key.event_id,
                    %reason,
                    "event rejected by a handler: settled as rejected, payload kept for a replay"
                );
                Ok(Committed::Rejected)
            }
            Err(err) => match classify(&err) {
                DbErrorKind::UniqueViolation => Ok(Committed::Duplicate {
                    stored: self.settled(&event.digest).await.unwrap_or(None),
                }),
                DbErrorKind::Unavailable => Err(EngineError::Unavailable(err.to_string())),
                DbErrorKind::Timeout => Err(EngineError::Timeout(err.to_string())),
                DbErrorKind::Retryable => Err(EngineError::Conflict(err.to_string())),
                DbErrorKind::Other => Err(EngineError::Internal(format!(
                    "cannot record the rejection: {err}"
                ))),
            },
        }
    }

    /// Audit only: counts the failed attempt. Best effort, since the database may be the
    /// thing that failed; losing an audit row never affects exactly-once.
    async fn record_failure(&self, event: &Event, error: &str) {
        // Bounded like the transaction: a database that stopped answering must not hold the
        // writer on an audit row.
        let write = self.write_failure(event, error);
        if tokio::time::timeout(self.bounds.transaction, write)
            .await
            .is_err()
        {
            tracing::warn!("could not record the failed attempt for audit: the database stalled");
        }
    }

    async fn write_failure(&self, event: &Event, error: &str) {
        let now = self.clock.now();
        // The payload first, so a failed event can be replayed from what idemhook kept.
        if let Err(err) = keep_payload(&self.db, event, now).await {
            tracing::warn!(error = %err, "could not keep the failed event's payload");
        }
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

/// A group's database error: an unreachable database fails the whole group, anything else
/// sends its events through one transaction each.
fn batch_failure(err: DbErr) -> BatchFailure {
    match classify(&err) {
        DbErrorKind::Unavailable => BatchFailure::Unavailable(err.to_string()),
        _ => BatchFailure::Redo,
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

/// Keeps (or refreshes) the raw payload of a rejected or failed event, for a replay.
async fn keep_payload(
    db: &impl sea_orm::ConnectionTrait,
    event: &Event,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let row = event_payload::ActiveModel {
        key_digest: Set(event.digest.to_vec()),
        payload: Set(event.body.clone()),
        stored_at: Set(now),
    };
    event_payload::Entity::insert(row)
        .on_conflict(
            OnConflict::column(event_payload::Column::KeyDigest)
                .update_columns([
                    event_payload::Column::Payload,
                    event_payload::Column::StoredAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await
        .map(|_| ())
}

/// The dedupe record of an event: its existence, once committed, is the fact "settled".
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
        status: Set(processed_event::PROCESSED.to_owned()),
        reason: Set(None),
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
