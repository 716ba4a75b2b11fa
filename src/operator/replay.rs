//! Replaying one event from what idemhook stored: the payload kept for rejected and failed
//! events (or the inbox's or outbox's copy), run through the source's handlers by
//! [`Engine::replay`], which settles it in one transaction with an audit row.

use sea_orm::{ConnectionTrait, EntityTrait};

use super::view;
use super::OperatorError;
use crate::engine::store::{ReplayRequest, Replayed};
use crate::engine::Engine;
use crate::entities::{failed_attempt, processed_event};
use crate::event::key::{attempt_token, sha256, EventKey, Sha256Digest};
use crate::event::Event;
use crate::providers::Sources;
use crate::status::EventStatus;

/// What a replay did, for the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayDone {
    /// What the event was before: `rejected`, `failed`, or `processed` (forced).
    pub previous: EventStatus,
}

/// Replays the event `digest` (of source `source`): refused when idemhook knows nothing of
/// it, when it is processed and `force` is not set, when no payload was kept, or when its
/// source is no longer configured.
pub async fn replay(
    db: &impl ConnectionTrait,
    engine: &Engine,
    sources: &Sources,
    digest: &Sha256Digest,
    request: &ReplayRequest,
) -> Result<ReplayDone, OperatorError> {
    let key = digest.to_vec();
    // The signed-bytes key goes with the event: a record (rejected or processed) keeps its
    // own, and a failed event's comes from its audit row, so the record a replay writes is
    // the one the provider's delivery would have written.
    let (parts, received_at, processed, signed_key) =
        match processed_event::Entity::find_by_id(key.clone())
            .one(db)
            .await?
        {
            Some(p) => (
                (p.source, p.event_type, p.event_id),
                p.received_at,
                p.status == EventStatus::Processed,
                p.typed_signed_key,
            ),
            None => match failed_attempt::Entity::find_by_id(key).one(db).await? {
                Some(f) => (
                    (f.source, f.event_type, f.event_id),
                    f.first_failed_at,
                    false,
                    f.typed_signed_key,
                ),
                None => return Err(OperatorError::NotFound("no such event".into())),
            },
        };
    if processed && !request.force {
        return Err(already_processed());
    }
    let (body, _) = view::payload(db, digest).await?.ok_or_else(|| {
        OperatorError::Conflict(
            "idemhook kept no payload for this event (it is kept for rejected and failed \
             events until the retention sweep, and by the inbox and the outbox): nothing to \
             replay"
                .into(),
        )
    })?;
    let source = sources.get(&parts.0).ok_or_else(|| {
        OperatorError::Conflict(format!(
            "the source `{}` is no longer configured: its handlers are unknown",
            parts.0
        ))
    })?;
    let key = EventKey::new(&parts.0, parts.1, parts.2)
        .map_err(|e| OperatorError::Conflict(format!("the stored key is invalid: {e}")))?;
    let event = Event {
        digest: *digest,
        payload_sha256: sha256(&body),
        signed_key: signed_key.and_then(|k| k.try_into().ok()),
        legacy_signed_key: None,
        attempt_token: attempt_token(digest),
        headers: Vec::new(),
        body,
        received_at,
        key,
        traceparent: None,
    };
    match engine.replay(&event, &source.handlers, request).await? {
        Replayed::Processed { previous } => Ok(ReplayDone { previous }),
        Replayed::AlreadyProcessed => Err(already_processed()),
        Replayed::Rejected(reason) => Err(OperatorError::NotApplied(format!(
            "a handler rejected the event again, nothing was applied: {reason}"
        ))),
        Replayed::Failed(error) => Err(OperatorError::NotApplied(format!(
            "a handler failed, nothing was applied: {error}"
        ))),
    }
}

fn already_processed() -> OperatorError {
    OperatorError::Conflict(
        "the event is already processed; replaying it runs its handlers again (`force=true`, \
         dangerous for handlers that are not idempotent)"
            .into(),
    )
}
