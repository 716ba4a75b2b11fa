//! The exactly-once machinery, in the order an event meets it:
//!
//! 1. [`key`]: the event's identity and its digest.
//! 2. [`Engine::submit`] (this file): routes the event to the shard that owns its key, refusing
//!    with `QueueFull` when that shard's queue is at its bound.
//! 3. [`shard`]: the actor that handles its keys one at a time; checks [`cache`] first.
//! 4. [`committer`]: the writers, which commit the shards' batches, several shards' batches
//!    in one transaction under load.
//! 5. [`store`]: the database transaction (dedupe insert + handlers + commit), with
//!    [`db_error`] deciding what a database error means.
//!
//! The database's unique key on the dedupe record is the guarantee. The shards and the cache
//! only make it fast: remove them and the answers stay right, only slower.

pub mod cache;
mod committer;
pub mod db_error;
mod event;
pub mod key;
mod shard;
pub mod store;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorRef};
use sea_orm::DatabaseConnection;

pub use event::Event;

use crate::clock::Clock;
use crate::handlers::Handler;
use crate::metrics::Metrics;
use cache::CommittedKeys;
use committer::{Committer, WriterContext};
use key::{EventKey, Sha256Digest};
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
    /// The transaction kept losing deadlock or serialization races; retry later.
    #[error("the event's transaction kept conflicting: {0}")]
    Conflict(String),
    /// The instance is shutting down and its shards have stopped.
    #[error("shutting down")]
    ShuttingDown,
    #[error("a handler failed: {0}")]
    HandlerFailed(String),
    #[error("internal error: {0}")]
    Internal(String),
}

pub struct EngineConfig {
    pub shards: usize,
    pub shard_queue: usize,
    pub cache_capacity: u64,
    pub cache_ttl: Duration,
    pub max_retries: u32,
    pub max_batch: usize,
    /// Transactions committing new events at once.
    pub writers: usize,
}

struct Shard {
    actor: ActorRef<ShardMsg>,
    depth: Arc<AtomicUsize>,
}

pub struct Engine {
    shards: Vec<Shard>,
    shard_queue: usize,
    ctx: Arc<ShardContext>,
    /// Whether the last database answer was an outage, so an outage is logged once when it
    /// starts and once when it ends, not once per request.
    db_down: AtomicBool,
}

impl Engine {
    pub async fn start(
        config: EngineConfig,
        db: DatabaseConnection,
        clock: Clock,
        metrics: Arc<Metrics>,
    ) -> Result<Self, EngineError> {
        let cache = CommittedKeys::new(config.cache_capacity, config.cache_ttl);
        let max_batch = config.max_batch.max(1);
        let committer = Committer::start(
            WriterContext {
                store: Store::new(db, config.max_retries, clock, metrics.clone()),
                cache: cache.clone(),
                metrics: metrics.clone(),
                max_batch,
            },
            config.writers,
            config.shards,
        );
        let ctx = Arc::new(ShardContext {
            committer,
            cache,
            metrics,
        });
        ctx.metrics.db_up.set(1);
        let mut shards = Vec::with_capacity(config.shards);
        for _ in 0..config.shards {
            let depth = Arc::new(AtomicUsize::new(0));
            let state = ShardState::new(ctx.clone(), depth.clone());
            let (actor, _join) = Actor::spawn(None, ShardActor, state)
                .await
                .map_err(|e| EngineError::Internal(format!("cannot start a shard: {e}")))?;
            shards.push(Shard { actor, depth });
        }
        Ok(Self {
            shards,
            shard_queue: config.shard_queue,
            ctx,
            db_down: AtomicBool::new(false),
        })
    }

    /// Hands the event to the shard that owns its key and waits for the outcome. (The shard
    /// checks the cache too, so calling this without [`Engine::cached`] first is only slower.)
    pub async fn submit(&self, job: Job) -> Result<Outcome, EngineError> {
        let result = self.dispatch(job).await;
        match &result {
            Err(EngineError::Unavailable(detail)) => {
                if !self.db_down.swap(true, Ordering::AcqRel) {
                    self.ctx.metrics.db_up.set(0);
                    tracing::error!(%detail, "database unavailable: answering 503 until it returns");
                }
            }
            Ok(_) | Err(EngineError::HandlerFailed(_)) => {
                if self.db_down.swap(false, Ordering::AcqRel) {
                    self.ctx.metrics.db_up.set(1);
                    tracing::info!("database available again");
                }
            }
            Err(_) => {}
        }
        result
    }

    /// The fast path: `Some` when the cache knows the key. A cache entry is proof of a
    /// commit, so a hit is answered before any event is built and without the shard: most
    /// duplicates never copy their headers or take a queue slot. A miss proves nothing (the
    /// key may have been evicted, or committed by another instance); [`Engine::submit`] then
    /// lets the shard and the database decide.
    pub async fn cached(
        &self,
        key: &EventKey,
        digest: &Sha256Digest,
        payload_sha256: &Sha256Digest,
    ) -> Option<Outcome> {
        let started = Instant::now();
        let stored = self.ctx.cache.get(digest).await?;
        self.ctx
            .metrics
            .check_hit
            .observe(started.elapsed().as_secs_f64());
        self.ctx.metrics.cache_hits.inc();
        Some(shard::duplicate_of(key, payload_sha256, Some(stored)))
    }

    async fn dispatch(&self, job: Job) -> Result<Outcome, EngineError> {
        let shard = &self.shards[key::shard_of(&job.event.digest, self.shards.len())];
        if shard.depth.fetch_add(1, Ordering::AcqRel) >= self.shard_queue {
            shard.depth.fetch_sub(1, Ordering::AcqRel);
            return Err(EngineError::QueueFull);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        if shard.actor.cast(ShardMsg::Process(job, tx.into())).is_err() {
            shard.depth.fetch_sub(1, Ordering::AcqRel);
            return Err(EngineError::ShuttingDown);
        }
        // The shard replies to every message it dequeues; a dropped reply means it was
        // stopped with the event still queued, which only a shutdown past its grace does.
        rx.await.map_err(|_| EngineError::ShuttingDown)?
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.ctx.metrics
    }

    pub fn cache(&self) -> &CommittedKeys {
        &self.ctx.cache
    }

    /// Events queued or in progress, over all shards.
    pub fn in_flight(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.depth.load(Ordering::Acquire))
            .sum()
    }

    /// Copies the gauges that are cheaper to read at scrape time than to maintain.
    pub async fn export_gauges(&self) {
        let m = &self.ctx.metrics;
        let entries = self.ctx.cache.entry_count().await;
        m.cache_entries
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
        for (i, shard) in self.shards.iter().enumerate() {
            m.queue_depth
                .with_label_values(&[&i.to_string()])
                .set(shard.depth.load(Ordering::Acquire) as i64);
        }
    }

    /// Graceful shutdown: waits (up to `grace`) until every queued and in-flight event has
    /// committed or failed and been answered, then stops the shards. Returns the number of
    /// events still in flight when the grace ran out (0 on a clean drain).
    pub async fn drain(&self, grace: Duration) -> usize {
        let deadline = Instant::now() + grace;
        while self.in_flight() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let left = self.in_flight();
        for shard in &self.shards {
            shard.actor.stop(None);
        }
        left
    }
}
