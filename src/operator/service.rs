//! [`Operator`]: the one service behind every operator action. The admin API, the console and
//! the job runner call it; none of them reads a table or a delivery statement itself, so a
//! new action has one home, and every read runs under the same bounds.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use sea_orm::{DatabaseConnection, DbErr, TransactionTrait};
use tokio::sync::Notify;

use super::audit::{self, AuditPage, AuditQuery, Change};
use super::destinations::{self, DestinationView};
use super::filter::{Filters, ListQuery};
use super::jobs::{self, JobView};
use super::orders::{self, Order};
use super::replay::{self, ReplayDone};
use super::{search, view, OperatorError};
use crate::clock::Clock;
use crate::config::DestinationKind;
use crate::engine::store::ReplayRequest;
use crate::engine::Engine;
use crate::event::key::{EventKey, Sha256Digest};
use crate::forward::attempt::idempotency_key;
use crate::forward::brakes;
use crate::forward::deliveries::{self, Backlog, Redelivery};
use crate::providers::Sources;
use crate::status::PauseReason;

/// Everything an operator action needs. Cheap to clone (handles only).
#[derive(Clone)]
pub struct Operator {
    /// Its transactions are bounded like an ingest transaction, by the limits the pool's
    /// sessions start with (`db::connect`): without them a filter no index serves (an event
    /// type that matches nothing on 10 million rows) ran for ten minutes on MariaDB holding a
    /// connection the writers need (BENCHMARKS.md), and a redrive batch meeting a row locked
    /// elsewhere waited out InnoDB's 50 s lock wait.
    pub(super) db: DatabaseConnection,
    /// Replays go through the engine's store, as a provider's delivery does.
    pub(super) engine: Arc<Engine>,
    pub(super) sources: Arc<Sources>,
    pub(super) clock: Clock,
    /// Wakes this instance's job runner when a job is created here, so it starts at once
    /// rather than at the runner's next poll.
    pub(super) jobs_created: Arc<Notify>,
    /// The configured destinations, (source, name).
    destinations: Arc<Vec<(String, String)>>,
    /// Their kinds, for the list.
    kinds: Arc<HashMap<(String, String), DestinationKind>>,
}

impl Operator {
    /// `destinations`: the configured ones, (source, name).
    pub fn new(
        db: DatabaseConnection,
        engine: Arc<Engine>,
        sources: Arc<Sources>,
        clock: Clock,
        destinations: Vec<(String, String)>,
        kinds: HashMap<(String, String), DestinationKind>,
    ) -> Self {
        Self {
            db,
            engine,
            sources,
            clock,
            jobs_created: Arc::new(Notify::new()),
            destinations: Arc::new(destinations),
            kinds: Arc::new(kinds),
        }
    }

    /// One page of events (`GET /events`, the console's lists): the hits and their summaries,
    /// read in one bounded transaction.
    pub async fn page(&self, query: &ListQuery) -> Result<view::EventPage, DbErr> {
        let txn = self.db.begin().await?;
        let (hits, next) = search::page(&txn, query).await?;
        let digests: Vec<_> = hits.iter().map(|(_, d)| *d).collect();
        let events = view::summaries(&txn, &digests).await?;
        txn.commit().await?;
        Ok(view::EventPage {
            events,
            next_cursor: next.map(|c| c.encode()),
        })
    }

    /// One event's detail, or `None` when idemhook knows nothing of it.
    pub async fn detail(&self, digest: &Sha256Digest) -> Result<Option<view::EventDetail>, DbErr> {
        let txn = self.db.begin().await?;
        let detail = view::detail(&txn, digest).await?;
        txn.commit().await?;
        Ok(detail)
    }

    /// Re-runs one event's handlers from what idemhook kept (see [`replay::replay`]).
    pub async fn replay(
        &self,
        digest: &Sha256Digest,
        request: &ReplayRequest,
    ) -> Result<ReplayDone, OperatorError> {
        replay::replay(&self.db, &self.engine, &self.sources, digest, request).await
    }

    /// Schedules a new round of attempts for each delivered or dead delivery of an event (to
    /// `destination` only, when given), with the same `Idempotency-Key`: the key, and what
    /// happened at each destination. 409 when every one was pending already; 404 when the
    /// event has no delivery (to that destination).
    pub async fn redeliver(
        &self,
        key: &EventKey,
        destination: Option<&str>,
        change: &Change,
    ) -> Result<(String, BTreeMap<String, Redelivery>), OperatorError> {
        let digest = key.digest();
        let now = self.clock.now();
        let txn = self.db.begin().await?;
        let done = deliveries::redeliver(&txn, &digest, destination, now).await?;
        if done.is_empty() {
            return Err(OperatorError::NotFound(match destination {
                Some(name) => format!(
                    "this event has no delivery to destination {name:?} (it did not match the \
                     destination's filters, the destination was added after the event, or the \
                     delivery is past its retention)"
                ),
                None => "no delivery of this event (unknown event, a source that does not \
                         forward, or a delivery past its retention)"
                    .into(),
            }));
        }
        if !done.values().any(|r| *r == Redelivery::Scheduled) {
            return Err(OperatorError::Conflict(
                "every delivery of this event is already pending".into(),
            ));
        }
        change.record(&txn, "ok", now).await?;
        txn.commit().await?;
        let scheduled: Vec<&str> = done
            .iter()
            .filter(|(_, r)| **r == Redelivery::Scheduled)
            .map(|(name, _)| name.as_str())
            .collect();
        tracing::info!(source = %key.source, destinations = ?scheduled, "redelivery scheduled by an operator");
        Ok((idempotency_key(&digest), done))
    }

    /// Starts a `kind` job over `filters` for the change's operator, and wakes this
    /// instance's runner for it. The job and its audit row commit together.
    pub async fn start_job(
        &self,
        kind: &str,
        filters: Filters,
        change: &Change,
    ) -> Result<JobView, OperatorError> {
        let filters = jobs::job_filters(kind, filters)?;
        // Counting what matches is a read like a list's, bounded the same way.
        let txn = self.db.begin().await?;
        let matched = jobs::count(&txn, &filters).await?;
        txn.commit().await?;
        let now = self.clock.now();
        let operator = &change.actor.operator;
        let txn = self.db.begin().await?;
        let job = jobs::create(&txn, kind, &filters, matched, operator, now).await?;
        change.record(&txn, "ok", now).await?;
        txn.commit().await?;
        tracing::info!(job = job.id, kind, operator = %operator, matched = job.matched, "job started");
        self.jobs_created.notify_one();
        Ok(job.into())
    }

    /// A job's progress, from whichever instance runs it.
    pub async fn job(&self, id: i64) -> Result<Option<JobView>, DbErr> {
        Ok(jobs::get(&self.db, id).await?.map(JobView::from))
    }

    /// The payments handler's view of an order.
    pub async fn order(&self, order_id: &str) -> Result<Option<Order>, DbErr> {
        orders::order(&self.db, order_id).await
    }

    /// Every source's outbox backlog, its destinations' together (the console's overview).
    pub async fn backlogs(&self) -> Result<HashMap<String, Backlog>, DbErr> {
        let txn = self.db.begin().await?;
        let backlogs = deliveries::backlogs(&txn).await?;
        txn.commit().await?;
        Ok(deliveries::per_source(backlogs))
    }

    /// Every destination, its state and its backlog (`GET /destinations`).
    pub async fn destinations(&self) -> Result<Vec<DestinationView>, DbErr> {
        let txn = self.db.begin().await?;
        let list =
            destinations::list(&txn, &self.destinations, &self.kinds, self.clock.now()).await?;
        txn.commit().await?;
        Ok(list)
    }

    /// Pauses (`pause`) a configured destination on `operator`'s behalf, or resumes it. Paused,
    /// no attempt to it starts on any instance; its deliveries wait, pending, and none becomes
    /// dead. Resumed, they go, oldest due first. The destination as it now stands.
    pub async fn set_paused(
        &self,
        source: &str,
        name: &str,
        pause: bool,
        change: &Change,
    ) -> Result<DestinationView, OperatorError> {
        self.configured(source, name)?;
        let now = self.clock.now();
        let operator = &change.actor.operator;
        let txn = self.db.begin().await?;
        if pause {
            brakes::pause(&txn, source, name, PauseReason::Operator, now).await?;
        } else {
            brakes::resume(&txn, source, name, now).await?;
        }
        change.record(&txn, "ok", now).await?;
        txn.commit().await?;
        if pause {
            tracing::warn!(source, destination = name, %operator, reason = %PauseReason::Operator,
                "destination paused: its deliveries wait until it is resumed");
        } else {
            tracing::warn!(source, destination = name, %operator, "destination resumed");
        }
        self.destination(source, name).await
    }

    /// Ends the pending deliveries of a destination that is no longer configured: they become
    /// dead, kept and redeliverable should it come back. Refused (409) for a configured one,
    /// which an operator pauses instead.
    pub async fn discard(
        &self,
        source: &str,
        name: &str,
        change: &Change,
    ) -> Result<DestinationView, OperatorError> {
        if self.configured(source, name).is_ok() {
            return Err(OperatorError::Conflict(format!(
                "destination {name:?} of source {source:?} is configured: pause it instead"
            )));
        }
        self.destination(source, name).await?;
        let now = self.clock.now();
        let txn = self.db.begin().await?;
        let discarded = deliveries::discard(&txn, (source, name), now).await?;
        change.record(&txn, "ok", now).await?;
        txn.commit().await?;
        if discarded > 0 {
            tracing::warn!(
                source,
                destination = name,
                operator = %change.actor.operator,
                discarded,
                "pending deliveries of a removed destination discarded: dead, kept, redeliverable"
            );
        }
        self.destination(source, name).await
    }

    /// Writes `change`'s row with `outcome`, on its own. Best effort.
    pub async fn record(&self, change: &Change, outcome: &str) {
        if let Err(err) = change.record(&self.db, outcome, self.clock.now()).await {
            tracing::warn!(error = %err, action = change.action.as_str(), "could not audit an operator's action");
        }
    }

    /// One page of the audit, newest first.
    pub async fn audit(&self, query: &AuditQuery) -> Result<AuditPage, DbErr> {
        let txn = self.db.begin().await?;
        let page = audit::page(&txn, query).await?;
        txn.commit().await?;
        Ok(page)
    }

    fn configured(&self, source: &str, name: &str) -> Result<(), OperatorError> {
        if self
            .destinations
            .iter()
            .any(|(s, n)| s == source && n == name)
        {
            Ok(())
        } else {
            Err(OperatorError::NotFound(format!(
                "no destination {name:?} of source {source:?} is configured"
            )))
        }
    }

    async fn destination(
        &self,
        source: &str,
        name: &str,
    ) -> Result<DestinationView, OperatorError> {
        self.destinations()
            .await?
            .into_iter()
            .find(|d| d.source == source && d.name == name)
            .ok_or_else(|| OperatorError::NotFound("no such destination".into()))
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }
}
