//! The retention sweeper: deletes dedupe records, failed-attempt audit rows, the payloads kept
//! for rejected and failed events, inbox rows and settled outbox rows older than their
//! retention (pending deliveries never), so storage stays bounded.
//!
//! It deletes in batches (select up to `sweep_batch` primary keys, delete them, pause), each
//! batch its own short statement, so it never holds a long lock or starves ingestion. The
//! timestamp columns it selects by are indexed.
//!
//! The consequence of a sweep: a key whose record is gone is *new* again, so a redelivery
//! after the retention is processed a second time. That is why the retention is at least 30
//! days, ten times Stripe's 3-day retry window and far beyond GitHub's, Shopify's (48 h) or
//! Standard Webhooks senders' schedules. Swept keys are also dropped from the cache, so the
//! cache never vouches for a record that no longer exists.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait, TryGetableMany, Value,
};

use crate::clock::Clock;
use crate::config::Settings;
use crate::db::Limits;
use crate::engine::cache::CommittedKeys;
use crate::entities::{
    attempt, audit, delivery, delivery_body, event_payload, failed_attempt, inbox, job,
    processed_event, replay,
};
use crate::event::key::Sha256Digest;
use crate::forward::deliveries;
use crate::metrics::Metrics;
use crate::status::DeliveryStatus;
use crate::task::{OnStop, TaskGuard};

/// The sweeper's waits: a batch gives way quickly to a row an event holds (the next sweep
/// deletes it), but a large delete may take longer than an ingest statement.
const SWEEP_LIMITS: Limits = Limits {
    lock: Duration::from_secs(2),
    statement: Duration::from_secs(60),
    idle_in_transaction: Duration::from_secs(60),
};

pub struct SweeperConfig {
    pub retention_days: u32,
    pub inbox_retention_days: u32,
    pub audit_retention_days: u32,
    pub batch: u64,
    pub pause: Duration,
    pub interval: Duration,
    /// The configured destinations, (source, name): a removed one's rows are kept until an
    /// operator discards its pending ones (see `forward::deliveries::sweepable`).
    pub destinations: Vec<(String, String)>,
    /// The pool's sessions' own limits (the ingest ones), handed back after each batch's own
    /// where they are the session's (MariaDB: [`Limits::hand_back`]).
    pub session_limits: Limits,
}

/// Rows deleted by one sweep.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    pub processed_events: u64,
    pub failed_attempts: u64,
    pub inbox: u64,
    /// Raw payloads kept for rejected and failed events.
    pub event_payloads: u64,
    /// Outbox rows: delivered ones past the inbox retention, dead ones past the retention.
    /// Pending ones are never swept.
    pub deliveries: u64,
    /// Bodies stored once for several destinations, once none of their event's rows is left.
    pub delivery_bodies: u64,
    /// The operators' records past the retention: attempt history, replays, finished jobs.
    pub history: u64,
    /// Audit rows past `audit_retention_days`.
    pub audit: u64,
}

/// The sweeper as the settings configure it, started: see [`Sweeper::spawn`].
pub fn start(
    settings: &Settings,
    db: DatabaseConnection,
    cache: CommittedKeys,
    clock: Clock,
    metrics: Arc<Metrics>,
) -> (Arc<Sweeper>, TaskGuard) {
    let config = SweeperConfig {
        retention_days: settings.retention_days,
        inbox_retention_days: settings.inbox_retention_days,
        audit_retention_days: settings.audit_retention_days,
        batch: settings.sweep_batch,
        pause: Duration::from_millis(settings.sweep_pause_ms),
        interval: Duration::from_secs(settings.sweep_interval_secs),
        destinations: crate::forward::destinations(settings),
        session_limits: crate::db::ingest_limits(settings),
    };
    Sweeper::new(db, cache, clock, metrics, config).spawn()
}

pub struct Sweeper {
    db: DatabaseConnection,
    cache: CommittedKeys,
    clock: Clock,
    metrics: Arc<Metrics>,
    config: SweeperConfig,
}

impl Sweeper {
    pub fn new(
        db: DatabaseConnection,
        cache: CommittedKeys,
        clock: Clock,
        metrics: Arc<Metrics>,
        config: SweeperConfig,
    ) -> Self {
        Self {
            db,
            cache,
            clock,
            metrics,
            config,
        }
    }

    /// Runs `sweep_once` every interval until its guard is stopped or dropped; returns the
    /// sweeper, to sweep now (an operator's or a test's `sweep_once`), and the guard. The
    /// first sweep runs one interval after launch, not at launch, so a restart loop cannot
    /// turn into a sweep loop. A stop is seen between two sweeps; a sweep under way goes on
    /// until the guard drops ([`OnStop::Tell`]).
    pub fn spawn(self) -> (Arc<Sweeper>, TaskGuard) {
        // The first sweep ends an interval from now: until then "last run" is the launch, so
        // an alert on its age does not fire at every start.
        self.metrics
            .sweeper_last_run
            .set(self.clock.now().timestamp() as f64);
        self.metrics
            .sweeper_interval
            .set(self.config.interval.as_secs_f64());
        let sweeper = Arc::new(self);
        let this = sweeper.clone();
        let task = TaskGuard::spawn("sweeper", OnStop::Tell, |mut stopped| async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(this.config.interval) => {}
                    _ = stopped.changed() => return,
                }
                match this.sweep_once().await {
                    Ok(r) => tracing::info!(
                        processed_events = r.processed_events,
                        failed_attempts = r.failed_attempts,
                        inbox = r.inbox,
                        event_payloads = r.event_payloads,
                        deliveries = r.deliveries,
                        delivery_bodies = r.delivery_bodies,
                        history = r.history,
                        audit = r.audit,
                        "retention sweep done"
                    ),
                    Err(e) => {
                        tracing::warn!(error = %e, "retention sweep failed; retrying next interval")
                    }
                }
            }
        });
        (sweeper, task)
    }

    pub async fn sweep_once(&self) -> Result<SweepReport, DbErr> {
        let now = self.clock.now();
        let cutoff = now - TimeDelta::days(i64::from(self.config.retention_days));
        let inbox_cutoff = now - TimeDelta::days(i64::from(self.config.inbox_retention_days));

        let processed_events = self
            .sweep_table::<processed_event::Entity, Vec<u8>>(
                "processed_events",
                processed_event::Column::KeyDigest,
                processed_event::Column::ProcessedAt,
                cutoff,
                Condition::all(),
                |key| <[u8; 32]>::try_from(key.as_slice()).ok(),
            )
            .await?;
        let failed_attempts = self
            .sweep_table::<failed_attempt::Entity, Vec<u8>>(
                "failed_attempts",
                failed_attempt::Column::KeyDigest,
                failed_attempt::Column::LastFailedAt,
                cutoff,
                Condition::all(),
                |_| None,
            )
            .await?;
        let event_payloads = self
            .sweep_table::<event_payload::Entity, Vec<u8>>(
                "event_payloads",
                event_payload::Column::KeyDigest,
                event_payload::Column::StoredAt,
                cutoff,
                Condition::all(),
                |_| None,
            )
            .await?;
        let inbox = self
            .sweep_table::<inbox::Entity, i64>(
                "inbox",
                inbox::Column::Id,
                inbox::Column::ReceivedAt,
                inbox_cutoff,
                Condition::all(),
                |_| None,
            )
            .await?;
        // Each state written so that its partial index serves the walk (`(created_at, …)` of
        // delivered rows, `(status, created_at, …)` of undelivered ones).
        let mut deliveries = 0;
        for (state, before) in [
            (
                deliveries::state_is(delivery::Entity, DeliveryStatus::Delivered),
                inbox_cutoff,
            ),
            (
                deliveries::in_undelivered_state(DeliveryStatus::Dead),
                cutoff,
            ),
        ] {
            deliveries += self
                .sweep_table::<delivery::Entity, i64>(
                    "deliveries",
                    delivery::Column::Id,
                    delivery::Column::CreatedAt,
                    before,
                    Condition::all()
                        .add(state)
                        .add(deliveries::sweepable(&self.config.destinations)),
                    |_| None,
                )
                .await?;
        }
        // A body goes once the last of its event's rows is gone (an hour's margin for a
        // transaction whose rows and body are not visible yet).
        let delivery_bodies = self
            .sweep_table::<delivery_body::Entity, Vec<u8>>(
                "delivery_bodies",
                delivery_body::Column::EventDigest,
                delivery_body::Column::CreatedAt,
                now - TimeDelta::hours(1),
                Condition::all().add(deliveries::bodies::orphaned()),
                |_| None,
            )
            .await?;
        let mut history = self
            .sweep_table::<attempt::Entity, i64>(
                "attempts",
                attempt::Column::Id,
                attempt::Column::At,
                cutoff,
                Condition::all(),
                |_| None,
            )
            .await?;
        history += self
            .sweep_table::<replay::Entity, i64>(
                "replays",
                replay::Column::Id,
                replay::Column::ReplayedAt,
                cutoff,
                Condition::all(),
                |_| None,
            )
            .await?;
        // A running job has no `finished_at`, so it is never swept.
        history += self
            .sweep_table::<job::Entity, i64>(
                "jobs",
                job::Column::Id,
                job::Column::FinishedAt,
                cutoff,
                Condition::all(),
                |_| None,
            )
            .await?;
        let audit = self
            .sweep_table::<audit::Entity, i64>(
                "audit",
                audit::Column::Id,
                audit::Column::At,
                now - TimeDelta::days(i64::from(self.config.audit_retention_days)),
                Condition::all(),
                |_| None,
            )
            .await?;
        self.metrics
            .sweeper_last_run
            .set(self.clock.now().timestamp() as f64);
        Ok(SweepReport {
            processed_events,
            failed_attempts,
            inbox,
            event_payloads,
            deliveries,
            delivery_bodies,
            history,
            audit,
        })
    }

    /// Deletes `table`'s rows whose `time` is before `cutoff`, oldest first, `batch` primary
    /// keys at a time. `cached` names the cache entry a deleted key had, if any.
    async fn sweep_table<E, K>(
        &self,
        table: &str,
        key: E::Column,
        time: E::Column,
        cutoff: DateTime<Utc>,
        only: Condition,
        cached: fn(&K) -> Option<Sha256Digest>,
    ) -> Result<u64, DbErr>
    where
        E: EntityTrait,
        K: TryGetableMany + Into<Value> + Clone,
    {
        let mut deleted = 0;
        loop {
            // Each batch is its own short transaction with the sweeper's own limits: it
            // never waits long on a row an event holds, and ingest's limits do not cut it.
            let txn = self.db.begin().await?;
            SWEEP_LIMITS.apply(&txn).await?;
            let swept = async {
                let keys: Vec<K> = E::find()
                    .select_only()
                    .column(key)
                    .filter(time.lt(cutoff))
                    .filter(only.clone())
                    .order_by_asc(time)
                    .limit(self.config.batch)
                    .into_tuple()
                    .all(&txn)
                    .await?;
                if keys.is_empty() {
                    return Ok((keys, 0));
                }
                let n = E::delete_many()
                    .filter(key.is_in(keys.iter().cloned()))
                    .exec(&txn)
                    .await?
                    .rows_affected;
                Ok::<_, DbErr>((keys, n))
            };
            // On MariaDB the limits are the session's: the ingest ones go back before the
            // connection returns to the pool, whatever the batch did.
            let (swept, handed_back) = (
                swept.await,
                self.config.session_limits.hand_back(&txn).await,
            );
            let (keys, n) = match swept.and_then(|done| handed_back.map(|()| done)) {
                Ok(done) => done,
                Err(err) => {
                    let _ = txn.rollback().await;
                    return Err(err);
                }
            };
            txn.commit().await?;
            if keys.is_empty() {
                break;
            }
            for digest in keys.iter().filter_map(cached) {
                self.cache.invalidate(&digest).await;
            }
            deleted += n;
            self.metrics
                .sweeper_deleted
                .with_label_values(&[table])
                .inc_by(n);
            if (keys.len() as u64) < self.config.batch {
                break;
            }
            tokio::time::sleep(self.config.pause).await;
        }
        Ok(deleted)
    }
}
