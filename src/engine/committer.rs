//! Writers: the tasks that run the database transactions, shared by every shard.
//!
//! Shards decide *what* may commit together (events of distinct keys, each key in one batch
//! at a time); writers decide *how many* transactions run at once. Keeping the two apart
//! matters because the database, not the shard count, is the bound: sixteen shards holding
//! one event each would be sixteen one-event transactions fighting for the same cores. A
//! writer instead takes every shard batch waiting in the queue (up to `max_batch` events) and
//! commits them as one group, so the number of concurrent transactions is `writers` and
//! batches grow with load, whatever the shard count.
//!
//! Per-key order still holds: a shard hands over one batch and waits for its outcome before
//! it takes the next, so a key is never in two writers' transactions at once.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use tokio::sync::{mpsc, oneshot, Mutex};

use super::cache::CommittedKeys;
use super::shard::duplicate;
use super::store::{Committed, Settled, Store};
use super::{EngineError, Job, Outcome};
use crate::metrics::Metrics;

pub type Results = Vec<Result<Outcome, EngineError>>;

/// What a writer needs. Deliberately not the shards' context: writers must not hold the
/// sender of their own queue, or the queue would never close and they would never stop.
pub struct WriterContext {
    pub store: Store,
    pub cache: CommittedKeys,
    pub metrics: Arc<Metrics>,
    /// Most events in one transaction; 1 turns group commit off.
    pub max_batch: usize,
}

/// One shard's batch: distinct keys, each unknown to the cache when the shard looked.
struct Submission {
    jobs: Vec<Job>,
    reply: oneshot::Sender<Results>,
}

/// The shards' handle on the writers. The writers stop once every handle is dropped.
#[derive(Clone)]
pub struct Committer {
    queue: mpsc::Sender<Submission>,
    ctx: Arc<WriterContext>,
}

impl Committer {
    /// Spawns `writers` writer tasks on the current runtime. `shards` bounds the queue: each
    /// shard has at most one submission outstanding.
    pub fn start(ctx: WriterContext, writers: usize, shards: usize) -> Self {
        let (queue, rx) = mpsc::channel(shards.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let ctx = Arc::new(ctx);
        for _ in 0..writers.max(1) {
            tokio::spawn(writer(ctx.clone(), rx.clone()));
        }
        Self { queue, ctx }
    }

    /// Most events one transaction takes, and so the most a shard should hand over at once.
    pub fn max_batch(&self) -> usize {
        self.ctx.max_batch
    }

    /// Commits a shard's batch; one result per job, in order.
    pub async fn commit(&self, jobs: Vec<Job>) -> Results {
        let n = jobs.len();
        let (reply, answer) = oneshot::channel();
        if self.queue.send(Submission { jobs, reply }).await.is_err() {
            return refuse(n, || EngineError::ShuttingDown);
        }
        // A writer replies to every submission it takes; a dropped reply means the writer
        // task itself died, which the panic guard below is there to prevent.
        answer
            .await
            .unwrap_or_else(|_| refuse(n, || EngineError::Internal("a writer stopped".into())))
    }
}

fn refuse(n: usize, err: impl Fn() -> EngineError) -> Results {
    (0..n).map(|_| Err(err())).collect()
}

/// A writer: takes the oldest submission, then every one already waiting behind it (up to
/// `max_batch` events), and commits them together.
async fn writer(ctx: Arc<WriterContext>, rx: Arc<Mutex<mpsc::Receiver<Submission>>>) {
    // A submission that would have overflowed the previous group starts the next one.
    let mut carry: Option<Submission> = None;
    loop {
        let mut group = Vec::new();
        match carry.take() {
            // Never wait for the queue while holding a carried submission: the writer that
            // holds the queue may wait on it for as long as no new event arrives, and the
            // carried events' clients are waiting for an answer meanwhile.
            Some(first) => {
                group.push(first);
                if let Ok(mut rx) = rx.try_lock() {
                    carry = gather(&mut rx, &mut group, ctx.max_batch);
                }
            }
            None => {
                // One writer at a time waits on the queue; the others are committing, or
                // waiting for this lock to take the next group.
                let mut rx = rx.lock().await;
                let Some(first) = rx.recv().await else {
                    return;
                };
                group.push(first);
                carry = gather(&mut rx, &mut group, ctx.max_batch);
            }
        }
        commit_group(&ctx, group).await;
    }
}

/// Adds the submissions already queued to `group` while they fit in `max_batch` events;
/// returns the first one that did not fit.
fn gather(
    rx: &mut mpsc::Receiver<Submission>,
    group: &mut Vec<Submission>,
    max_batch: usize,
) -> Option<Submission> {
    let mut size: usize = group.iter().map(|s| s.jobs.len()).sum();
    while size < max_batch {
        let Ok(next) = rx.try_recv() else { break };
        if size + next.jobs.len() > max_batch {
            return Some(next);
        }
        size += next.jobs.len();
        group.push(next);
    }
    None
}

async fn commit_group(ctx: &WriterContext, group: Vec<Submission>) {
    // Every batch in the queue comes from a different shard, so keys are distinct across
    // them; sorted by digest, two instances' groups lock their dedupe rows in one order and
    // cannot deadlock on them.
    let mut order: Vec<(usize, usize)> = group
        .iter()
        .enumerate()
        .flat_map(|(s, sub)| (0..sub.jobs.len()).map(move |j| (s, j)))
        .collect();
    order.sort_by_key(|&(s, j)| group[s].jobs[j].event.digest);
    let jobs: Vec<&Job> = order.iter().map(|&(s, j)| &group[s].jobs[j]).collect();
    // Handlers' panics are caught in the store; this catches anything else, so one event can
    // never stop the writer that serves every shard.
    let results = AssertUnwindSafe(process_batch(ctx, &jobs))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| {
            refuse(jobs.len(), || {
                EngineError::Internal("a writer panicked".into())
            })
        });
    let mut per_submission: Vec<Vec<Option<Result<Outcome, EngineError>>>> = group
        .iter()
        .map(|sub| (0..sub.jobs.len()).map(|_| None).collect())
        .collect();
    for (&(s, j), result) in order.iter().zip(results) {
        per_submission[s][j] = Some(result);
    }
    for (sub, results) in group.into_iter().zip(per_submission) {
        let results = results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(EngineError::Internal("no outcome".into()))))
            .collect();
        // The shard may be gone (stopped past its grace); the outcome stands regardless.
        let _ = sub.reply.send(results);
    }
}

/// The group in one transaction when every event is new and every handler succeeds; else
/// each event in its own transaction, which isolates duplicates, failures and retries.
async fn process_batch(ctx: &WriterContext, jobs: &[&Job]) -> Results {
    ctx.metrics.cache_misses.inc_by(jobs.len() as u64);
    if jobs.len() > 1 {
        let events: Vec<_> = jobs
            .iter()
            .map(|job| (job.event.as_ref(), job.handlers.as_ref()))
            .collect();
        if let Some(check) = ctx.store.commit_batch(&events).await {
            ctx.metrics.batch_size.observe(jobs.len() as f64);
            for job in jobs {
                ctx.metrics.check_miss.observe(check.as_secs_f64());
                ctx.cache
                    .insert(job.event.digest, job.event.payload_sha256)
                    .await;
            }
            return jobs.iter().map(|_| Ok(Outcome::Processed)).collect();
        }
        ctx.metrics.batch_fallbacks.inc();
    }
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs {
        results.push(process_one(ctx, job).await);
    }
    results
}

/// One event in its own transaction, with per-event duplicate detection, retries and audit.
async fn process_one(ctx: &WriterContext, job: &Job) -> Result<Outcome, EngineError> {
    let event = &job.event;
    let Settled { committed, check } = ctx.store.process(event, &job.handlers).await?;
    ctx.metrics.check_miss.observe(check.as_secs_f64());
    match committed {
        Committed::Processed => {
            ctx.cache.insert(event.digest, event.payload_sha256).await;
            Ok(Outcome::Processed)
        }
        Committed::Duplicate { stored_payload } => {
            if let Some(stored) = stored_payload {
                ctx.cache.insert(event.digest, stored).await;
            }
            Ok(duplicate(job, stored_payload))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::Clock;
    use crate::handlers::{Handler, Payments};
    use crate::Event;

    async fn committer(max_batch: usize, writers: usize) -> Committer {
        let settings = crate::config::Settings::default();
        let db = crate::db::connect(crate::config::IN_MEMORY_DATABASE_URL, &settings)
            .await
            .expect("in-memory database");
        crate::db::migrate(&db).await.expect("migrations");
        let metrics = Arc::new(Metrics::new(["test".to_owned()]));
        let ctx = WriterContext {
            store: Store::new(db, 3, Clock::system(), metrics.clone()),
            cache: CommittedKeys::new(1000, Duration::from_secs(3600)),
            metrics,
            max_batch,
        };
        Committer::start(ctx, writers, 4)
    }

    fn jobs(ids: &[&str]) -> Vec<Job> {
        let handlers: Arc<[Arc<dyn Handler>]> = Arc::new([Arc::new(Payments) as Arc<dyn Handler>]);
        ids.iter()
            .map(|id| Job {
                event: Arc::new(Event::payment(id, "o1", 1, "eur")),
                handlers: handlers.clone(),
            })
            .collect()
    }

    /// Two shards' batches that do not fit in one group: the second is carried over and must
    /// be committed even though nothing else ever arrives (the other writer sits on the empty
    /// queue meanwhile).
    #[tokio::test]
    async fn a_batch_that_does_not_fit_is_committed_in_the_next_group() {
        let committer = committer(2, 2).await;
        let both = futures::future::join(
            committer.commit(jobs(&["a1"])),
            committer.commit(jobs(&["b1", "b2"])),
        );
        let (a, b) = tokio::time::timeout(Duration::from_secs(10), both)
            .await
            .expect("every batch answered");
        assert!(a
            .iter()
            .chain(&b)
            .all(|r| matches!(r, Ok(Outcome::Processed))));
    }

    /// A batch with a key committed before falls back to one transaction per event: the
    /// duplicate is answered as such and the new event still commits.
    #[tokio::test]
    async fn a_duplicate_in_a_group_does_not_fail_its_neighbours() {
        let committer = committer(64, 1).await;
        let first = committer.commit(jobs(&["x"])).await;
        assert!(matches!(first[..], [Ok(Outcome::Processed)]));
        let second = committer.commit(jobs(&["y", "x"])).await;
        assert!(matches!(
            second[..],
            [Ok(Outcome::Processed), Ok(Outcome::Duplicate { .. })]
        ));
    }
}
