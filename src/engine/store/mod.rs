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
//! Every transaction runs under the limits the pool's sessions start with (`db::limits`: a
//! lock or statement timeout ends a wait on a row held elsewhere), with no statement of its
//! own for them. On the client, each statement the engine sends is bounded by `db_timeout` (a
//! database that stopped answering mid-query, where no error ever comes), and
//! the handlers together by `handler_timeout` (a handler that hangs would hold a writer).

mod batch;
mod legacy;
mod records;
mod replay;
mod statement;

pub use replay::{ReplayRequest, Replayed};

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use sea_orm::{
    ActiveValue::NotSet, ActiveValue::Set, DatabaseConnection, DatabaseTransaction, DbErr,
    EntityTrait, TransactionTrait,
};

use crate::clock::Clock;
use crate::db::error::{classify, DbErrorKind};
use crate::engine::outcome::{EngineError, Settled};
use crate::entities::processed_event;
use crate::event::Event;
use crate::handlers::{Handler, HandlerError};
use crate::metrics::Metrics;
use crate::status::EventStatus;

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
    /// A statement's client-side bound ran out: the database stopped answering.
    Stalled,
    /// The handlers ran past their bound.
    HandlersStalled,
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
    /// Reruns after lost deadlock or serialization races.
    pub retries: u32,
}

/// What bounds an ingest transaction on the client's side. The server's own waits (lock,
/// statement, idle) are the pool's sessions' (`db::connect`).
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// The longest the client waits for one statement the engine sends.
    pub statement: Duration,
    /// The longest the client waits for the handlers of one event (or one group).
    /// The longest a whole transaction may take, measured by the client.
    pub handlers: Duration,
}

#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    max_retries: u32,
    bounds: Bounds,
    clock: Clock,
    metrics: Arc<Metrics>,
    /// Whether records of earlier releases (the signed-bytes key without the type) are left.
    legacy: Arc<legacy::LegacyKeys>,
    /// Whether a group commit may be one statement (`statement.rs`); off only to compare the
    /// two paths.
    one_statement: bool,
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
            legacy: Arc::default(),
            one_statement: true,
        }
    }

    /// This store writing every group commit as a transaction, never as one statement: the
    /// reference the one-statement path is compared with (`tests/api/statement.rs`).
    pub fn transactions_only(mut self) -> Self {
        self.one_statement = false;
        self
    }

    /// `fut`, a statement the engine sends, within the client-side bound.
    async fn wait<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, DbErr>>,
    ) -> Result<T, AttemptError> {
        match tokio::time::timeout(self.bounds.statement, fut).await {
            Ok(result) => result.map_err(AttemptError::Db),
            Err(_) => Err(AttemptError::Stalled),
        }
    }

    /// Rolls back without waiting longer than a statement may: on a stalled connection the
    /// rollback stalls too, and dropping the transaction is then the rollback.
    async fn rollback(&self, txn: DatabaseTransaction) {
        let _ = tokio::time::timeout(self.bounds.statement, txn.rollback()).await;
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
            let err = match self.attempt(event, handlers).await {
                Ok(verdict) => {
                    return Ok(Verdict {
                        retries: attempt,
                        ..verdict
                    })
                }
                Err(err) => err,
            };
            match err {
                AttemptError::Stalled => {
                    return Err(EngineError::Unavailable(format!(
                        "the database did not answer a statement within {:?}",
                        self.bounds.statement
                    )));
                }
                AttemptError::HandlersStalled => {
                    let msg = format!("the handlers ran longer than {:?}", self.bounds.handlers);
                    self.record_failure(event, &msg).await;
                    return Err(EngineError::Timeout(msg));
                }
                AttemptError::Handler(msg) => {
                    self.record_failure(event, &msg).await;
                    return Err(EngineError::HandlerFailed(msg));
                }
                AttemptError::Reject(reason) => {
                    let started = Instant::now();
                    let committed = self.record_rejection(event, &reason).await?;
                    return Ok(Verdict {
                        committed,
                        check: started.elapsed(),
                        retries: attempt,
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
        let txn = self.wait(self.db.begin()).await?;
        let replays = self.wait(self.legacy_replays(&txn, &[event])).await;
        if !matches!(&replays, Ok(r) if r.is_empty()) {
            self.rollback(txn).await;
            replays?;
            // A record of an earlier release holds these signed bytes under this type.
            return Ok(Verdict {
                committed: Committed::Duplicate { stored: None },
                check: started.elapsed(),
                retries: 0,
            });
        }
        let record = dedupe_record(event, self.clock.now());
        let inserted =
            self.wait(processed_event::Entity::insert(record).exec_without_returning(&txn));
        if let Err(err) = inserted.await {
            self.rollback(txn).await;
            match err {
                AttemptError::Db(err) if classify(&err) == DbErrorKind::UniqueViolation => {}
                err => return Err(err),
            }
            let check = started.elapsed();
            let found = self
                .wait(self.settled_by(&event.digest))
                .await
                .unwrap_or(None);
            // This delivery's own record: an earlier attempt's COMMIT failed on the client
            // but was applied.
            let own = matches!(&found, Some((_, Some(token))) if *token == event.attempt_token);
            let committed = if own {
                Committed::Processed
            } else {
                Committed::Duplicate {
                    stored: found.map(|(settled, _)| settled),
                }
            };
            return Ok(Verdict {
                committed,
                check,
                retries: 0,
            });
        }
        let check = started.elapsed();
        let run = tokio::time::timeout(self.bounds.handlers, run_handlers(event, handlers, &txn));
        let failure = match run.await {
            Ok(Ok(())) => None,
            Ok(Err(err)) => Some(match err {
                HandlerError::Db(db) => AttemptError::Db(db),
                HandlerError::Failed(msg) => AttemptError::Handler(msg),
                HandlerError::Reject(reason) => AttemptError::Reject(reason),
            }),
            Err(_) => Some(AttemptError::HandlersStalled),
        };
        if let Some(failure) = failure {
            self.rollback(txn).await;
            return Err(failure);
        }
        if let Err(err) = self.wait(txn.commit()).await {
            if !self.committed_by(event).await {
                return Err(err);
            }
        }
        crate::handlers::committed(handlers);
        Ok(Verdict {
            committed: Committed::Processed,
            check,
            retries: 0,
        })
    }
}

/// Runs the handlers in order in `txn`. A panicking handler fails this event only: the
/// transaction is rolled back and the writer goes on serving.
async fn run_handlers(
    event: &Event,
    handlers: &[Arc<dyn Handler>],
    txn: &DatabaseTransaction,
) -> Result<(), HandlerError> {
    for handler in handlers {
        AssertUnwindSafe(handler.handle(event, txn))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                Err(HandlerError::failed(format!(
                    "handler panicked: {}",
                    panic_message(&panic)
                )))
            })?;
    }
    Ok(())
}

/// The dedupe record of an event: its existence, once committed, is the fact "settled".
fn dedupe_record(event: &Event, processed_at: DateTime<Utc>) -> processed_event::ActiveModel {
    processed_event::ActiveModel {
        key_digest: Set(event.digest.to_vec()),
        source: Set(event.key.source.clone()),
        event_type: Set(event.key.event_type.clone()),
        event_id: Set(event.key.event_id.clone()),
        payload_sha256: Set(event.payload_sha256.to_vec()),
        legacy_signed_key: Set(None),
        typed_signed_key: Set(event.signed_key.map(|k| k.to_vec())),
        received_at: Set(event.received_at),
        processed_at: Set(processed_at),
        status: Set(EventStatus::Processed),
        reason: Set(None),
        attempt_token: Set(Some(event.attempt_token.to_vec())),
        mismatches: NotSet,
        last_mismatch_sha256: NotSet,
        last_mismatch_at: NotSet,
    }
}

/// The engine's reading of a database error outside the retried transaction.
pub(crate) fn engine_error(err: DbErr) -> EngineError {
    match classify(&err) {
        DbErrorKind::Unavailable => EngineError::Unavailable(err.to_string()),
        DbErrorKind::Timeout => EngineError::Timeout(err.to_string()),
        DbErrorKind::Retryable => EngineError::Conflict(err.to_string()),
        DbErrorKind::UniqueViolation | DbErrorKind::Other => {
            EngineError::Internal(format!("database error: {err}"))
        }
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
