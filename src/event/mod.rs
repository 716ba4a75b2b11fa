//! The event: what every stage after the route shares, and nothing else.
//!
//! A leaf module. The engine, the handlers, the routes and the sweeper import it; it imports
//! nothing of ours but the schema's size limits, so the module graph stays a tree: the engine
//! runs handlers and handlers read events, but neither imports the other through the event.

pub mod key;

use chrono::{DateTime, Utc};

use key::{EventKey, Sha256Digest};

/// Everything a handler may look at. Built by the route once the signature (if any) is verified
/// and the key extracted; immutable from then on, and shared with the engine through an `Arc`.
#[derive(Debug)]
pub struct Event {
    pub key: EventKey,
    /// `key.digest()`, computed once: it is the database key, the cache key and the shard hash.
    pub digest: Sha256Digest,
    /// SHA-256 of the raw body. Stored with the dedupe record, so a duplicate whose payload
    /// differs can be noticed.
    pub payload_sha256: Sha256Digest,
    /// [`key::signed_key`] of a signed delivery: a second unique key of the dedupe record, so
    /// the same signed bytes commit once per event type whatever unsigned id comes with them.
    /// `None` for an unsigned source, or one that opted out (`dedupe_signed_bytes = false`).
    pub signed_key: Option<Sha256Digest>,
    /// [`key::legacy_signed_key`] of the same delivery: how a record written by a release
    /// before the type counted would name these bytes (`None` where `signed_key` is).
    pub legacy_signed_key: Option<Sha256Digest>,
    /// This delivery's [`key::attempt_token`], stored with the dedupe record its transaction
    /// writes: if a COMMIT fails on the client but was applied, the rerun recognises the record
    /// as its own and answers `processed`, not `duplicate`.
    pub attempt_token: [u8; 16],
    /// Request headers, names lowercased, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub received_at: DateTime<Utc>,
}

impl Event {
    /// The body parsed as JSON, or `None` when it is not JSON. Parsed on each call, for the
    /// handler that needs it, and never kept: a parsed document costs up to 16 times the body
    /// (an array of small numbers), so an event a handler does not read as JSON (the inbox
    /// stores bytes) never builds one, and one that is read holds it only while it is used.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A `payment_succeeded` event of source `test`, as the route would build it (for unit
    /// tests of the engine and the handlers).
    #[cfg(test)]
    pub fn payment(id: &str, order: &str, amount: i64, currency: &str) -> Self {
        let json = serde_json::json!({
            "id": id,
            "type": "payment_succeeded",
            "data": {"order_id": order, "amount": amount, "currency": currency}
        });
        let body = json.to_string().into_bytes();
        let key =
            EventKey::new("test", "payment_succeeded".into(), id.into()).expect("a valid test key");
        let digest = key.digest();
        Event {
            digest,
            key,
            payload_sha256: key::sha256(&body),
            signed_key: None,
            legacy_signed_key: None,
            attempt_token: key::attempt_token(&digest),
            headers: Vec::new(),
            body,
            received_at: Utc::now(),
        }
    }
}

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

/// Why the engine did not settle an event. None of these commits anything; `error.rs` maps
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
