//! The audit of failed authentications, coalesced: a wrong token proves no operator, and
//! traffic without a valid token must not make one database write per request. Each failure
//! adds to a pending count per (client address, credential); a task writes every pending count
//! once a minute, one row each (`auth_failed`, with the count), in one statement. The counts
//! are exact: an entry leaves the map only with the write that records it (a failed write
//! puts them back).
//!
//! Memory stays bounded: past [`MAX_PENDING`] addresses, the failures of yet another address
//! are counted together under no address.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use sea_orm::DatabaseConnection;

use crate::clock::Clock;
use crate::operator::audit;
use crate::task::TaskGuard;

/// How often pending failures are written: the audit's granularity.
const FLUSH_EVERY: Duration = Duration::from_secs(60);
/// Most (address, credential) pairs whose failures may wait for the next write.
const MAX_PENDING: usize = 10_000;

pub struct FailureLog {
    db: DatabaseConnection,
    clock: Clock,
    pending: DashMap<(Option<IpAddr>, &'static str), u64>,
}

impl FailureLog {
    pub fn new(db: DatabaseConnection, clock: Clock) -> Self {
        Self {
            db,
            clock,
            pending: DashMap::new(),
        }
    }

    /// Notes one failed authentication of `credential` from `client`.
    pub fn note(&self, client: IpAddr, credential: &'static str) {
        let key = if self.pending.len() < MAX_PENDING
            || self.pending.contains_key(&(Some(client), credential))
        {
            (Some(client), credential)
        } else {
            (None, credential)
        };
        *self.pending.entry(key).or_insert(0) += 1;
    }

    /// Writes every pending count, one row each, in one statement.
    pub async fn flush(&self) {
        let keys: Vec<_> = self.pending.iter().map(|e| *e.key()).collect();
        let taken: Vec<_> = keys
            .into_iter()
            .filter_map(|k| self.pending.remove(&k))
            .collect();
        if taken.is_empty() {
            return;
        }
        let now = self.clock.now();
        let rows = taken.iter().map(|((client, credential), count)| {
            audit::failures_row(*client, credential, *count, now)
        });
        if let Err(err) = audit::insert_failures(&self.db, rows).await {
            tracing::warn!(error = %err, "could not audit failed authentications; retrying");
            for (key, count) in taken {
                *self.pending.entry(key).or_insert(0) += count;
            }
        }
    }

    /// Starts the task that writes once a minute, and once more when stopped.
    pub fn spawn(self: Arc<Self>) -> TaskGuard {
        TaskGuard::every("failed authentications' audit", FLUSH_EVERY, move || {
            let this = self.clone();
            async move { this.flush().await }
        })
    }
}
