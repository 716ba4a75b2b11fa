//! A deliberate re-run of an event's handlers, asked for by an operator.
//!
//! Exactly-once still holds, because the replay settles the event through the same record:
//!
//! ```text
//! BEGIN
//!   UPDATE processed_events SET status = 'processed' … WHERE key = ? AND status = 'rejected'
//!   -- or, for a failed event (no record): INSERT the record (unique key: one winner)
//!   -- or, forced, for a processed one: UPDATE … WHERE status = 'processed' (a row lock)
//!   handler writes …
//!   INSERT INTO replays (…)                    -- who asked, when, forced or not
//! COMMIT
//! ```
//!
//! Two replays of the same rejected event, or a replay racing the provider's own retry of a
//! failed one, meet on that row: one commits, the other finds it processed and is refused
//! (a 409) unless it was forced. A forced replay runs every handler as for a new event: the
//! inbox gets a fresh row and the outbox a fresh delivery (their old rows are removed in the
//! same transaction), and handlers that are not idempotent (payments) apply again. That is
//! why it is refused unless asked for by name.

use std::sync::Arc;

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter,
    TransactionTrait,
};

use super::{backoff, dedupe_record, engine_error, run_handlers, Store};
use crate::db::error::{classify, DbErrorKind};
use crate::engine::EngineError;
use crate::entities::{inbox, processed_event, replay};
use crate::event::Event;
use crate::forward::deliveries;
use crate::handlers::{Handler, HandlerError};
use crate::status::EventStatus;

/// Who asked for a replay, and how.
#[derive(Debug, Clone)]
pub struct ReplayRequest {
    /// Run the handlers of an already processed event again.
    pub force: bool,
    /// Recorded with the replay.
    pub operator: String,
    /// The bulk job this replay belongs to.
    pub job_id: Option<i64>,
    /// The operator's audit row, written in the replay's transaction (none for a job's
    /// replays: the job's start is the audited change).
    pub audit: Option<crate::entities::audit::ActiveModel>,
}

/// How a replay ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replayed {
    /// The handlers committed; the event is processed. `previous`: what it was.
    Processed { previous: EventStatus },
    /// The event is processed already and the request did not say `force`.
    AlreadyProcessed,
    /// A handler refused it again; nothing was applied (it stays, or becomes, rejected).
    Rejected(String),
    /// A handler failed; nothing was applied, and the attempt is in its history.
    Failed(String),
}

impl Store {
    /// Replays `event`, running the transaction again when it lost a deadlock or a
    /// certification race. That is the common way for concurrent replays of one event to meet
    /// on MariaDB/Galera (their locks on the record and its index interleave); the rerun reads
    /// the winner's commit and answers [`Replayed::AlreadyProcessed`], as a replay that waited
    /// on the row lock would have.
    pub async fn replay(
        &self,
        event: &Event,
        handlers: &[Arc<dyn Handler>],
        request: &ReplayRequest,
    ) -> Result<Replayed, EngineError> {
        let mut attempt = 0;
        loop {
            match self.replay_once(event, handlers, request).await {
                Err(EngineError::Conflict(_)) if attempt < self.max_retries => {
                    attempt += 1;
                    self.metrics.db_retries.inc();
                    tokio::time::sleep(backoff(attempt)).await;
                }
                outcome => return outcome,
            }
        }
    }

    async fn replay_once(
        &self,
        event: &Event,
        handlers: &[Arc<dyn Handler>],
        request: &ReplayRequest,
    ) -> Result<Replayed, EngineError> {
        let txn = self.db.begin().await.map_err(engine_error)?;
        let previous = match self.claim(&txn, event, request.force).await {
            Ok(Some(previous)) => previous,
            Ok(None) => {
                self.rollback(txn).await;
                return Ok(Replayed::AlreadyProcessed);
            }
            Err(err) => {
                self.rollback(txn).await;
                return Err(engine_error(err));
            }
        };
        let run = tokio::time::timeout(self.bounds.handlers, run_handlers(event, handlers, &txn));
        let failure = match run.await {
            Ok(Ok(())) => None,
            Ok(Err(HandlerError::Reject(reason))) => {
                self.rollback(txn).await;
                if previous == EventStatus::Failed {
                    self.record_rejection(event, &reason).await?;
                }
                return Ok(Replayed::Rejected(reason));
            }
            Ok(Err(HandlerError::Db(err))) => match classify(&err) {
                DbErrorKind::Unavailable | DbErrorKind::Timeout | DbErrorKind::Retryable => {
                    self.rollback(txn).await;
                    return Err(engine_error(err));
                }
                _ => Some(format!("database error: {err}")),
            },
            Ok(Err(HandlerError::Failed(msg))) => Some(msg),
            Err(_) => Some(format!(
                "the handlers ran longer than {:?}",
                self.bounds.handlers
            )),
        };
        if let Some(msg) = failure {
            self.rollback(txn).await;
            self.record_failure(event, &msg).await;
            return Ok(Replayed::Failed(msg));
        }
        let audit = replay::ActiveModel {
            key_digest: Set(event.digest.to_vec()),
            source: Set(event.key.source.clone()),
            event_type: Set(event.key.event_type.clone()),
            event_id: Set(event.key.event_id.clone()),
            previous_status: Set(previous),
            forced: Set(previous == EventStatus::Processed),
            operator: Set(request.operator.clone()),
            job_id: Set(request.job_id),
            replayed_at: Set(self.clock.now()),
            ..Default::default()
        };
        let written = async {
            replay::Entity::insert(audit)
                .exec_without_returning(&txn)
                .await?;
            if let Some(row) = request.audit.clone() {
                crate::entities::audit::Entity::insert(row)
                    .exec_without_returning(&txn)
                    .await?;
            }
            txn.commit().await
        };
        written.await.map_err(engine_error)?;
        crate::handlers::committed(handlers);
        tracing::warn!(
            source = %event.key.source,
            event_type = %event.key.event_type,
            event_id = %event.key.event_id,
            previous = %previous,
            operator = %request.operator,
            "event replayed by an operator"
        );
        Ok(Replayed::Processed { previous })
    }

    /// Takes the event's record for this replay, in `txn`: what it was before, or `None` when
    /// it is processed and the replay is not forced.
    async fn claim(
        &self,
        txn: &DatabaseTransaction,
        event: &Event,
        force: bool,
    ) -> Result<Option<EventStatus>, DbErr> {
        use processed_event::Column as C;
        let now = self.clock.now();
        let settle = |from: EventStatus| {
            processed_event::Entity::update_many()
                .col_expr(C::Status, Expr::val(EventStatus::Processed))
                .col_expr(C::Reason, Expr::val(None::<String>))
                .col_expr(C::ProcessedAt, Expr::val(now))
                .col_expr(C::AttemptToken, Expr::val(event.attempt_token.to_vec()))
                .filter(C::KeyDigest.eq(event.digest.to_vec()))
                .filter(C::Status.eq(from))
        };
        if settle(EventStatus::Rejected).exec(txn).await?.rows_affected == 1 {
            return Ok(Some(EventStatus::Rejected));
        }
        if force
            && settle(EventStatus::Processed)
                .exec(txn)
                .await?
                .rows_affected
                == 1
        {
            // Run as for a new event: the rows its first run left are replaced, not doubled.
            let digest = event.digest.to_vec();
            inbox::Entity::delete_many()
                .filter(inbox::Column::KeyDigest.eq(digest.clone()))
                .exec(txn)
                .await?;
            deliveries::forget(txn, &digest).await?;
            return Ok(Some(EventStatus::Processed));
        }
        let inserted = processed_event::Entity::insert(dedupe_record(event, now))
            .exec_without_returning(txn)
            .await;
        match inserted {
            Ok(_) => Ok(Some(EventStatus::Failed)),
            Err(err) if classify(&err) == DbErrorKind::UniqueViolation => Ok(None),
            Err(err) => Err(err),
        }
    }
}
