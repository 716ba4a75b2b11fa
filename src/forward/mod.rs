//! Forwarding: every event of a source that lists the `forward` handler is delivered to the
//! user's own app, at least once, never lost, signed, with a key that lets the app apply it
//! once.
//!
//! The flow after the commit, continuing the crate's (route → key → shard → cache →
//! transaction):
//!
//! 1. [`handler`]: the `forward` handler writes the event's outbox row (`deliveries`) in the
//!    event's transaction. Recorded and scheduled together, or neither.
//! 2. [`worker`]: each instance's worker claims due rows under a lease, at most `concurrency`
//!    per destination in flight, and
//! 3. sends each one through its [`destination`]'s kind ([`http`] today; no transaction and
//!    no ingest connection held meanwhile), then settles the row ([`attempt`]): delivered on
//!    a 2xx (recorded in batches by `recorder`); otherwise retried after a backoff with full
//!    jitter (`Retry-After` honoured), and dead after `max_attempts`, kept and redeliverable.
//!
//! Every statement on the `deliveries` table, from the handler's insert to the operator's
//! redelivery, is in [`deliveries`].
//!
//! A down or slow app never touches ingestion: the answer to the provider is given at commit,
//! and the backlog lives in the database, not in memory (the worker holds at most
//! `concurrency` rows per source).

pub mod aftermath;
pub mod attempt;
pub mod brakes;
pub mod deliveries;
pub mod destination;
pub mod filter;
pub mod handler;
pub mod http;
pub mod metrics;
pub mod nats;
pub mod pull;
pub mod rabbitmq;
mod recorder;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use tokio::sync::Notify;

pub use attempt::Transport;
pub use destination::{bound_slots, check, destinations, kinds, targets, warn_removed, Target};
pub use handler::Forward;
pub use worker::Forwarder;

use crate::clock::Clock;
use crate::config::{DestinationKind, Settings};
use crate::task::TaskGuard;
use crate::telemetry::traces::Traces;

/// A nudge to the delivery worker: "there may be something to claim now". The `forward`
/// handler gives one when its event's transaction commits, and the recorder when it frees
/// slots; the worker otherwise sleeps `forward_poll_ms` between empty claims, which was most of
/// the commit → delivered time at moderate rates (BENCHMARKS.md). A nudge given while the
/// worker is busy is kept (one, however many arrive) and ends its next wait at once, so none is
/// lost. Rows committed by another instance are still found by the poll.
///
/// Pull consumers waiting in a long poll (`forward::pull`) are woken too, all of them.
#[derive(Clone, Default)]
pub struct Wake {
    worker: Arc<Notify>,
    pullers: Arc<Notify>,
}

impl Wake {
    pub fn notify(&self) {
        self.worker.notify_one();
        self.pullers.notify_waiters();
    }

    pub async fn wait(&self) {
        self.worker.notified().await;
    }

    /// The pull consumers' wake-up: create it before looking for deliveries, so that a
    /// commit in between is not missed.
    pub fn pulled(&self) -> tokio::sync::futures::Notified<'_> {
        self.pullers.notified()
    }
}

/// The delivery worker, started, when some source forwards and `forward_worker` is on (off, the
/// instance only ingests and other instances deliver). `targets` come from [`targets`], their
/// slots bounded by [`bound_slots`]. Its guard's stop gives back the leases of the attempts it
/// does not wait for (see [`Forwarder::spawn`]).
pub fn start(
    settings: &Settings,
    targets: Vec<Target>,
    db: DatabaseConnection,
    clock: Clock,
    metrics: &crate::metrics::Metrics,
    wake: Wake,
    traces: Option<Arc<Traces>>,
) -> Option<TaskGuard> {
    // Pull destinations are leased by their consumers, not pushed: the worker only keeps
    // their backlog gauges (a consumer that stopped pulling shows, and alerts, like an app
    // that stopped answering).
    let pulled: Vec<(String, String)> = kinds(settings)
        .into_iter()
        .filter(|(_, kind)| *kind == DestinationKind::Pull)
        .map(|(key, _)| key)
        .collect();
    if (targets.is_empty() && pulled.is_empty()) || !settings.forward_worker {
        return None;
    }
    let worker = Forwarder::new(
        db,
        targets,
        pulled,
        clock,
        metrics::ForwardMetrics::new(metrics.registry()),
        Duration::from_millis(settings.forward_poll_ms),
        wake,
    )
    .traced(traces);
    Some(worker.spawn(Duration::from_secs(settings.shutdown_grace_secs)))
}
