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
