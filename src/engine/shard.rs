//! A shard: one ractor actor that owns a slice of the key space.
//!
//! An actor handles one message at a time, so every delivery of a given key (they all hash to
//! the same shard) is handled in arrival order, never two at once: within an instance, a key
//! is never in two transactions. That is what lets the cache be filled without a race: when a
//! shard looks a key up, no other task can be committing it.
//!
//! **Batches.** A `Process` message answers a cache hit at once; a miss is parked in the
//! shard's `pending` queue and the shard sends itself a `Flush`. Because the mailbox is FIFO,
//! by the time that `Flush` is handled every `Process` that arrived before it is parked too,
//! and the shard hands them (up to `max_batch`, one delivery per key) to the
//! [`committer`](super::committer) as one batch, and waits for the outcome. A writer commits
//! it together with the other shards' waiting batches. Under light load a batch is one event
//! and nothing waits; under load, batches form by themselves.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::cache::CommittedKeys;
use super::committer::Committer;
use super::key::{EventKey, Sha256Digest};
use super::{EngineError, Job, Outcome};
use crate::metrics::Metrics;

type Reply = RpcReplyPort<Result<Outcome, EngineError>>;

pub enum ShardMsg {
    Process(Job, Reply),
    /// Commit what is pending (sent by the shard to itself).
    Flush,
}

pub struct ShardActor;

/// What every shard shares: the writers, the cache and the counters.
pub struct ShardContext {
    pub committer: Committer,
    pub cache: CommittedKeys,
    pub metrics: Arc<Metrics>,
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
                let (jobs, replies): (Vec<Job>, Vec<Reply>) =
                    take_batch(state).await.into_iter().unzip();
                if !jobs.is_empty() {
                    let mut results = state.ctx.committer.commit(jobs).await.into_iter();
                    for reply in replies {
                        let result = results.next().unwrap_or_else(|| {
                            Err(EngineError::Internal("no outcome for the event".to_owned()))
                        });
                        state.answer(reply, result);
                    }
                }
                if !state.pending.is_empty() {
                    state.flush_scheduled = myself.cast(ShardMsg::Flush).is_ok();
                }
            }
        }
        Ok(())
    }
}

/// Up to `max_batch` pending events that are still unknown to the cache.
/// A second delivery of a key already in the batch stays pending: after the batch commits,
/// the cache answers it.
async fn take_batch(state: &mut ShardState) -> Vec<(Job, Reply)> {
    let mut batch: Vec<(Job, Reply)> = Vec::new();
    let mut repeats = Vec::new();
    let mut keys = HashSet::new();
    while batch.len() < state.ctx.committer.max_batch() {
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

pub(super) fn duplicate(job: &Job, stored_payload: Option<[u8; 32]>) -> Outcome {
    duplicate_of(&job.event.key, &job.event.payload_sha256, stored_payload)
}

/// A duplicate's outcome, noting (and logging) a payload that differs from the one committed.
pub(super) fn duplicate_of(
    key: &EventKey,
    payload_sha256: &Sha256Digest,
    stored_payload: Option<Sha256Digest>,
) -> Outcome {
    let mismatch = stored_payload.is_some_and(|p| p != *payload_sha256);
    if mismatch {
        tracing::warn!(
            source = %key.source,
            event_type = %key.event_type,
            event_id = %key.event_id,
            "duplicate delivery with a different payload; answered duplicate, payload ignored"
        );
    }
    Outcome::Duplicate {
        payload_mismatch: mismatch,
    }
}
