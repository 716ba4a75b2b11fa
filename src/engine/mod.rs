//! The exactly-once machinery, in the order an event meets it:
//!
//! 1. [`Engine::cached`] (this file): a duplicate whose key the [`cache`] knows is answered at
//!    once, on the request task.
//! 2. [`Engine::submit`] (this file): routes the event to the shard that owns its key, refusing
//!    with `QueueFull` when that shard holds as many deliveries as it may.
//! 3. `shard`: the actor that keeps each key's deliveries in order, one at a time.
//! 4. `writers`: the tasks that commit events, several shards' events in one transaction
//!    under load.
//! 5. [`store`]: the database transaction (dedupe insert + handlers + commit), with
//!    [`crate::db::error`] deciding what a database error means.
//!
//! The database's unique key on the dedupe record is the guarantee. The shards and the cache
//! only make it fast: remove them and the answers stay right, only slower.

pub mod cache;
mod group;
pub mod mismatches;
pub mod outcome;
mod shard;
pub mod store;
mod writers;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorRef};
use sea_orm::DatabaseConnection;
use tokio::sync::{Semaphore, TryAcquireError};

use crate::clock::Clock;
use crate::config::Settings;
use crate::event::key::{EventKey, Sha256Digest};
use crate::event::Event;
use crate::handlers::Handler;
use crate::metrics::Metrics;
use crate::task::TaskGuard;
use crate::telemetry::traces::{Committing, Traces, Tracing};
use cache::CommittedKeys;
use outcome::Settled;
pub use outcome::{EngineError, Outcome};
use shard::{Request, ShardActor, ShardContext, ShardMsg, ShardState};
use store::Store;
use writers::{WriterContext, Writers};

/// An event plus the handlers its source runs.
pub struct Job {
    pub event: Arc<Event>,
    pub handlers: Arc<[Arc<dyn Handler>]>,
    /// Where the writers note the event's transaction, when the event is traced.
    pub trace: Option<Arc<Committing>>,
}

pub struct EngineConfig {
    pub shards: usize,
    pub shard_queue: usize,
    pub cache_capacity: u64,
    pub cache_ttl: Duration,
    pub max_retries: u32,
    pub max_batch: usize,
    /// Most body bytes one group commit carries (`None`: no bound but `max_batch`); see
    /// `writers::WriterContext::max_batch_bytes`.
    pub max_batch_bytes: Option<u64>,
    /// Transactions committing new events at once.
    pub writers: usize,
    /// How long one transaction may wait, and take.
    pub bounds: store::Bounds,
    /// Transactions' spans, when tracing is on.
    pub traces: Tracing,
}

/// The engine as the settings configure it, started. `max_batch_bytes` is the most body bytes
/// one statement can carry (`providers::body_limit::storable`); the transactions' waits are
/// the pool's sessions' own (`db::connect`).
pub async fn start(
    settings: &Settings,
    max_batch_bytes: Option<u64>,
    db: DatabaseConnection,
    clock: Clock,
    metrics: Arc<Metrics>,
    traces: Tracing,
) -> Result<Engine, EngineError> {
    let config = EngineConfig {
        traces,
        shards: settings.shards,
        shard_queue: settings.shard_queue,
        cache_capacity: settings.cache_capacity,
        cache_ttl: Duration::from_secs(u64::from(settings.retention_days) * 86_400),
        max_retries: settings.max_retries,
        max_batch: settings.max_batch,
        max_batch_bytes,
        writers: settings.writers,
        bounds: store::Bounds {
            statement: Duration::from_secs(settings.db_timeout_secs),
            handlers: Duration::from_secs(settings.handler_timeout_secs),
        },
    };
    Engine::start(config, db, clock, metrics).await
}

struct Shard {
    actor: ActorRef<ShardMsg>,
    /// The shard's bound: one permit per delivery it holds (waiting, at the writers, or being
    /// answered). A permit travels inside the request and comes back when the request is
    /// dropped, so the count cannot drift whichever way a delivery ends.
    permits: Arc<Semaphore>,
}

pub struct Engine {
    shards: Vec<Shard>,
    shard_queue: usize,
    cache: CommittedKeys,
    metrics: Arc<Metrics>,
    /// For operators' replays, which bypass the shards (see [`Engine::replay`]).
    store: Store,
    /// The writers' queue depth, without holding the queue open.
    writers: writers::WritersWatch,
    /// Whether the last database answer was an outage, so an outage is logged once when it
    /// starts and once when it ends, not once per request.
    db_down: AtomicBool,
    /// Duplicates with another body, written to their event's record once a second.
    mismatches: Arc<mismatches::Mismatches>,
    mismatch_task: TaskGuard,
    /// The tracer, when tracing is on: the route begins each event's trace with it.
    traces: Tracing,
}

impl Engine {
    pub async fn start(
        config: EngineConfig,
        db: DatabaseConnection,
        clock: Clock,
        metrics: Arc<Metrics>,
    ) -> Result<Self, EngineError> {
        let cache = CommittedKeys::new(
            config.cache_capacity,
            config.cache_ttl,
            metrics.cache_hits.clone(),
            metrics.check_hit.clone(),
        );
        let mismatches = Arc::new(mismatches::Mismatches::new(db.clone(), clock.clone()));
        let mismatch_task = mismatches.clone().spawn();
        let store = Store::new(
            db,
            config.max_retries,
            config.bounds,
            clock,
            metrics.clone(),
        );
        let writers = Writers::start(
            WriterContext {
                store: store.clone(),
                cache: cache.clone(),
                metrics: metrics.clone(),
                max_batch: config.max_batch.max(1),
                max_batch_bytes: config.max_batch_bytes,
                traces: config.traces.0.clone(),
            },
            config.writers,
            // Room for every delivery the shards may hold: the shards' bound refuses first.
            config.shards.saturating_mul(config.shard_queue),
        );
        let watch = writers.watch();
        let ctx = Arc::new(ShardContext {
            writers,
            cache: cache.clone(),
        });
        metrics.db_up.set(1);
        let mut shards = Vec::with_capacity(config.shards);
        for _ in 0..config.shards {
            let (actor, _join) = Actor::spawn(None, ShardActor, ShardState::new(ctx.clone()))
                .await
                .map_err(|e| EngineError::Internal(format!("cannot start a shard: {e}")))?;
            let permits = Arc::new(Semaphore::new(config.shard_queue));
            shards.push(Shard { actor, permits });
        }
        Ok(Self {
            shards,
            shard_queue: config.shard_queue,
            cache,
            metrics,
            store,
            writers: watch,
            db_down: AtomicBool::new(false),
            mismatches,
            mismatch_task,
            traces: config.traces,
        })
    }

    /// Re-runs an event's handlers for an operator ([`store::ReplayRequest`]). Not through the
    /// shards: a replay is rare and deliberate, and the record's row (a conditional UPDATE or
    /// the unique INSERT) already orders it against a live delivery of the same key, here or
    /// on another instance. On success the cache learns the event is processed, so this
    /// instance answers its next duplicate `duplicate`, no longer `rejected`.
    pub async fn replay(
        &self,
        event: &Event,
        handlers: &[Arc<dyn Handler>],
        request: &store::ReplayRequest,
    ) -> Result<store::Replayed, EngineError> {
        let replayed = self.store.replay(event, handlers, request).await?;
        if matches!(replayed, store::Replayed::Processed { .. }) {
            let settled = Settled {
                payload_sha256: event.payload_sha256,
                rejected: false,
            };
            self.cache.insert(event.digest, settled).await;
        }
        Ok(replayed)
    }

    /// Hands the event to the shard that owns its key and waits for the outcome. (The shard
    /// checks the cache too, so calling this without [`Engine::cached`] first is only slower.)
    pub async fn submit(&self, job: Job) -> Result<Outcome, EngineError> {
        let result = self.dispatch(job).await;
        match &result {
            Err(EngineError::Unavailable(detail)) => {
                if !self.db_down.swap(true, Ordering::AcqRel) {
                    self.metrics.db_up.set(0);
                    tracing::error!(%detail, "database unavailable: answering 503 until it returns");
                }
            }
            Ok(_) | Err(EngineError::HandlerFailed(_)) => {
                if self.db_down.swap(false, Ordering::AcqRel) {
                    self.metrics.db_up.set(1);
                    tracing::info!("database available again");
                }
            }
            Err(_) => {}
        }
        result
    }

    /// The fast path: `Some` when the cache knows the key, answered before any event is built
    /// and without the shard, so most duplicates never copy their headers or take a queue
    /// slot. A miss proves nothing; [`Engine::submit`] then lets the shard and the database
    /// decide.
    pub async fn cached(
        &self,
        key: &EventKey,
        digest: &Sha256Digest,
        payload_sha256: &Sha256Digest,
    ) -> Option<Outcome> {
        self.cache.duplicate(key, digest, payload_sha256).await
    }

    /// Notes a duplicate of event `digest` whose body (`payload_sha256`) differs from the one
    /// that settled it, for the event's record ([`mismatches`]).
    pub async fn note_mismatch(&self, digest: &Sha256Digest, payload_sha256: &Sha256Digest) {
        self.mismatches.note(digest, payload_sha256).await;
    }

    async fn dispatch(&self, job: Job) -> Result<Outcome, EngineError> {
        let shard = &self.shards[shard_of(&job.event.digest, self.shards.len())];
        let permit = match shard.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(TryAcquireError::NoPermits) => return Err(EngineError::QueueFull),
            Err(TryAcquireError::Closed) => return Err(EngineError::ShuttingDown),
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        let request = Request {
            job,
            reply: reply.into(),
            permit,
        };
        shard
            .actor
            .cast(ShardMsg::Process(request))
            .map_err(|_| EngineError::ShuttingDown)?;
        // Every request is answered; a dropped reply means its shard was stopped with the
        // request still waiting, which only a shutdown past its grace does.
        answer.await.map_err(|_| EngineError::ShuttingDown)?
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn cache(&self) -> &CommittedKeys {
        &self.cache
    }

    /// The tracer, when tracing is on.
    pub fn traces(&self) -> Option<&Arc<Traces>> {
        self.traces.0.as_ref()
    }

    fn held(&self, shard: &Shard) -> usize {
        self.shard_queue
            .saturating_sub(shard.permits.available_permits())
    }

    /// Events handed to the writers and waiting for one to take them (tests use it to know a
    /// group is fully queued behind a held writer).
    pub fn waiting_for_writers(&self) -> usize {
        self.writers.waiting()
    }

    /// Deliveries accepted and not yet answered, over all shards.
    pub fn in_flight(&self) -> usize {
        self.shards.iter().map(|s| self.held(s)).sum()
    }

    /// Copies the gauges that are cheaper to read at scrape time than to maintain.
    pub async fn export_gauges(&self) {
        let entries = self.cache.entry_count().await;
        self.metrics
            .cache_entries
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
        for (i, shard) in self.shards.iter().enumerate() {
            self.metrics
                .queue_depth
                .with_label_values(&[&i.to_string()])
                .set(i64::try_from(self.held(shard)).unwrap_or(i64::MAX));
        }
    }

    /// Graceful shutdown: waits (up to `grace`) until every accepted delivery has committed or
    /// failed and been answered, then refuses new ones and stops the shards. Returns the number
    /// of deliveries still in flight when the grace ran out (0 on a clean drain).
    pub async fn drain(&self, grace: Duration) -> usize {
        let deadline = Instant::now() + grace;
        while self.in_flight() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let left = self.in_flight();
        for shard in &self.shards {
            shard.permits.close();
            shard.actor.stop(None);
        }
        self.mismatch_task.stop().await;
        left
    }
}

/// The shard that owns a key. SHA-256 output is uniform, so its first eight bytes spread keys
/// evenly, and unlike `std`'s `RandomState` the choice is the same in every process.
fn shard_of(digest: &Sha256Digest, shards: usize) -> usize {
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    (u64::from_le_bytes(head) % shards as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_spread() {
        let mut counts = [0usize; 8];
        for i in 0..8000 {
            let key = EventKey::new("s", "t".into(), format!("evt_{i}")).unwrap();
            let d = key.digest();
            assert_eq!(shard_of(&d, 8), shard_of(&d, 8));
            counts[shard_of(&d, 8)] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
    }
}
