//! Writers: the tasks that run the database transactions, shared by every shard.
//!
//! Shards decide *what* may be committed (one delivery per key at a time); writers decide *how
//! many* transactions run at once and what commits together. Keeping the two apart matters
//! because the database, not the shard count, is the bound: sixteen shards committing one
//! event each would be sixteen one-event transactions fighting for the same cores.
//!
//! **Batches form in one place: this queue.** It is a bounded tokio `mpsc`; a writer waits for
//! the first event, and `recv_many` hands it every event already waiting behind (up to
//! `max_batch`), which it commits as one group. Under light load a group is one event and
//! nothing waits; under load, groups grow by themselves, and `writers` bounds the concurrent
//! transactions whatever the shard count.
//!
//! Every event in the queue has a distinct key: a shard hands over a key's next delivery only
//! once the previous one is settled, and a key belongs to one shard. So a key is never in two
//! transactions of this instance at once, and a group never holds a key twice.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, Mutex};

use super::cache::CommittedKeys;
use super::outcome::{EngineError, Outcome, Settled};
use super::store::{BatchFailure, Committed, Store, Verdict};
use super::Job;
use crate::metrics::Metrics;
use crate::telemetry::traces::Traces;

/// What a writer needs. Deliberately not the shards' context: writers must not hold the
/// sender of their own queue, or the queue would never close and they would never stop.
pub struct WriterContext {
    pub store: Store,
    pub cache: CommittedKeys,
    pub metrics: Arc<Metrics>,
    /// Most events in one transaction; 1 turns group commit off.
    pub max_batch: usize,
    /// Most body bytes in one transaction: a group's multi-row INSERTs (inbox, outbox) carry
    /// every body of the group in one statement, and MariaDB refuses a statement over its
    /// `max_allowed_packet`. A group over it is committed in parts, each within the bound (an
    /// event alone is within it: its source's body limit was lowered to fit at launch).
    pub max_batch_bytes: Option<u64>,
    /// Each transaction's span, when one of its events is traced.
    pub traces: Option<Arc<Traces>>,
}

/// Called once with the event's outcome, after the cache knows of a commit.
pub type Done = Box<dyn FnOnce(Result<Outcome, EngineError>) + Send>;

/// An event handed to the writers, and who to tell when it is settled.
pub struct Pending {
    pub job: Job,
    pub done: Done,
}

/// Reads the writers' queue depth; the writers still stop when the shards' handles go.
pub struct WritersWatch(mpsc::WeakSender<Pending>);

impl WritersWatch {
    pub fn waiting(&self) -> usize {
        self.0
            .upgrade()
            .map_or(0, |queue| Writers { queue }.waiting())
    }
}

/// The shards' handle on the writers. The writers stop once every handle is dropped.
#[derive(Clone)]
pub struct Writers {
    queue: mpsc::Sender<Pending>,
}

impl Writers {
    /// Spawns `writers` writer tasks on the current runtime. `capacity` bounds the queue; the
    /// engine sizes it to every delivery its shards may hold, so it is never what refuses one.
    pub fn start(ctx: WriterContext, writers: usize, capacity: usize) -> Self {
        let (queue, rx) = mpsc::channel(capacity.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let ctx = Arc::new(ctx);
        for _ in 0..writers.max(1) {
            tokio::spawn(writer(ctx.clone(), rx.clone()));
        }
        Self { queue }
    }

    /// Events queued for the writers and not yet taken by one.
    pub fn waiting(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// A handle that reads [`Writers::waiting`] without keeping the queue open.
    pub fn watch(&self) -> WritersWatch {
        WritersWatch(self.queue.downgrade())
    }

    /// Queues the event for a writer without waiting: a shard goes on with its other keys
    /// while this one is committed. A refusal is reported through `done` at once.
    pub fn submit(&self, pending: Pending) {
        if let Err(err) = self.queue.try_send(pending) {
            let (pending, error) = match err {
                TrySendError::Full(p) => (p, EngineError::QueueFull),
                TrySendError::Closed(p) => (p, EngineError::ShuttingDown),
            };
            (pending.done)(Err(error));
        }
    }
}

/// A writer: waits for the oldest event, takes every one already waiting behind it (up to
/// `max_batch`), and commits them together.
async fn writer(ctx: Arc<WriterContext>, rx: Arc<Mutex<mpsc::Receiver<Pending>>>) {
    let mut group = Vec::with_capacity(ctx.max_batch);
    loop {
        {
            // One writer at a time waits on the queue; the others are committing, or waiting
            // for this lock to take the next group.
            let mut rx = rx.lock().await;
            if rx.recv_many(&mut group, ctx.max_batch).await == 0 {
                return; // every sender is gone
            }
        }
        commit_group(&ctx, std::mem::take(&mut group)).await;
    }
}

async fn commit_group(ctx: &WriterContext, mut group: Vec<Pending>) {
    // Sorted by digest, two instances' groups lock their dedupe rows in one order and cannot
    // deadlock on them.
    group.sort_by_key(|p| p.job.event.digest);
    let jobs: Vec<&Job> = group.iter().map(|p| &p.job).collect();
    let mut results = Vec::with_capacity(jobs.len());
    for part in super::group::by_bytes(&jobs, ctx.max_batch_bytes) {
        // Handlers' panics are caught in the store; this catches anything else, so one event
        // can never stop the writer that serves every shard.
        let outcomes = AssertUnwindSafe(process_batch(ctx, part))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                part.iter()
                    .map(|_| Err(EngineError::Internal("a writer panicked".into())))
                    .collect()
            });
        results.extend(outcomes);
    }
    let mut results = results.into_iter();
    for pending in group {
        let result = results
            .next()
            .unwrap_or_else(|| Err(EngineError::Internal("no outcome for the event".into())));
        (pending.done)(result);
    }
}

/// [`commit`] within its span, when one of the events is traced.
async fn process_batch(ctx: &WriterContext, jobs: &[&Job]) -> Vec<Result<Outcome, EngineError>> {
    let span = ctx
        .traces
        .as_ref()
        .and_then(|traces| traces.transaction(jobs.iter().filter_map(|job| job.trace.as_ref())));
    let mut retries = 0;
    let (outcome, results) = commit(ctx, jobs, &mut retries).await;
    if let Some(span) = span {
        span.finish(jobs.len(), outcome, retries);
    }
    results
}

/// The group in one transaction when every event is new and every handler succeeds; else
/// each event in its own transaction, which isolates duplicates, failures and retries. Also
/// says which it was (the transaction span's outcome) and counts reruns into `retries`.
async fn commit(
    ctx: &WriterContext,
    jobs: &[&Job],
    retries: &mut u32,
) -> (&'static str, Vec<Result<Outcome, EngineError>>) {
    ctx.metrics.cache_misses.inc_by(jobs.len() as u64);
    if jobs.len() > 1 {
        let events: Vec<_> = jobs
            .iter()
            .map(|job| (job.event.as_ref(), job.handlers.as_ref()))
            .collect();
        match ctx.store.commit_batch(&events).await {
            Ok(check) => {
                ctx.metrics.batch_size.observe(jobs.len() as f64);
                for job in jobs {
                    ctx.metrics.check_miss.observe(check.as_secs_f64());
                    ctx.cache
                        .insert(job.event.digest, settled(&job.event.payload_sha256, false))
                        .await;
                }
                let committed = jobs.iter().map(|_| Ok(Outcome::Processed)).collect();
                return ("committed", committed);
            }
            Err(BatchFailure::Unavailable(detail)) => {
                let refused = jobs
                    .iter()
                    .map(|_| Err(EngineError::Unavailable(detail.clone())))
                    .collect();
                return ("unavailable", refused);
            }
            Err(BatchFailure::Redo) => ctx.metrics.batch_fallbacks.inc(),
        }
    }
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs {
        results.push(process_one(ctx, job, retries).await);
    }
    let outcome = match &results[..] {
        [Ok(Outcome::Processed)] if jobs.len() == 1 => "committed",
        [Ok(_)] => "settled",
        [Err(_)] => "failed",
        _ => "per_event",
    };
    (outcome, results)
}

/// One event in its own transaction, with per-event duplicate detection, retries and audit.
async fn process_one(
    ctx: &WriterContext,
    job: &Job,
    retries: &mut u32,
) -> Result<Outcome, EngineError> {
    let event = &job.event;
    let Verdict {
        committed,
        check,
        retries: reruns,
    } = ctx.store.process(event, &job.handlers).await?;
    *retries += reruns;
    ctx.metrics.check_miss.observe(check.as_secs_f64());
    match committed {
        Committed::Processed => {
            let processed = settled(&event.payload_sha256, false);
            ctx.cache.insert(event.digest, processed).await;
            Ok(Outcome::Processed)
        }
        Committed::Rejected => {
            let rejected = settled(&event.payload_sha256, true);
            ctx.cache.insert(event.digest, rejected).await;
            Ok(Outcome::Rejected { replayed: false })
        }
        Committed::Duplicate { stored } => {
            match stored {
                Some(stored) => ctx.cache.insert(event.digest, stored).await,
                // No record under this key: the unique key that refused it was the signed one.
                None if event.signed_key.is_some() => tracing::warn!(
                    source = %event.key.source,
                    event_type = %event.key.event_type,
                    event_id = %event.key.event_id,
                    "signed bytes already applied under another id (a replay?): answered \
                     duplicate, nothing ran"
                ),
                None => {}
            }
            Ok(Outcome::duplicate(
                &event.key,
                &event.payload_sha256,
                stored,
            ))
        }
    }
}

fn settled(payload_sha256: &crate::event::key::Sha256Digest, rejected: bool) -> Settled {
    Settled {
        payload_sha256: *payload_sha256,
        rejected,
    }
}

#[cfg(test)]
mod tests;
