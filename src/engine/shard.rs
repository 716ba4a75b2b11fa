//! A shard: one ractor actor that owns a slice of the key space.
//!
//! An actor handles one message at a time, so every delivery of a given key (they all hash to
//! the same shard) is handled in arrival order, never two at once: within an instance, a key
//! is never in two transactions. That is what lets the cache be filled without a race: when a
//! shard looks a key up, no other task can be committing it.

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

pub enum ShardMsg {
    Process(Job, RpcReplyPort<Result<Outcome, EngineError>>),
}

pub struct ShardActor;

/// What every shard shares: the database, the cache and the counters.
pub struct ShardContext {
    pub store: Store,
    pub cache: CommittedKeys,
    pub metrics: Arc<Metrics>,
}

pub struct ShardState {
    pub ctx: Arc<ShardContext>,
    /// Messages sent to this shard and not yet finished. The router increments it before
    /// sending; the shard decrements it when done, even when the caller has gone away, so
    /// the bound it enforces is the real queue length.
    pub depth: Arc<AtomicUsize>,
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
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut ShardState,
    ) -> Result<(), ActorProcessingErr> {
        let ShardMsg::Process(job, reply) = msg;
        // Handlers' panics are caught in the store; this catches anything else, so an error in
        // one event can never stop the actor that serves thousands of other keys.
        let result = AssertUnwindSafe(process(&state.ctx, &job))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Err(EngineError::Internal("the shard panicked".to_owned())));
        state.depth.fetch_sub(1, Ordering::AcqRel);
        // The caller may have gone (the client hung up). The outcome stands: a committed event
        // is answered `duplicate` when the provider retries.
        let _ = reply.send(result);
        Ok(())
    }
}

async fn process(ctx: &ShardContext, job: &Job) -> Result<Outcome, EngineError> {
    let event = &job.event;
    let started = Instant::now();
    if let Some(stored) = ctx.cache.get(&event.digest).await {
        ctx.metrics
            .check_seconds
            .with_label_values(&["hit"])
            .observe(started.elapsed().as_secs_f64());
        ctx.metrics.cache_hits.inc();
        return Ok(duplicate(job, Some(stored)));
    }
    let lookup = started.elapsed();
    ctx.metrics.cache_misses.inc();
    let Settled { committed, check } = ctx.store.process(event, &job.handlers).await?;
    ctx.metrics
        .check_seconds
        .with_label_values(&["miss"])
        .observe((lookup + check).as_secs_f64());
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

fn duplicate(job: &Job, stored_payload: Option<[u8; 32]>) -> Outcome {
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
