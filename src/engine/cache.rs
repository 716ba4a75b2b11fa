//! Keys known to be committed, so most duplicates are answered without the database.
//!
//! Only the shard that owns a key writes it here, and only *after* the key's transaction
//! committed: an entry is proof of a commit, never of a delivery in progress. A miss proves
//! nothing; the database's unique key decides. The cache is bounded by entry count and its
//! TTL never exceeds the retention, so it cannot vouch for a record the sweeper removed.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use moka::future::Cache;

use super::key::Sha256Digest;

#[derive(Clone)]
pub struct CommittedKeys {
    /// key digest -> payload SHA-256 of the delivery that committed.
    inner: Cache<Sha256Digest, Sha256Digest, DigestHasher>,
}

/// Keys are SHA-256 digests, already uniform: hashing them again with SipHash (the default,
/// built to resist hash flooding by chosen keys) would spend time for nothing, since nobody
/// can choose a digest. The hash is the digest's first eight bytes.
#[derive(Clone, Default)]
struct DigestHasher;

impl BuildHasher for DigestHasher {
    type Hasher = DigestHash;

    fn build_hasher(&self) -> DigestHash {
        DigestHash(0)
    }
}

struct DigestHash(u64);

impl Hasher for DigestHash {
    fn write(&mut self, bytes: &[u8]) {
        // `[u8; 32]` hashes as its length (a usize, via `write_usize`) then its bytes.
        let mut head = [0u8; 8];
        let n = bytes.len().min(8);
        head[..n].copy_from_slice(&bytes[..n]);
        self.0 ^= u64::from_le_bytes(head);
    }

    fn write_usize(&mut self, _len: usize) {}

    fn finish(&self) -> u64 {
        self.0
    }
}

impl CommittedKeys {
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        Self {
            inner: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build_with_hasher(DigestHasher),
        }
    }

    pub async fn get(&self, key: &Sha256Digest) -> Option<Sha256Digest> {
        self.inner.get(key).await
    }

    pub async fn insert(&self, key: Sha256Digest, payload: Sha256Digest) {
        self.inner.insert(key, payload).await;
    }

    /// Forgets a key whose record the retention sweeper deleted.
    pub async fn invalidate(&self, key: &Sha256Digest) {
        self.inner.invalidate(key).await;
    }

    /// Entries, once moka's pending bookkeeping has run (its count is otherwise approximate).
    pub async fn entry_count(&self) -> u64 {
        self.inner.run_pending_tasks().await;
        self.inner.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn holds_what_was_inserted_and_forgets_on_invalidate() {
        let cache = CommittedKeys::new(100, Duration::from_secs(60));
        let (a, b) = ([1u8; 32], [2u8; 32]);
        cache.insert(a, [9; 32]).await;
        assert_eq!(cache.get(&a).await, Some([9; 32]));
        assert_eq!(cache.get(&b).await, None);
        cache.invalidate(&a).await;
        assert_eq!(cache.get(&a).await, None);
    }

    #[test]
    fn digests_hash_to_their_first_eight_bytes() {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&42u64.to_le_bytes());
        assert_eq!(DigestHasher.hash_one(key), 42);
    }
}
