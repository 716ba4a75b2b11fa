//! The forwarding metrics: what an operator pages on (dead deliveries, an old pending one)
//! and what tells them how far behind the app is.

use chrono::{DateTime, Utc};
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};
use sea_orm::DatabaseConnection;

use super::{brakes, deliveries};
use crate::entities::destination;

/// Commit to delivered: from a few milliseconds (the poll interval) to the backoff cap.
const DELIVERY_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0,
];

/// How an attempt ended, as the attempts counter labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Success,
    Redirect,
    ClientError,
    ServerError,
    Timeout,
    Connect,
    /// A broker refused it (a nack, a message too large, no stream for the subject).
    Rejected,
}

impl Class {
    pub fn of_status(status: u16) -> Self {
        match status {
            200..=299 => Class::Success,
            300..=399 => Class::Redirect,
            400..=499 => Class::ClientError,
            _ => Class::ServerError,
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Class::Success => "2xx",
            Class::Redirect => "3xx",
            Class::ClientError => "4xx",
            Class::ServerError => "5xx",
            Class::Timeout => "timeout",
            Class::Connect => "connect",
            Class::Rejected => "rejected",
        }
    }
}

/// What an attempt led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    Delivered,
    Retry,
    Dead,
}

impl Settled {
    pub fn label(self) -> &'static str {
        match self {
            Settled::Delivered => "delivered",
            Settled::Retry => "retry",
            Settled::Dead => "dead",
        }
    }
}

#[derive(Clone)]
pub struct ForwardMetrics {
    attempts: IntCounterVec,
    latency: HistogramVec,
    pub pending: IntGaugeVec,
    pub oldest_pending_seconds: IntGaugeVec,
    pub dead: IntGaugeVec,
    /// 1 while a destination is paused (by an operator), 0 otherwise.
    paused: IntGaugeVec,
    /// Claims lost to another instance (a Galera certification conflict at COMMIT).
    pub claims_lost: IntCounter,
}

fn register<C: prometheus::core::Collector + Clone + 'static>(registry: &Registry, c: C) -> C {
    if let Err(e) = registry.register(Box::new(c.clone())) {
        tracing::warn!(error = %e, "forwarding metric not registered");
    }
    c
}

impl ForwardMetrics {
    pub fn new(registry: &Registry) -> Self {
        let gauge = |name: &str, help: &str| {
            register(
                registry,
                IntGaugeVec::new(Opts::new(name, help), &["source", "destination"])
                    .expect("valid metric"),
            )
        };
        Self {
            attempts: register(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "idemhook_delivery_attempts_total",
                        "Delivery attempts to the app, by what the attempt led to and how it ended",
                    ),
                    &["source", "destination", "outcome", "class"],
                )
                .expect("valid metric"),
            ),
            latency: register(
                registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "idemhook_delivery_latency_seconds",
                        "From the event's commit to its delivery (2xx from the app)",
                    )
                    .buckets(DELIVERY_BUCKETS.to_vec()),
                    &["source", "destination"],
                )
                .expect("valid metric"),
            ),
            pending: gauge(
                "idemhook_deliveries_pending",
                "Deliveries committed and not yet delivered or dead",
            ),
            oldest_pending_seconds: gauge(
                "idemhook_delivery_oldest_pending_seconds",
                "Age of the oldest pending delivery (0 when none)",
            ),
            dead: gauge(
                "idemhook_deliveries_dead",
                "Deliveries that ran out of attempts (kept, redeliverable)",
            ),
            paused: register(
                registry,
                IntGaugeVec::new(
                    Opts::new(
                        "idemhook_destination_paused",
                        "1 while the destination is paused: its deliveries wait, none is attempted",
                    ),
                    &["source", "destination"],
                )
                .expect("valid metric"),
            ),
            claims_lost: register(
                registry,
                IntCounter::new(
                    "idemhook_delivery_claims_lost_total",
                    "Delivery claims another instance won (nothing delivered twice)",
                )
                .expect("valid metric"),
            ),
        }
    }

    pub fn attempt(&self, source: &str, destination: &str, settled: Settled, class: Class) {
        self.attempts
            .with_label_values(&[source, destination, settled.label(), class.label()])
            .inc();
    }

    pub fn latency(&self, source: &str, destination: &str) -> Histogram {
        self.latency.with_label_values(&[source, destination])
    }

    pub fn paused(&self, source: &str, destination: &str) -> IntGauge {
        self.paused.with_label_values(&[source, destination])
    }

    /// Sets the backlog and pause gauges of `destinations`, (source, name), from the database;
    /// returns every destination's row (the worker's probes read them). A read that fails
    /// leaves them as they were.
    pub async fn refresh<'a>(
        &self,
        db: &DatabaseConnection,
        destinations: impl Iterator<Item = (&'a str, &'a str)>,
        now: DateTime<Utc>,
    ) -> Vec<destination::Model> {
        let rows = brakes::all(db).await.unwrap_or_default();
        let Ok(backlogs) = deliveries::backlogs(db).await else {
            return rows;
        };
        for (source, name) in destinations {
            let key = (source.to_owned(), name.to_owned());
            let backlog = backlogs.get(&key).cloned().unwrap_or_default();
            let [p, age, d] = self.gauges(source, name);
            p.set(i64::try_from(backlog.pending).unwrap_or(i64::MAX));
            age.set(
                backlog
                    .oldest_pending
                    .map_or(0, |t| (now - t).num_seconds().max(0)),
            );
            d.set(i64::try_from(backlog.dead).unwrap_or(i64::MAX));
            let paused = rows
                .iter()
                .any(|row| row.source == source && row.name == name && row.paused_reason.is_some());
            self.paused(source, name).set(i64::from(paused));
        }
        rows
    }

    pub fn gauges(&self, source: &str, destination: &str) -> [IntGauge; 3] {
        let labels = [source, destination];
        [
            self.pending.with_label_values(&labels),
            self.oldest_pending_seconds.with_label_values(&labels),
            self.dead.with_label_values(&labels),
        ]
    }
}
