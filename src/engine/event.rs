//! A verified, identified delivery on its way to a shard.

use chrono::{DateTime, Utc};

use super::key::{EventKey, Sha256Digest};

/// Everything a handler may look at. Built by the route once the signature (if any) is verified
/// and the key extracted; immutable from then on, and shared with the shard through an `Arc`.
#[derive(Debug)]
pub struct Event {
    pub key: EventKey,
    /// `key.digest()`, computed once: it is the database key, the cache key and the shard hash.
    pub digest: Sha256Digest,
    /// SHA-256 of the raw body. Stored with the dedupe record, so a duplicate whose payload
    /// differs can be noticed.
    pub payload_sha256: Sha256Digest,
    /// Request headers, names lowercased, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body parsed as JSON, when it is JSON.
    pub json: Option<serde_json::Value>,
    pub received_at: DateTime<Utc>,
}

impl Event {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
impl Event {
    /// A `payment_succeeded` event of source `test`, as the route would build it.
    pub fn payment(id: &str, order: &str, amount: i64, currency: &str) -> Self {
        use super::key::sha256;
        let json = serde_json::json!({
            "id": id,
            "type": "payment_succeeded",
            "data": {"order_id": order, "amount": amount, "currency": currency}
        });
        let body = json.to_string().into_bytes();
        let key =
            EventKey::new("test", "payment_succeeded".into(), id.into()).expect("a valid test key");
        Event {
            digest: key.digest(),
            key,
            payload_sha256: sha256(&body),
            headers: Vec::new(),
            body,
            json: Some(json),
            received_at: Utc::now(),
        }
    }
}
