//! The recorder: delivered attempts are settled in batches, one statement per claim (lease
//! token) and status code, instead of one autocommit UPDATE (and one WAL flush) per delivery.
//! Failed attempts, which need their own backoff each, are settled by the attempt itself.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use sea_orm::DatabaseConnection;
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use super::deliveries;
use super::metrics::{Class, ForwardMetrics, Settled};
use super::Wake;
use crate::clock::Clock;

/// Delivered attempts recorded per round (one statement per claim and status among them).
const RECORD_BATCH: usize = 256;

/// A delivered attempt, waiting to be recorded with the others that finished meanwhile. Its
/// slot (`permit`) is held until then, so `concurrency` bounds attempts and records together.
pub struct Delivered {
    pub id: i64,
    pub token: [u8; 16],
    pub status: u16,
    pub source: String,
    pub destination: String,
    pub created_at: DateTime<Utc>,
    pub permit: OwnedSemaphorePermit,
}

/// The recorder: settles delivered attempts in batches, one statement per claim (token) and
/// status code, instead of one per delivery; then releases their slots.
pub async fn record_delivered(
    db: DatabaseConnection,
    clock: Clock,
    metrics: ForwardMetrics,
    leases: Arc<DashMap<i64, [u8; 16]>>,
    wake: Wake,
    mut rx: mpsc::Receiver<Delivered>,
) {
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    while rx.recv_many(&mut batch, RECORD_BATCH).await > 0 {
        let now = clock.now();
        let mut groups: HashMap<([u8; 16], u16), Vec<i64>> = HashMap::new();
        for d in &batch {
            groups.entry((d.token, d.status)).or_default().push(d.id);
        }
        for ((token, status), ids) in groups {
            match deliveries::settle_delivered(&db, &ids, &token, status, now).await {
                Ok(n) if n < ids.len() as u64 => tracing::warn!(
                    lost = ids.len() as u64 - n,
                    "forwarding: leases ran out before their deliveries were recorded; another \
                     instance has them (the app may see them twice, with the same key)"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(
                    error = %e,
                    "forwarding: cannot record deliveries; they are retried when their leases \
                     run out (the app sees them again, with the same key)"
                ),
            }
        }
        for d in batch.drain(..) {
            leases.remove(&d.id);
            metrics.attempt(
                &d.source,
                &d.destination,
                Settled::Delivered,
                Class::Success,
            );
            let latency = (now - d.created_at).to_std().unwrap_or_default();
            metrics
                .latency(&d.source, &d.destination)
                .observe(latency.as_secs_f64());
            drop(d.permit);
        }
        wake.notify();
    }
}
