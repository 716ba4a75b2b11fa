//! What the engine makes of a delivery: its [`Outcome`] (all answered 200), what a settled
//! record says ([`Settled`]), and why it did not settle one ([`EngineError`]). The routes map
//! these to answers (`routes::error`); the event itself (`crate::event`) knows none of them.

use crate::event::key::{EventKey, Sha256Digest};

/// What a delivery amounts to once the engine is done with it. All answer 200.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// This delivery's transaction committed the event.
    Processed,
    /// The event was committed before (by this delivery's predecessor, here or on another
    /// instance); nothing ran. `mismatch`: the SHA-256 of the payload that settled it, when
    /// this delivery's body differs from it.
    Duplicate { mismatch: Option<Sha256Digest> },
    /// A handler refused the event for good; it is settled as rejected and nothing of it was
    /// applied. `replayed`: it was rejected before, for an earlier delivery.
    Rejected { replayed: bool },
}

/// What the dedupe record of a settled event says, as the cache and a duplicate's lookup
/// report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    /// The SHA-256 of the payload that settled it.
    pub payload_sha256: Sha256Digest,
    /// Settled as rejected rather than processed.
    pub rejected: bool,
}

impl Outcome {
    /// Another delivery of the event `key`, settled before as `stored` says (when known): a
    /// rejected event is answered rejected again; a different payload under the same key is
    /// noted and logged, never applied.
    pub fn duplicate(
        key: &EventKey,
        payload_sha256: &Sha256Digest,
        stored: Option<Settled>,
    ) -> Self {
        if stored.is_some_and(|s| s.rejected) {
            return Outcome::Rejected { replayed: true };
        }
        let mismatch = stored
            .map(|s| s.payload_sha256)
            .filter(|stored| stored != payload_sha256);
        if mismatch.is_some() {
            tracing::warn!(
                source = %key.source,
                event_type = %key.event_type,
                event_id = %key.event_id,
                "duplicate delivery with a different payload; not applied"
            );
        }
        Outcome::Duplicate { mismatch }
    }
}

/// Why the engine did not settle an event. None of these commits anything; `routes::error` maps
/// each to its HTTP answer and its metric.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The shard that owns the key holds as many deliveries as it may.
    #[error("the shard's queue is full")]
    QueueFull,
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The transaction waited past its lock or statement timeout: a row it needs is held
    /// elsewhere. Only this event is refused; retry later.
    #[error("the event's transaction timed out waiting: {0}")]
    Timeout(String),
    /// The transaction kept losing deadlock or serialization races; retry later.
    #[error("the event's transaction kept conflicting: {0}")]
    Conflict(String),
    /// The instance is shutting down and its shards have stopped.
    #[error("shutting down")]
    ShuttingDown,
    #[error("a handler failed: {0}")]
    HandlerFailed(String),
    #[error("internal error: {0}")]
    Internal(String),
}
