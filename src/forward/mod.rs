//! Forwarding: every event of a source that lists the `forward` handler is delivered to the
//! user's own app, at least once, never lost, signed, with a key that lets the app apply it
//! once.
//!
//! The flow after the commit, continuing the crate's (route → key → shard → cache →
//! transaction):
//!
//! 1. [`outbox`]: the `forward` handler writes the event's outbox row (`deliveries`) in the
//!    event's transaction. Recorded and scheduled together, or neither.
//! 2. [`worker`]: each instance's worker claims due rows under a lease ([`lease`]), at most
//!    `concurrency` per source in flight, and
//! 3. [`attempt`]: sends each one (no transaction and no ingest connection held meanwhile),
//!    then settles the row: delivered on a 2xx (recorded in batches by `recorder`);
//!    otherwise retried after a backoff with full jitter (`Retry-After` honoured), and dead
//!    after `max_attempts`, kept and redeliverable.
//!
//! A down or slow app never touches ingestion: the answer to the provider is given at commit,
//! and the backlog lives in the database, not in memory (the worker holds at most
//! `concurrency` rows per source).

pub mod attempt;
pub mod lease;
pub mod metrics;
pub mod outbox;
mod recorder;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use tokio::sync::Notify;

pub use outbox::Forward;
pub use worker::Forwarder;

use crate::clock::Clock;
use crate::config::{Environment, Settings};
use crate::task::TaskGuard;

/// A forwarding source, resolved at launch.
pub struct Target {
    pub source: String,
    pub url: url::Url,
    /// The decoded `whsec_` key.
    pub secret: Vec<u8>,
    pub timeout: Duration,
    /// A little longer than `timeout`: a delivery cut off by a crash is retried by another
    /// instance once its lease runs out, about `timeout` later.
    pub lease: Duration,
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub concurrency: usize,
}

/// A nudge to the delivery worker: "there may be something to claim now". The `forward`
/// handler gives one when its event's transaction commits, and the recorder when it frees
/// slots; the worker otherwise sleeps `forward_poll_ms` between empty claims, which was most of
/// the commit → delivered time at moderate rates (BENCHMARKS.md). A nudge given while the
/// worker is busy is kept (one, however many arrive) and ends its next wait at once, so none is
/// lost. Rows committed by another instance are still found by the poll.
#[derive(Clone, Default)]
pub struct Wake(Arc<Notify>);

impl Wake {
    pub fn notify(&self) {
        self.0.notify_one();
    }

    pub async fn wait(&self) {
        self.0.notified().await;
    }
}

/// How much longer than the attempt's timeout a lease lasts: the time to settle the row.
const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// The forwarding sources, their secrets read from the environment. A missing, empty or
/// undecodable secret refuses to launch, naming the variable.
pub fn targets(settings: &Settings, env: &Environment) -> Result<Vec<Target>, String> {
    let mut targets = Vec::new();
    for (name, cfg) in &settings.sources {
        let Some(forward) = &cfg.forward else {
            continue;
        };
        let key = format!("idemhook.sources.{name}.forward.secret_env");
        let var = &forward.secret_env;
        let value = env.get(var).map(str::trim).unwrap_or("");
        if value.is_empty() {
            return Err(format!(
                "{key} names {var}, which is not set or empty: deliveries must be signed"
            ));
        }
        let secret = wire::signature::standard_secret(value)
            .map_err(|e| format!("the forward secret in {var} is invalid: {e}"))?;
        if secret.is_empty() {
            return Err(format!(
                "the forward secret in {var} is empty once decoded: anyone could sign with it"
            ));
        }
        let url = url::Url::parse(&forward.url)
            .map_err(|e| format!("idemhook.sources.{name}.forward.url: {e}"))?;
        let timeout = Duration::from_secs(forward.timeout_secs);
        targets.push(Target {
            source: name.clone(),
            url,
            secret,
            timeout,
            lease: timeout + LEASE_MARGIN,
            max_attempts: forward.max_attempts,
            backoff_base: Duration::from_millis(forward.backoff_base_ms),
            backoff_max: Duration::from_secs(forward.backoff_max_secs),
            concurrency: forward.concurrency,
        });
    }
    Ok(targets)
}

/// Lowers each target's `concurrency` so that its deliveries in flight, each holding a body of
/// up to its source's limit, fit `budget_mib` (`forward_budget_mib`). A budget that cannot hold
/// one body refuses to launch: that source's large events could never be delivered.
pub fn bound_slots(
    targets: &mut [Target],
    max_body: impl Fn(&str) -> u64,
    budget_mib: u32,
) -> Result<(), String> {
    let budget = u64::from(budget_mib) * 1024 * 1024;
    for target in targets {
        let body = max_body(&target.source).max(1);
        let fits = usize::try_from(budget / body).unwrap_or(usize::MAX);
        if fits == 0 {
            return Err(format!(
                "idemhook.forward_budget_mib = {budget_mib} cannot hold one body of source \
                 {:?} ({body} bytes): raise it to at least {} or lower that source's max_body",
                target.source,
                body.div_ceil(1024 * 1024)
            ));
        }
        if fits < target.concurrency {
            tracing::info!(
                source = %target.source,
                concurrency = fits,
                configured = target.concurrency,
                "forwarding: concurrency lowered so that bodies in flight fit forward_budget_mib"
            );
            target.concurrency = fits;
        }
    }
    Ok(())
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
) -> Result<Option<TaskGuard>, String> {
    if targets.is_empty() || !settings.forward_worker {
        return Ok(None);
    }
    let worker = Forwarder::new(
        db,
        targets,
        clock,
        metrics::ForwardMetrics::new(metrics.registry()),
        Duration::from_millis(settings.forward_poll_ms),
        wake,
    )?;
    Ok(Some(
        worker.spawn(Duration::from_secs(settings.shutdown_grace_secs)),
    ))
}
