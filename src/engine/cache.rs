//! Keys known to be committed, so most duplicates are answered without the database.
//!
//! A key is written here by the writer whose transaction committed it (or that met its
//! committed row), *after* the commit and *before* the key is released to its shard: an entry
//! is proof of a commit, never of a delivery in progress, and the next delivery of the key,
//! which the shard holds back until then, finds it. A miss proves nothing (the key may have
//! been evicted, or committed by another instance); the database's unique key decides. The
//! cache is bounded by entry count and its TTL never exceeds the retention, so it cannot
//! vouch for a record the sweeper removed (the sweeper also invalidates what it deletes).

use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use moka::future::Cache;
use prometheus::{Histogram, IntCounter};

use super::outcome::{Outcome, Settled};
use crate::event::key::{EventKey, Sha256Digest};

#[derive(Clone)]
pub struct CommittedKeys {
    /// key digest -> what its settled record says (payload SHA-256, processed or rejected).
    inner: Cache<Sha256Digest, Settled, DigestHasher>,
    /// Counted here, by the one function that answers from the cache, so a hit is counted the
    /// same wherever it happens (on the request task or in the shard).
    hits: IntCounter,
    hit_seconds: Histogram,
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
    /// `hits` and `hit_seconds` count the duplicates answered by [`CommittedKeys::duplicate`].
    pub fn new(capacity: u64, ttl: Duration, hits: IntCounter, hit_seconds: Histogram) -> Self {
        Self {
            inner: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build_with_hasher(DigestHasher),
            hits,
            hit_seconds,
        }
    }

    /// `Some(duplicate)` when the key is known to be committed: the one place a delivery is
    /// answered from the cache. `None` proves nothing; the database decides.
    pub async fn duplicate(
        &self,
        key: &EventKey,
        digest: &Sha256Digest,
        payload_sha256: &Sha256Digest,
    ) -> Option<Outcome> {
        let started = Instant::now();
        let stored = self.inner.get(digest).await?;
        self.hit_seconds.observe(started.elapsed().as_secs_f64());
        self.hits.inc();
        Some(Outcome::duplicate(key, payload_sha256, Some(stored)))
    }

    pub async fn get(&self, key: &Sha256Digest) -> Option<Settled> {
        self.inner.get(key).await
    }

    pub async fn insert(&self, key: Sha256Digest, settled: Settled) {
        self.inner.insert(key, settled).await;
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

    fn processed(payload_sha256: Sha256Digest) -> Settled {
        Settled {
            payload_sha256,
            rejected: false,
        }
    }

    fn cache() -> CommittedKeys {
        let hits = IntCounter::new("hits", "hits").unwrap();
        let seconds = Histogram::with_opts(prometheus::HistogramOpts::new("s", "s")).unwrap();
        CommittedKeys::new(100, Duration::from_secs(60), hits, seconds)
    }

    #[tokio::test]
    async fn holds_what_was_inserted_and_forgets_on_invalidate() {
        let cache = cache();
        let (a, b) = ([1u8; 32], [2u8; 32]);
        cache.insert(a, processed([9; 32])).await;
        assert_eq!(cache.get(&a).await, Some(processed([9; 32])));
        assert_eq!(cache.get(&b).await, None);
        cache.invalidate(&a).await;
        assert_eq!(cache.get(&a).await, None);
    }

    #[tokio::test]
    async fn a_hit_is_a_counted_duplicate_noting_a_different_payload() {
        let cache = cache();
        let key = EventKey::new("s", "t".into(), "e".into()).unwrap();
        let digest = key.digest();
        assert_eq!(cache.duplicate(&key, &digest, &[1; 32]).await, None);
        cache.insert(digest, processed([1; 32])).await;
        assert_eq!(
            cache.duplicate(&key, &digest, &[1; 32]).await,
            Some(Outcome::Duplicate { mismatch: None })
        );
        assert_eq!(
            cache.duplicate(&key, &digest, &[2; 32]).await,
            Some(Outcome::Duplicate {
                mismatch: Some([1; 32])
            })
        );
        assert_eq!(cache.hits.get(), 2);
    }

    #[test]
    fn digests_hash_to_their_first_eight_bytes() {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&42u64.to_le_bytes());
        assert_eq!(DigestHasher.hash_one(key), 42);
    }
}
