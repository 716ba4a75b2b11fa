//! The event: what every stage after the route shares, and nothing else.
//!
//! A leaf module. The engine, the handlers, the routes and the sweeper import it; it imports
//! nothing of ours but the schema's size limits, so the module graph stays a tree: the engine
//! runs handlers and handlers read events, but neither imports the other through the event.
//! What the engine makes of an event (its outcome, its errors) is the engine's:
//! `engine::outcome`.

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
    /// The W3C `traceparent` of the event's trace, when tracing is on: stored with its outbox
    /// rows, so each delivery attempt joins the trace on whichever instance makes it.
    pub traceparent: Option<String>,
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
            traceparent: None,
        }
    }
}
