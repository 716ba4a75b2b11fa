//! The identity of an event: (source, event type, event id), compared as exact bytes.
//!
//! The database keys its dedupe record by `KeyDigest`, a SHA-256 over the three parts, each
//! prefixed with its length. The length prefix is what keeps the encoding injective:
//! without it ("a.b", "c") and ("a", "b.c") would hash alike. The same digest picks the shard,
//! so every delivery of one event lands on the same actor.

use sha2::{Digest, Sha256};

pub use migration::limits::MAX_KEY_PART_BYTES;

/// A 32-byte SHA-256.
pub type Sha256Digest = [u8; 32];

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventKey {
    pub source: String,
    pub event_type: String,
    pub event_id: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("the event {0} is empty")]
    Empty(&'static str),
    #[error("the event {0} is {1} bytes long; at most {MAX_KEY_PART_BYTES} are accepted")]
    TooLong(&'static str, usize),
    /// PostgreSQL cannot store NUL in text, and no provider sends one: refused everywhere, so
    /// every backend gives the same answer.
    #[error("the event {0} contains a NUL byte")]
    Nul(&'static str),
}

impl EventKey {
    /// Builds a key, refusing empty parts and parts over `MAX_KEY_PART_BYTES`. Nothing is
    /// trimmed or normalised: `evt_A`, `evt_a` and `evt_a ` are three different events.
    pub fn new(source: &str, event_type: String, event_id: String) -> Result<Self, KeyError> {
        for (what, part) in [("type", &event_type), ("id", &event_id)] {
            if part.is_empty() {
                return Err(KeyError::Empty(what));
            }
            if part.len() > MAX_KEY_PART_BYTES {
                return Err(KeyError::TooLong(what, part.len()));
            }
            if part.contains('\0') {
                return Err(KeyError::Nul(what));
            }
        }
        Ok(Self {
            source: source.to_owned(),
            event_type,
            event_id,
        })
    }

    pub fn digest(&self) -> Sha256Digest {
        let mut hasher = Sha256::new();
        for part in [&self.source, &self.event_type, &self.event_id] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part.as_bytes());
        }
        hasher.finalize().into()
    }
}

/// The second unique key of a signed delivery: SHA-256 over the source and the event type
/// (each length-prefixed, as in [`EventKey::digest`]) and the SHA-256 of the bytes its
/// signature covers. Where a provider signs the body alone, the event id and type come from
/// headers no signature covers; this key is what stops the same signed bytes from being
/// applied again under another id.
///
/// The type is part of it because providers send byte-identical bodies as distinct events
/// under different types (Shopify's `orders/create` and `orders/paid` carry the same order
/// object): without it the second topic would be answered `duplicate` and lost for good. A
/// captured body can therefore be replayed under another type the source accepts; the
/// source's `accept_types` bounds which. Per source, so that two sources may receive the
/// same bytes.
pub fn signed_key(source: &str, event_type: &str, signed_sha256: &Sha256Digest) -> Sha256Digest {
    let mut hasher = Sha256::new();
    hasher.update(b"signed-type");
    for part in [source, event_type] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.update(signed_sha256);
    hasher.finalize().into()
}

/// The signed-bytes key the releases before [`signed_key`] wrote (`processed_events.signed_key`):
/// source and signed bytes, no type. Still computed so that a record of such a release keeps
/// refusing a replay of its bytes under the same type until the retention sweep removes it.
pub fn legacy_signed_key(source: &str, signed_sha256: &Sha256Digest) -> Sha256Digest {
    let mut hasher = Sha256::new();
    hasher.update(b"signed");
    hasher.update((source.len() as u64).to_be_bytes());
    hasher.update(source.as_bytes());
    hasher.update(signed_sha256);
    hasher.finalize().into()
}

/// A token for one delivery, unique within the process and across processes in practice:
/// the SHA-256 of the event's digest, the wall clock's nanoseconds and a process-wide counter.
/// It identifies, not protects: nothing depends on it being unguessable.
pub fn attempt_token(digest: &Sha256Digest) -> [u8; 16] {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut hasher = Sha256::new();
    hasher.update(digest);
    hasher.update(nanos.to_be_bytes());
    hasher.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    hasher.update(std::process::id().to_be_bytes());
    let full: [u8; 32] = hasher.finalize().into();
    let mut token = [0u8; 16];
    token.copy_from_slice(&full[..16]);
    token
}

/// The id used for an event without one: `sha256:` + lowercase hex of the raw body.
pub fn payload_hash_id(payload_sha256: &Sha256Digest) -> String {
    format!("sha256:{}", hex::encode(payload_sha256))
}

pub fn sha256(bytes: &[u8]) -> Sha256Digest {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(source: &str, ty: &str, id: &str) -> EventKey {
        EventKey::new(source, ty.into(), id.into()).unwrap()
    }

    #[test]
    fn parts_are_exact_bytes() {
        let base = key("s", "t", "evt_a").digest();
        assert_ne!(base, key("s", "t", "evt_A").digest());
        assert_ne!(base, key("s", "t", "evt_a ").digest());
        assert_ne!(base, key("s", "t", " evt_a").digest());
        assert_ne!(base, key("s", "T", "evt_a").digest());
        assert_ne!(base, key("S", "t", "evt_a").digest());
        assert_eq!(base, key("s", "t", "evt_a").digest());
    }

    #[test]
    fn length_prefix_keeps_the_encoding_injective() {
        assert_ne!(key("a.b", "c", "d").digest(), key("a", "b.c", "d").digest());
        assert_ne!(key("ab", "c", "d").digest(), key("a", "bc", "d").digest());
    }

    #[test]
    fn empty_and_overlong_parts_are_refused() {
        assert_eq!(
            EventKey::new("s", "".into(), "x".into()),
            Err(KeyError::Empty("type"))
        );
        assert_eq!(
            EventKey::new("s", "t".into(), "".into()),
            Err(KeyError::Empty("id"))
        );
        assert!(EventKey::new("s", "t".into(), "x".repeat(1024)).is_ok());
        assert_eq!(
            EventKey::new("s", "t".into(), "x".repeat(1025)),
            Err(KeyError::TooLong("id", 1025))
        );
    }

    #[test]
    fn nul_bytes_are_refused() {
        assert_eq!(
            EventKey::new("s", "t".into(), "a\0b".into()),
            Err(KeyError::Nul("id"))
        );
    }

    #[test]
    fn payload_hash_ids_are_prefixed_lowercase_hex() {
        let id = payload_hash_id(&sha256(b"{}"));
        assert_eq!(
            id,
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }

    #[test]
    fn the_signed_key_counts_source_and_type_and_never_meets_the_legacy_form() {
        let bytes = sha256(b"{\"id\":1}");
        let base = signed_key("shop", "orders/create", &bytes);
        assert_eq!(base, signed_key("shop", "orders/create", &bytes));
        assert_ne!(base, signed_key("shop", "orders/paid", &bytes));
        assert_ne!(base, signed_key("shop2", "orders/create", &bytes));
        assert_ne!(base, signed_key("shop", "orders/create", &sha256(b"{}")));
        // Length-prefixed: moving a byte between source and type is another key.
        assert_ne!(signed_key("ab", "c", &bytes), signed_key("a", "bc", &bytes));
        assert_ne!(base, legacy_signed_key("shop", &bytes));
        // The form the previous releases stored, pinned: old records are found by it.
        assert_eq!(
            hex::encode(legacy_signed_key("s", &sha256(b"{}"))),
            hex::encode({
                let mut h = Sha256::new();
                h.update(b"signed");
                h.update(1u64.to_be_bytes());
                h.update(b"s");
                h.update(sha256(b"{}"));
                <[u8; 32]>::from(h.finalize())
            })
        );
    }
}
