//! Keys known to be committed, so most duplicates are answered without the database.
//!
//! Only the shard that owns a key writes it here, and only *after* the key's transaction
//! committed: an entry is proof of a commit, never of a delivery in progress. A miss proves
//! nothing; the database's unique key decides. The cache is bounded by entry count and its
//! TTL never exceeds the retention, so it cannot vouch for a record the sweeper removed.

use std::time::Duration;

use moka::future::Cache;

use super::key::Sha256Digest;

#[derive(Clone)]
pub struct CommittedKeys {
    /// key digest -> payload SHA-256 of the delivery that committed.
    inner: Cache<Sha256Digest, Sha256Digest>,
}

impl CommittedKeys {
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        Self {
            inner: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
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
