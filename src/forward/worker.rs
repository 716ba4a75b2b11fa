//! The delivery worker: one task per instance. It claims due deliveries of each destination
//! (as many as that destination has free slots, once at least half are free, so claims come
//! in batches), runs each attempt on its own task, waits for attempts to finish while every
//! slot is busy, and sleeps `forward_poll_ms` when there was nothing to claim, unless woken
//! first ([`Wake`]: an event committed on this instance, or slots freed).
//!
//! Memory is bounded by `concurrency` rows per destination, whatever the backlog. The leases this
//! instance holds are listed (a `DashMap`, shared with the attempt tasks), so that a shutdown
//! can give back the ones whose attempts it did not wait for.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use dashmap::DashMap;
use sea_orm::DatabaseConnection;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::aftermath::{self, Suspects};
use super::deliveries::{self, Brakes, Settle};
use super::metrics::{ForwardMetrics, Settled};
use super::recorder::{record_delivered, Delivered};
use super::{brakes, Target, Wake};
use crate::clock::Clock;
use crate::db::error::{classify, DbErrorKind};
use crate::entities::delivery;
use crate::task::{OnStop, TaskGuard};
use crate::telemetry::traces::Traces;

mod probes;

/// How often the backlog gauges are refreshed.
const GAUGE_INTERVAL: Duration = Duration::from_secs(5);
/// The pause after a failed claim (the database is down): no tight loop of errors.
const ERROR_PAUSE: Duration = Duration::from_secs(1);

pub struct Forwarder {
    db: DatabaseConnection,
    targets: Vec<(Arc<Target>, Arc<Semaphore>)>,
    /// The pull destinations, (source, name): only their gauges are kept here.
    pulled: Vec<(String, String)>,
    clock: Clock,
    metrics: ForwardMetrics,
    poll: Duration,
    /// Leases held by this instance's attempts in flight: row id → token.
    leases: Arc<DashMap<i64, [u8; 16]>>,
    /// To the recorder task, which settles delivered attempts in batches.
    delivered: mpsc::Sender<Delivered>,
    /// Its receiving end, until `spawn` starts the recorder with it.
    recorder: Option<mpsc::Receiver<Delivered>>,
    wake: Wake,
    /// Destinations that may have failures counted: the next 2xx resets the breaker's count.
    suspects: Suspects,
    /// Each attempt's span, when tracing is on.
    traces: Option<Arc<Traces>>,
}

impl Forwarder {
    pub fn new(
        db: DatabaseConnection,
        targets: Vec<Target>,
        pulled: Vec<(String, String)>,
        clock: Clock,
        metrics: ForwardMetrics,
        poll: Duration,
        wake: Wake,
    ) -> Self {
        // Every slot holds at most one message: the channel never fills.
        let slots_total: usize = targets.iter().map(|t| t.concurrency).sum();
        let (delivered, recorder) = mpsc::channel(slots_total.max(1));
        let targets = targets
            .into_iter()
            .map(|t| {
                let slots = Arc::new(Semaphore::new(t.concurrency));
                (Arc::new(t), slots)
            })
            .collect();
        Self {
            db,
            targets,
            pulled,
            clock,
            metrics,
            poll,
            leases: Arc::new(DashMap::new()),
            delivered,
            recorder: Some(recorder),
            wake,
            suspects: Default::default(),
            traces: None,
        }
    }

    /// Starts the worker. A stop ends its claims, then waits up to `grace` for the attempts
    /// in flight and gives back the leases of the rest (`shutdown`); the guard's
    /// `stop` awaits all of that ([`OnStop::AwaitEnd`]), and a guard dropped without `stop`
    /// lets it run to its end.
    /// Makes a span of each attempt of a traced event.
    pub fn traced(mut self, traces: Option<Arc<Traces>>) -> Self {
        self.traces = traces;
        self
    }

    pub fn spawn(self, grace: Duration) -> TaskGuard {
        TaskGuard::spawn("forwarder", OnStop::AwaitEnd, move |stopped| {
            self.run(stopped, grace)
        })
    }

    async fn run(mut self, mut stopped: watch::Receiver<bool>, grace: Duration) {
        let recorder = self.recorder.take();
        let this = Arc::new(self);
        if let Some(rx) = recorder {
            // Ends when the last sender (held by `this` and the attempts) is gone.
            tokio::spawn(record_delivered(
                this.db.clone(),
                this.clock.clone(),
                this.metrics.clone(),
                this.leases.clone(),
                this.wake.clone(),
                rx,
            ));
        }
        let mut attempts = JoinSet::new();
        let mut gauges_at = tokio::time::Instant::now();
        while !*stopped.borrow() {
            while attempts.try_join_next().is_some() {}
            if gauges_at.elapsed() >= GAUGE_INTERVAL {
                let rows = this.refresh_gauges().await;
                this.probe_all(&rows, &mut attempts).await;
                gauges_at = tokio::time::Instant::now();
            }
            if !this.wants_more() {
                // Every source busy: claim again once slots are freed (an attempt that failed
                // frees its own; the recorder frees delivered ones in a batch and wakes us),
                // not once per finished attempt.
                tokio::select! {
                    Some(_) = attempts.join_next(), if !attempts.is_empty() => {}
                    _ = this.wake.wait() => {}
                    _ = stopped.changed() => {}
                    // The gauges stay fresh while nothing else happens (only pull
                    // destinations, or every slot held by attempts that hang).
                    _ = tokio::time::sleep_until(gauges_at + GAUGE_INTERVAL) => {}
                }
                continue;
            }
            match this.claim_all(&mut attempts).await {
                Ok(0) => this.pause(&mut stopped, this.poll).await, // nothing due
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "forwarding: cannot claim deliveries");
                    tokio::select! {
                        _ = tokio::time::sleep(ERROR_PAUSE) => {}
                        _ = stopped.changed() => {}
                    }
                }
            }
        }
        this.shutdown(attempts, grace).await;
    }

    /// Nothing was due: the next claim after `d`, or as soon as this instance commits an event
    /// to forward.
    async fn pause(&self, stopped: &mut watch::Receiver<bool>, d: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.wake.wait() => {}
            _ = stopped.changed() => {}
        }
    }

    /// Whether some source has at least half its slots free (or every slot, for a source with
    /// a concurrency of 1): worth a claim.
    fn wants_more(&self) -> bool {
        self.targets
            .iter()
            .any(|(t, slots)| slots.available_permits() * 2 >= t.concurrency)
    }

    /// Claims, for every source with at least half its slots free, as many due rows as it has
    /// free slots, and starts an attempt for each. Returns how many were claimed.
    async fn claim_all(
        self: &Arc<Self>,
        attempts: &mut JoinSet<()>,
    ) -> Result<usize, sea_orm::DbErr> {
        let mut claimed = 0;
        for (target, slots) in &self.targets {
            let free = slots.available_permits();
            if free == 0 || free * 2 < target.concurrency {
                continue;
            }
            let now = self.clock.now();
            let token: [u8; 16] = rand::random();
            let lease_until = now + TimeDelta::from_std(target.lease).unwrap_or(TimeDelta::MAX);
            let doubts = target.due_doubts(now);
            if !doubts.is_empty() {
                // Retries in doubt first, past the brakes and the rate limit.
                let who = (target.source.as_str(), target.name.as_str());
                let only = Brakes::Only(&doubts);
                let rows =
                    deliveries::claim(&self.db, who, free as u64, now, lease_until, &token, only);
                let rows = rows.await.unwrap_or_default();
                claimed += rows.len();
                self.start_attempts(target, slots, rows, token, attempts);
                continue;
            }
            let want = match target.rate_per_sec {
                None => free as u64,
                Some(rate) => {
                    let (source, name) = (&target.source, &target.name);
                    match brakes::take_tokens(&self.db, source, name, free as u64, rate, now).await
                    {
                        Ok(0) => continue,
                        Ok(granted) => granted,
                        Err(e) if classify(&e) == DbErrorKind::Retryable => continue,
                        Err(e) => return Err(e),
                    }
                }
            };
            let claim = deliveries::claim(
                &self.db,
                (&target.source, &target.name),
                want,
                now,
                lease_until,
                &token,
                if target.transport.retries_in_doubt_first() {
                    Brakes::InDoubtPast
                } else {
                    Brakes::Respect
                },
            );
            let rows = match claim.await {
                Ok(rows) => rows,
                Err(e) if classify(&e) == DbErrorKind::Retryable => {
                    // Another node won the same rows (Galera): nothing was claimed here.
                    self.metrics.claims_lost.inc();
                    continue;
                }
                Err(e) => return Err(e),
            };
            claimed += rows.len();
            let unused = want - rows.len() as u64;
            if target.rate_per_sec.is_some() && unused > 0 {
                let back = brakes::give_back(&self.db, &target.source, &target.name, unused);
                if let Err(e) = back.await {
                    tracing::warn!(source = %target.source, destination = %target.name, error = %e, "forwarding: cannot give back rate tokens");
                }
            }
            self.start_attempts(target, slots, rows, token, attempts);
        }
        Ok(claimed)
    }

    /// Starts an attempt for each claimed row, each holding one of the target's slots.
    fn start_attempts(
        self: &Arc<Self>,
        target: &Arc<Target>,
        slots: &Arc<Semaphore>,
        rows: Vec<delivery::Model>,
        token: [u8; 16],
        attempts: &mut JoinSet<()>,
    ) {
        for row in rows {
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                break; // cannot happen: at most `free` rows were claimed
            };
            self.leases.insert(row.id, token);
            let (this, target) = (self.clone(), target.clone());
            attempts.spawn(async move { this.deliver(&target, row, token, permit, false).await });
        }
    }

    /// One attempt, then its row settled: a delivery by the recorder, with the others that
    /// finish meanwhile; a failure here, at once.
    async fn deliver(
        &self,
        target: &Target,
        row: delivery::Model,
        token: [u8; 16],
        permit: OwnedSemaphorePermit,
        probe: bool,
    ) {
        let mut row = row;
        let span = super::attempt::span(self.traces.as_deref(), &row);
        if let Some(span) = &span {
            // Sent on as the attempt's own context, in the event's trace (the stored one is
            // the event's request span).
            row.traceparent = Some(span.traceparent().to_owned());
        }
        let answer = target.transport.send(&row, self.clock.now()).await;
        if let Some(span) = span {
            span.finish(answer.delivered(), answer.status, answer.class.label());
        }
        #[cfg(feature = "test-handlers")]
        super::attempt::crash_after_delivery(&answer);
        let now = self.clock.now();
        let attempts = u32::try_from(row.attempts).unwrap_or(u32::MAX);
        let suspect = self.suspects.is(target);
        let braked =
            aftermath::brake(&self.db, target, &answer, attempts, now, probe, suspect).await;
        if braked.suspect != suspect {
            self.suspects.set(target, braked.suspect);
        }
        let may_die = !braked.paused;
        let (settled, settle) = aftermath::outcome(target, &answer, attempts, now, may_die);
        if let Settle::Delivered { status } = settle {
            let delivered = Delivered {
                id: row.id,
                token,
                status,
                source: row.source,
                destination: row.destination,
                created_at: row.created_at,
                permit,
            };
            if self.delivered.send(delivered).await.is_err() {
                tracing::warn!("forwarding: the recorder stopped; a delivery is retried");
            }
            return;
        }
        let doubt = match &settle {
            Settle::Retry {
                at, in_doubt: true, ..
            } => Some(*at),
            _ => None,
        };
        match deliveries::settle(&self.db, &row, &token, settle, now).await {
            Ok(true) => {
                if let Some(at) = doubt {
                    target.doubt(row.id, at);
                }
            }
            Ok(false) => tracing::warn!(
                source = %row.source,
                destination = %row.destination,
                "forwarding: a delivery's lease ran out before its attempt settled; another \
                 instance has it (the app may see it twice, with the same Idempotency-Key)"
            ),
            Err(e) => tracing::warn!(
                source = %row.source,
                destination = %row.destination,
                error = %e,
                "forwarding: cannot record an attempt; it is retried when its lease runs out"
            ),
        }
        self.leases.remove(&row.id);
        drop(permit);
        self.wake.notify();
        self.metrics
            .attempt(&row.source, &row.destination, settled, answer.class);
        if settled == Settled::Dead {
            tracing::warn!(
                source = %row.source,
                destination = %row.destination,
                attempts,
                error = %answer.error,
                "forwarding: a delivery is dead after its last attempt; redeliver it once the \
                 app is fixed"
            );
        }
    }

    /// Waits up to `grace` for attempts in flight, then gives back the leases of those it
    /// stopped waiting for: nothing is marked delivered that the app did not answer 2xx, and
    /// the rest are due at once for another instance.
    async fn shutdown(&self, mut attempts: JoinSet<()>, grace: Duration) {
        // Every slot back means every attempt ended and was recorded.
        let finished = tokio::time::timeout(grace, async {
            while attempts.join_next().await.is_some() {}
            for (target, slots) in &self.targets {
                let n = u32::try_from(target.concurrency).unwrap_or(u32::MAX);
                let _ = slots.acquire_many(n).await;
            }
        })
        .await;
        if finished.is_ok() {
            return;
        }
        attempts.abort_all();
        let held: Vec<(i64, [u8; 16])> =
            self.leases.iter().map(|e| (*e.key(), *e.value())).collect();
        match deliveries::release(&self.db, &held).await {
            Ok(n) => tracing::info!(released = n, "forwarding: leases given back at shutdown"),
            Err(e) => tracing::warn!(error = %e, "forwarding: leases not given back; they expire"),
        }
    }
}
