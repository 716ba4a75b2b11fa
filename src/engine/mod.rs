//! The exactly-once machinery, in the order an event meets it:
//!
//! 1. [`key`]: the event's identity and its digest.
//! 2. [`Engine::submit`] (this file): routes the event to the shard that owns its key, refusing
//!    with `QueueFull` when that shard's queue is at its bound.
//! 3. [`shard`]: the actor that handles its keys one at a time; checks [`cache`] first.
//! 4. [`store`]: the database transaction (dedupe insert + handlers + commit), with
//!    [`db_error`] deciding what a database error means.
//!
//! The database's unique key on the dedupe record is the guarantee. The shards and the cache
//! only make it fast: remove them and the answers stay right, only slower.

pub mod cache;
pub mod db_error;
mod event;
pub mod key;
mod shard;
pub mod store;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorRef};
use sea_orm::DatabaseConnection;

pub use event::Event;

use crate::handlers::Handler;
use cache::CommittedKeys;
use shard::{ShardActor, ShardContext, ShardMsg, ShardState};
use store::Store;

/// An event plus the handlers its source runs.
pub struct Job {
    pub event: Arc<Event>,
    pub handlers: Arc<[Arc<dyn Handler>]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Processed,
    Duplicate { payload_mismatch: bool },
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the shard's queue is full")]
    QueueFull,
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("a handler failed: {0}")]
    HandlerFailed(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Counters read by tests and, later, by the metrics endpoint.
#[derive(Debug, Default)]
pub struct Stats {
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub payload_mismatches: AtomicU64,
}

pub struct EngineConfig {
    pub shards: usize,
    pub shard_queue: usize,
    pub cache_capacity: u64,
    pub cache_ttl: Duration,
    pub max_retries: u32,
}

struct Shard {
    actor: ActorRef<ShardMsg>,
    depth: Arc<AtomicUsize>,
}

pub struct Engine {
    shards: Vec<Shard>,
    shard_queue: usize,
    ctx: Arc<ShardContext>,
}

impl Engine {
    pub async fn start(config: EngineConfig, db: DatabaseConnection) -> Result<Self, EngineError> {
        let ctx = Arc::new(ShardContext {
            store: Store::new(db, config.max_retries),
            cache: CommittedKeys::new(config.cache_capacity, config.cache_ttl),
            stats: Arc::new(Stats::default()),
        });
        let mut shards = Vec::with_capacity(config.shards);
        for _ in 0..config.shards {
            let depth = Arc::new(AtomicUsize::new(0));
            let state = ShardState {
                ctx: ctx.clone(),
                depth: depth.clone(),
            };
            let (actor, _join) = Actor::spawn(None, ShardActor, state)
                .await
                .map_err(|e| EngineError::Internal(format!("cannot start a shard: {e}")))?;
            shards.push(Shard { actor, depth });
        }
        Ok(Self {
            shards,
            shard_queue: config.shard_queue,
            ctx,
        })
    }

    /// Hands the event to the shard that owns its key and waits for the outcome.
    pub async fn submit(&self, job: Job) -> Result<Outcome, EngineError> {
        let shard = &self.shards[key::shard_of(&job.event.digest, self.shards.len())];
        if shard.depth.fetch_add(1, Ordering::AcqRel) >= self.shard_queue {
            shard.depth.fetch_sub(1, Ordering::AcqRel);
            return Err(EngineError::QueueFull);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        if shard.actor.cast(ShardMsg::Process(job, tx.into())).is_err() {
            shard.depth.fetch_sub(1, Ordering::AcqRel);
            return Err(EngineError::Internal("the shard is not running".to_owned()));
        }
        rx.await
            .map_err(|_| EngineError::Internal("the shard dropped the event".to_owned()))?
    }

    pub fn stats(&self) -> &Stats {
        &self.ctx.stats
    }

    pub fn cache_entries(&self) -> u64 {
        self.ctx.cache.entry_count()
    }

    pub fn store(&self) -> &Store {
        &self.ctx.store
    }

    /// Stops every shard after the messages already queued.
    pub fn stop(&self) {
        for shard in &self.shards {
            shard.actor.stop(None);
        }
    }
}
