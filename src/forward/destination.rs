//! A destination: where a source's deliveries go, resolved at launch, and the seam between the
//! worker and each kind of destination.
//!
//! The worker claims, limits, retries, settles and counts deliveries the same way for every
//! kind; a kind only says how one attempt is carried (`attempt::Transport`) and what its
//! answer was ([`Answer`]). `http` is the one kind today; another (a broker, a pull
//! consumer) is a file implementing `Transport` plus its arm where [`targets`] reads the
//! config.

use std::time::Duration;

use super::attempt::Transport;
use super::{http, nats, rabbitmq};
use crate::config::{destination_table, DestinationKind, Environment, ForwardConfig, Settings};

/// A destination of a source, resolved at launch.
pub struct Target {
    pub source: String,
    /// Its name (`forward`: the source's forward table).
    pub name: String,
    /// How this destination's deliveries are carried.
    pub transport: Box<dyn Transport>,
    pub timeout: Duration,
    /// A little longer than `timeout`: a delivery cut off by a crash is retried by another
    /// instance once its lease runs out, about `timeout` later.
    pub lease: Duration,
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub concurrency: usize,
    /// The circuit breaker: failed attempts in a row that pause the destination (0: never),
    /// and how often a paused one is probed.
    pub pause_after_failures: u32,
    pub probe: Duration,
    /// Attempts a second, across the fleet (`None`: no limit).
    pub rate_per_sec: Option<u32>,
    /// Rows this instance settled in doubt (`Fault::InDoubt`), with when each retry is due:
    /// the worker claims them by id when due, past the brakes and the rate limit, so that a
    /// destination that dedupes within a window sees the retry in time.
    pub doubts: std::sync::Mutex<Vec<(i64, chrono::DateTime<chrono::Utc>)>>,
}

impl Target {
    /// Notes a row settled in doubt, its retry due `at`.
    pub fn doubt(&self, id: i64, at: chrono::DateTime<chrono::Utc>) {
        if let Ok(mut doubts) = self.doubts.lock() {
            doubts.push((id, at));
        }
    }

    /// Takes the rows in doubt whose retry is due (their lease, kept until then, ran out).
    pub fn due_doubts(&self, now: chrono::DateTime<chrono::Utc>) -> Vec<i64> {
        let Ok(mut doubts) = self.doubts.lock() else {
            return Vec::new();
        };
        if doubts.is_empty() {
            return Vec::new();
        }
        let (due, later): (Vec<_>, Vec<_>) = doubts.drain(..).partition(|(_, at)| *at < now);
        *doubts = later;
        due.into_iter().map(|(id, _)| id).collect()
    }
}

/// The configured destinations, (source, name): each source's forward table (named
/// `forward`) and its `destinations` tables.
pub fn destinations(settings: &Settings) -> Vec<(String, String)> {
    settings
        .sources
        .iter()
        .flat_map(|(source, cfg)| {
            cfg.destinations()
                .map(move |(name, _)| (source.clone(), name.to_owned()))
        })
        .collect()
}

/// Each configured destination's kind, by (source, name): what the operator's list shows.
pub fn kinds(settings: &Settings) -> std::collections::HashMap<(String, String), DestinationKind> {
    settings
        .sources
        .iter()
        .flat_map(|(source, cfg)| {
            cfg.destinations()
                .map(move |(name, d)| ((source.clone(), name.to_owned()), d.kind))
        })
        .collect()
}

/// Warns, at launch, of each destination that is no longer configured but still has
/// deliveries in the outbox: they are not attempted (nor lost) until it comes back or an
/// operator discards them. A database error only skips the warning.
pub async fn warn_removed(db: &impl sea_orm::ConnectionTrait, configured: &[(String, String)]) {
    let Ok(backlogs) = super::deliveries::backlogs(db).await else {
        return;
    };
    for ((source, name), backlog) in backlogs {
        if configured.iter().any(|(s, n)| *s == source && *n == name) {
            continue;
        }
        tracing::warn!(
            source = %source,
            destination = %name,
            pending = backlog.pending,
            dead = backlog.dead,
            "a destination with deliveries in the outbox is no longer configured: its pending \
             deliveries wait, unattempted; configure it again, or discard them (POST \
             /destinations/<source>/<name>/discard makes them dead, kept and redeliverable)"
        );
    }
}

/// How much longer than the attempt's timeout a lease lasts: the time to settle the row.
const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// Every source's destinations, their secrets read from the environment. A missing, empty or
/// undecodable secret refuses to launch, naming the variable. A broker's client starts
/// connecting in the background ([`check`] then checks what it can).
pub async fn targets(settings: &Settings, env: &Environment) -> Result<Vec<Target>, String> {
    let mut targets = Vec::new();
    let client = http::client()?;
    let poll = Duration::from_millis(settings.forward_poll_ms);
    for (source, cfg) in &settings.sources {
        for (name, forward) in cfg.destinations() {
            let table = destination_table(&format!("idemhook.sources.{source}"), name);
            let timeout = Duration::from_secs(forward.timeout_secs());
            let transport: Box<dyn Transport> = match forward.kind {
                DestinationKind::Http => {
                    Box::new(http_target(name, forward, &table, &client, env, timeout)?)
                }
                DestinationKind::Nats => {
                    let at = nats::Resolved {
                        source,
                        destination: name,
                        table: &table,
                        lease: timeout + LEASE_MARGIN,
                        poll,
                    };
                    Box::new(nats::Nats::new(forward, at, env).await?)
                }
                DestinationKind::Rabbitmq => {
                    Box::new(rabbitmq::Rabbitmq::new(forward, name, &table, env)?)
                }
                // Its consumer leases its deliveries (`forward::pull`): no worker pushes them.
                DestinationKind::Pull => continue,
            };
            targets.push(Target {
                source: source.to_owned(),
                name: name.to_owned(),
                transport,
                timeout,
                lease: timeout + LEASE_MARGIN,
                max_attempts: forward.max_attempts,
                backoff_base: Duration::from_millis(forward.backoff_base_ms),
                backoff_max: Duration::from_secs(forward.backoff_max_secs()),
                concurrency: forward.concurrency,
                pause_after_failures: forward.pause_after_failures,
                probe: Duration::from_secs(forward.probe_secs),
                rate_per_sec: forward.rate_per_sec,
                doubts: Default::default(),
            });
        }
    }
    Ok(targets)
}

/// Runs each kind's launch check (a broker's stream, see `nats`): an error refuses to launch.
pub async fn check(targets: &[Target], max_body: impl Fn(&str) -> u64) -> Result<(), String> {
    for target in targets {
        target
            .transport
            .check_at_launch(max_body(&target.source))
            .await?;
    }
    Ok(())
}

/// An `http` destination, resolved: `table` is its config key, as errors name it.
fn http_target(
    name: &str,
    forward: &ForwardConfig,
    table: &str,
    client: &reqwest::Client,
    env: &Environment,
    timeout: Duration,
) -> Result<http::Http, String> {
    // Every variable listed must hold a key: one not set while a secret is being rotated
    // would leave the app verifying against a key idemhook never signs with.
    let secrets = forward
        .secret_env
        .keys(env, wire::signature::standard_secret)
        .map_err(|e| format!("{table}.secret_env: {e}"))?
        .into_iter()
        .map(|(var, key)| {
            key.ok_or_else(|| {
                format!(
                    "{table}.secret_env names {var}, which is not set or empty: deliveries \
                     must be signed"
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let url = url::Url::parse(&forward.url).map_err(|e| format!("{table}.url: {e}"))?;
    Ok(http::Http::new(client.clone(), name, url, secrets, timeout))
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
                destination = %target.name,
                concurrency = fits,
                configured = target.concurrency,
                "forwarding: concurrency lowered so that bodies in flight fit forward_budget_mib"
            );
            target.concurrency = fits;
        }
    }
    Ok(())
}
