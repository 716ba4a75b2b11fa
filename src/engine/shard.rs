//! A shard: one ractor actor that owns a slice of the key space.
//!
//! An actor handles one message at a time, so every delivery of a given key (they all hash to
//! the same shard) is handled in arrival order, never two at once: within an instance, a key
//! is never in two transactions. That is what lets the cache be filled without a race: when a
//! shard looks a key up, no other task can be committing it.
//!
//! **Group commit.** A `Process` message answers a cache hit at once; a miss is parked in the
//! shard's `pending` queue and the shard sends itself a `Flush`. Because the mailbox is FIFO,
//! by the time that `Flush` is handled every `Process` that arrived before it is parked too,
//! and the shard commits them together (up to `max_batch`) in one transaction. Under light
//! load a batch is one event and nothing waits; under load, batches form by themselves.

use std::collections::{HashSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::cache::CommittedKeys;
use super::store::{Committed, Settled, Store};
use super::{EngineError, Job, Outcome};
use crate::metrics::Metrics;

type Reply = RpcReplyPort<Result<Outcome, EngineError>>;

pub enum ShardMsg {
    Process(Job, Reply),
    /// Commit what is pending (sent by the shard to itself).
    Flush,
}

pub struct ShardActor;

/// What every shard shares: the database, the cache and the counters.
pub struct ShardContext {
    pub store: Store,
    pub cache: CommittedKeys,
    pub metrics: Arc<Metrics>,
    /// Largest group commit; 1 turns batching off.
    pub max_batch: usize,
}

pub struct ShardState {
    pub ctx: Arc<ShardContext>,
    /// Messages sent to this shard and not yet answered. The router increments it before
    /// sending; the shard decrements it as it answers, even when the caller has gone away,
    /// so the bound it enforces is the real queue length.
    pub depth: Arc<AtomicUsize>,
    pub pending: VecDeque<(Job, Reply)>,
    pub flush_scheduled: bool,
}

impl ShardState {
    pub fn new(ctx: Arc<ShardContext>, depth: Arc<AtomicUsize>) -> Self {
        Self {
            ctx,
            depth,
            pending: VecDeque::new(),
            flush_scheduled: false,
        }
    }

    fn answer(&self, reply: Reply, result: Result<Outcome, EngineError>) {
        self.depth.fetch_sub(1, Ordering::AcqRel);
        // The caller may have gone (the client hung up). The outcome stands: a committed
        // event is answered `duplicate` when the provider retries.
        let _ = reply.send(result);
    }
}

impl Actor for ShardActor {
    type Msg = ShardMsg;
    type State = ShardState;
    type Arguments = ShardState;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: ShardState,
    ) -> Result<ShardState, ActorProcessingErr> {
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut ShardState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ShardMsg::Process(job, reply) => {
                if let Some(stored) = cache_hit(&state.ctx, &job).await {
                    state.answer(reply, Ok(duplicate(&job, Some(stored))));
                    return Ok(());
                }
                state.pending.push_back((job, reply));
                if !state.flush_scheduled {
                    state.flush_scheduled = myself.cast(ShardMsg::Flush).is_ok();
                    if !state.flush_scheduled {
                        // Stopping: nothing will flush; answer rather than drop.
                        while let Some((_, reply)) = state.pending.pop_front() {
                            state.answer(reply, Err(EngineError::ShuttingDown));
                        }
                    }
                }
            }
            ShardMsg::Flush => {
                state.flush_scheduled = false;
                let batch = take_batch(state).await;
                let jobs: Vec<&Job> = batch.iter().map(|(job, _)| job).collect();
                // Handlers' panics are caught in the store; this catches anything else, so
                // an error in one event can never stop the actor that serves other keys.
                let results = AssertUnwindSafe(process_batch(&state.ctx, &jobs))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| {
                        jobs.iter()
                            .map(|_| Err(EngineError::Internal("the shard panicked".to_owned())))
                            .collect()
                    });
                for ((_, reply), result) in batch.into_iter().zip(results) {
                    state.answer(reply, result);
                }
                if !state.pending.is_empty() {
                    state.flush_scheduled = myself.cast(ShardMsg::Flush).is_ok();
                }
            }
        }
        Ok(())
    }
}

/// Up to `max_batch` pending events that are still unknown to the cache, sorted by digest.
/// A second delivery of a key already in the batch stays pending: after the batch commits,
/// the cache answers it.
async fn take_batch(state: &mut ShardState) -> Vec<(Job, Reply)> {
    let mut batch: Vec<(Job, Reply)> = Vec::new();
    let mut repeats = Vec::new();
    let mut keys = HashSet::new();
    while batch.len() < state.ctx.max_batch {
        let Some((job, reply)) = state.pending.pop_front() else {
            break;
        };
        if let Some(stored) = cache_hit(&state.ctx, &job).await {
            state.answer(reply, Ok(duplicate(&job, Some(stored))));
        } else if keys.insert(job.event.digest) {
            batch.push((job, reply));
        } else {
            repeats.push((job, reply));
        }
    }
    for repeat in repeats.into_iter().rev() {
        state.pending.push_front(repeat);
    }
    batch.sort_by_key(|(job, _)| job.event.digest);
    batch
}

async fn cache_hit(ctx: &ShardContext, job: &Job) -> Option<[u8; 32]> {
    let started = Instant::now();
    let stored = ctx.cache.get(&job.event.digest).await?;
    ctx.metrics
        .check_seconds
        .with_label_values(&["hit"])
        .observe(started.elapsed().as_secs_f64());
    ctx.metrics.cache_hits.inc();
    Some(stored)
}

async fn process_batch(ctx: &ShardContext, jobs: &[&Job]) -> Vec<Result<Outcome, EngineError>> {
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
async fn process_one(ctx: &ShardContext, job: &Job) -> Result<Outcome, EngineError> {
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

pub(super) fn duplicate(job: &Job, stored_payload: Option<[u8; 32]>) -> Outcome {
    let event = &job.event;
    let mismatch = stored_payload.is_some_and(|p| p != event.payload_sha256);
    if mismatch {
        tracing::warn!(
            source = %event.key.source,
            event_type = %event.key.event_type,
            event_id = %event.key.event_id,
            "duplicate delivery with a different payload; answered duplicate, payload ignored"
        );
    }
    Outcome::Duplicate {
        payload_mismatch: mismatch,
    }
}
