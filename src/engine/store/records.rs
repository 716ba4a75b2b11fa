//! The records written beside an event's own transaction: what a settled record says, a
//! rejection settled in a transaction of its own, and the audit of a failed attempt (with the
//! payload kept for a replay).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ActiveValue::Set, DbErr, EntityTrait, TransactionTrait};

use super::{dedupe_record, engine_error, Committed, Store, MAX_ERROR_CHARS};
use crate::db::error::{classify, DbErrorKind};
use crate::engine::outcome::{EngineError, Settled};
use crate::entities::{attempt, event_payload, failed_attempt, processed_event};
use crate::event::key::Sha256Digest;
use crate::event::Event;
use crate::status::{AttemptOutcome, EventStatus};

impl Store {
    /// What the record of a settled event says.
    pub async fn settled(&self, digest: &Sha256Digest) -> Result<Option<Settled>, DbErr> {
        Ok(self.settled_by(digest).await?.map(|(settled, _)| settled))
    }

    /// What the record of a settled event says, and the attempt token of the delivery that
    /// wrote it.
    pub(super) async fn settled_by(
        &self,
        digest: &Sha256Digest,
    ) -> Result<Option<(Settled, Option<Vec<u8>>)>, DbErr> {
        let row = processed_event::Entity::find_by_id(digest.to_vec())
            .one(&self.db)
            .await?;
        Ok(row.and_then(|r| {
            let settled = Settled {
                payload_sha256: r.payload_sha256.try_into().ok()?,
                rejected: r.status == EventStatus::Rejected,
            };
            Some((settled, r.attempt_token))
        }))
    }

    /// Whether `event`'s own transaction wrote its record: a COMMIT that failed on the client
    /// may have been applied by the server. Asked on another connection; `false` when it
    /// cannot be told.
    pub(super) async fn committed_by(&self, event: &Event) -> bool {
        let found = self.wait(self.settled_by(&event.digest)).await;
        matches!(found, Ok(Some((_, Some(token)))) if token == event.attempt_token)
    }

    /// [`Store::settle_rejection`], bounded like the writes beside a transaction: a database
    /// that stopped answering must not hold the writer.
    pub(super) async fn record_rejection(
        &self,
        event: &Event,
        reason: &str,
    ) -> Result<Committed, EngineError> {
        tokio::time::timeout(
            self.bounds.statement * 2,
            self.settle_rejection(event, reason),
        )
        .await
        .unwrap_or_else(|_| {
            Err(EngineError::Unavailable(
                "the database did not record the rejection in time".into(),
            ))
        })
    }

    /// Settles a rejected event in a transaction of its own (the handlers' was rolled back):
    /// its dedupe record says `rejected` with the reason, and its raw payload is kept for a
    /// replay. If another delivery settled it meanwhile, that one stands.
    async fn settle_rejection(
        &self,
        event: &Event,
        reason: &str,
    ) -> Result<Committed, EngineError> {
        let reason: String = reason.chars().take(MAX_ERROR_CHARS).collect();
        let write = async {
            let txn = self.db.begin().await?;
            let mut record = dedupe_record(event, self.clock.now());
            record.status = Set(EventStatus::Rejected);
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
            Err(err) if classify(&err) == DbErrorKind::UniqueViolation => {
                Ok(Committed::Duplicate {
                    stored: self.settled(&event.digest).await.unwrap_or(None),
                })
            }
            Err(err) => Err(engine_error(err)),
        }
    }

    /// Audit only: counts the failed attempt. Best effort, since the database may be the
    /// thing that failed; losing an audit row never affects exactly-once.
    pub(super) async fn record_failure(&self, event: &Event, error: &str) {
        // Bounded like the transaction: a database that stopped answering must not hold the
        // writer on an audit row.
        let write = self.write_failure(event, error);
        if tokio::time::timeout(self.bounds.statement * 2, write)
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
            typed_signed_key: Set(event.signed_key.map(|k| k.to_vec())),
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
                    .value(
                        failed_attempt::Column::LastError,
                        Expr::value(error.clone()),
                    )
                    .value(failed_attempt::Column::LastFailedAt, Expr::value(now))
                    .value(
                        failed_attempt::Column::PayloadSha256,
                        Expr::value(event.payload_sha256.to_vec()),
                    )
                    .value(
                        failed_attempt::Column::TypedSignedKey,
                        Expr::value(event.signed_key.map(|k| k.to_vec())),
                    )
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await;
        if let Err(err) = result {
            tracing::warn!(error = %err, "could not record the failed attempt for audit");
        }
        let history = attempt::ActiveModel {
            key_digest: Set(event.digest.to_vec()),
            kind: Set(attempt::HANDLER.to_owned()),
            outcome: Set(AttemptOutcome::Failed),
            status_code: Set(None),
            error: Set(Some(error)),
            at: Set(now),
            ..Default::default()
        };
        if let Err(err) = attempt::Entity::insert(history)
            .exec_without_returning(&self.db)
            .await
        {
            tracing::warn!(error = %err, "could not record the failed attempt in its history");
        }
    }
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
