//! Prometheus metrics, served at `GET /metrics`.
//!
//! Counters are labelled by source. Each configured source gets its handles once, at launch
//! ([`Metrics::source`], held on the source itself); deliveries to unknown sources share the
//! `_unknown` handles, so a scanner hitting random URLs cannot grow the label set (and the
//! process's memory) without bound.

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The label for deliveries to a source that is not configured.
pub const UNKNOWN_SOURCE: &str = "_unknown";

/// Buckets from 50 µs to 2.5 s: the idempotency check is meant to sit at the bottom of this
/// range and the 100 ms budget near the middle.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5,
];

mod rejection;

pub use rejection::Rejection;

/// One source's counters, resolved once at launch, so the hot path bumps a handle instead of
/// hashing label values under a lock.
#[derive(Clone)]
pub struct SourceMetrics {
    pub received: IntCounter,
    pub processed: IntCounter,
    pub duplicate: IntCounter,
    pub failed: IntCounter,
    pub payload_mismatches: IntCounter,
    /// Events a handler refused for good (settled `rejected`); not to be confused with
    /// `rejected`, the deliveries refused before any handler ran.
    pub handler_rejections: IntCounter,
    pub processed_seconds: Histogram,
    pub duplicate_seconds: Histogram,
    /// `idemhook_events_rejected_total` by reason, in the order of `Rejection::ALL`.
    rejected: Vec<IntCounter>,
}

impl SourceMetrics {
    pub fn rejected(&self, reason: Rejection) -> &IntCounter {
        let i = Rejection::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or_default();
        &self.rejected[i]
    }
}

pub struct Metrics {
    registry: Registry,
    by_source: BySource,
    /// The handles of every source that is not configured.
    pub unknown_source: SourceMetrics,
    /// Cache lookup on a hit; cache lookup plus the dedupe insert on a miss.
    pub check_seconds: HistogramVec,
    /// `check_seconds` for hits and misses, resolved once (the hot path skips label hashing).
    pub check_hit: Histogram,
    pub check_miss: Histogram,
    pub cache_hits: IntCounter,
    pub cache_misses: IntCounter,
    pub cache_entries: IntGauge,
    pub queue_depth: IntGaugeVec,
    pub db_retries: IntCounter,
    /// Events per group commit (batches of more than one event).
    pub batch_size: prometheus::Histogram,
    /// Group commits abandoned for per-event processing (a duplicate or failure inside).
    pub batch_fallbacks: IntCounter,
    /// Group commits written as one statement (PostgreSQL; handlers that hand over rows).
    pub batch_statements: IntCounter,
    pub db_up: IntGauge,
    /// Readiness checks that reached the database (probes in between reuse the answer).
    pub readiness_checks: IntCounter,
    pub sweeper_deleted: IntCounterVec,
    pub sweeper_last_run: Gauge,
    /// `sweep_interval_secs`, so an alert can say "not run for two intervals" whatever the
    /// setting (deploy/prometheus/alerts.yml).
    pub sweeper_interval: Gauge,
    /// Log lines dropped because stdout could not keep up (`telemetry`), brought up to date
    /// at each scrape.
    log_dropped: IntCounter,
    log_sync: std::sync::Mutex<()>,
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

/// The counters labelled by source, from which each source's handles are taken.
struct BySource {
    received: IntCounterVec,
    processed: IntCounterVec,
    duplicate: IntCounterVec,
    failed: IntCounterVec,
    payload_mismatches: IntCounterVec,
    handler_rejections: IntCounterVec,
    rejected: IntCounterVec,
    /// From the body being read to the answer, for processed and duplicate events.
    processing_seconds: HistogramVec,
}

impl BySource {
    fn handles(&self, label: &str) -> SourceMetrics {
        SourceMetrics {
            received: self.received.with_label_values(&[label]),
            processed: self.processed.with_label_values(&[label]),
            duplicate: self.duplicate.with_label_values(&[label]),
            failed: self.failed.with_label_values(&[label]),
            payload_mismatches: self.payload_mismatches.with_label_values(&[label]),
            handler_rejections: self.handler_rejections.with_label_values(&[label]),
            processed_seconds: self
                .processing_seconds
                .with_label_values(&[label, "processed"]),
            duplicate_seconds: self
                .processing_seconds
                .with_label_values(&[label, "duplicate"]),
            rejected: Rejection::ALL
                .iter()
                .map(|r| self.rejected.with_label_values(&[label, r.label()]))
                .collect(),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            let h = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
                labels,
            )
            .expect("valid metric");
            r.register(Box::new(h.clone())).expect("unique metric");
            h
        };
        let check_seconds = histogram(
            "idemhook_idempotency_check_seconds",
            "Time to decide whether an event is new: cache lookup (hit) or cache lookup plus dedupe insert (miss)",
            &["result"],
        );
        let processing_seconds = histogram(
            "idemhook_processing_seconds",
            "Time from the body being read to the answer, by source and outcome",
            &["source", "outcome"],
        );
        let int_counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            r.register(Box::new(c.clone())).expect("unique metric");
            c
        };
        let int_gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            r.register(Box::new(g.clone())).expect("unique metric");
            g
        };
        let queue_depth = IntGaugeVec::new(
            Opts::new(
                "idemhook_shard_queue_depth",
                "Events queued or in progress per shard",
            ),
            &["shard"],
        )
        .expect("valid metric");
        r.register(Box::new(queue_depth.clone()))
            .expect("unique metric");
        let sweeper_last_run = Gauge::new(
            "idemhook_sweeper_last_run_timestamp_seconds",
            "Unix time at which the retention sweeper last finished (its launch, until the first \
             sweep ends)",
        )
        .expect("valid metric");
        r.register(Box::new(sweeper_last_run.clone()))
            .expect("unique metric");
        let sweeper_interval = Gauge::new(
            "idemhook_sweeper_interval_seconds",
            "How often the retention sweeper runs (sweep_interval_secs)",
        )
        .expect("valid metric");
        r.register(Box::new(sweeper_interval.clone()))
            .expect("unique metric");
        let by_source = BySource {
            received: counter_vec(
                &r,
                "idemhook_events_received_total",
                "Deliveries received",
                &["source"],
            ),
            processed: counter_vec(
                &r,
                "idemhook_events_processed_total",
                "Events processed (committed)",
                &["source"],
            ),
            duplicate: counter_vec(
                &r,
                "idemhook_events_duplicate_total",
                "Deliveries answered duplicate",
                &["source"],
            ),
            failed: counter_vec(
                &r,
                "idemhook_events_failed_total",
                "Events whose transaction failed (500)",
                &["source"],
            ),
            payload_mismatches: counter_vec(
                &r,
                "idemhook_payload_mismatches_total",
                "Duplicates whose payload differs from the processed one",
                &["source"],
            ),
            handler_rejections: counter_vec(
                &r,
                "idemhook_handler_rejections_total",
                "Events a handler refused for good, settled as rejected (answered 200 rejected)",
                &["source"],
            ),
            rejected: counter_vec(
                &r,
                "idemhook_events_rejected_total",
                "Deliveries refused, by reason",
                &["source", "reason"],
            ),
            processing_seconds,
        };
        Self {
            unknown_source: by_source.handles(UNKNOWN_SOURCE),
            by_source,
            check_hit: check_seconds.with_label_values(&["hit"]),
            check_miss: check_seconds.with_label_values(&["miss"]),
            check_seconds,
            cache_hits: int_counter("idemhook_cache_hits_total", "Duplicates answered from the cache"),
            cache_misses: int_counter("idemhook_cache_misses_total", "Cache lookups that went to the database"),
            cache_entries: int_gauge("idemhook_cache_entries", "Committed keys in the cache"),
            queue_depth,
            db_retries: int_counter(
                "idemhook_db_retries_total",
                "Transactions rerun after a deadlock, lock timeout or serialization/certification conflict",
            ),
            batch_size: {
                let h = prometheus::Histogram::with_opts(
                    HistogramOpts::new("idemhook_batch_size", "Events committed per group commit")
                        .buckets(vec![2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0]),
                )
                .expect("valid metric");
                r.register(Box::new(h.clone())).expect("unique metric");
                h
            },
            batch_fallbacks: int_counter(
                "idemhook_batch_fallbacks_total",
                "Group commits rolled back and redone event by event (a duplicate, failure or conflict inside)",
            ),
            batch_statements: int_counter(
                "idemhook_batch_statements_total",
                "Group commits written as one statement (PostgreSQL, handlers that hand over rows)",
            ),
            db_up: int_gauge("idemhook_database_up", "1 while the database answers, 0 after it failed"),
            readiness_checks: int_counter(
                "idemhook_readiness_checks_total",
                "Readiness checks that queried the database (probes within a second reuse the answer)",
            ),
            sweeper_deleted: counter_vec(
                &r,
                "idemhook_sweeper_rows_deleted_total",
                "Rows deleted by the retention sweeper",
                &["table"],
            ),
            sweeper_last_run,
            sweeper_interval,
            log_dropped: int_counter(
                "idemhook_log_lines_dropped_total",
                "Log lines dropped because stdout could not keep up (never blocking a request)",
            ),
            log_sync: std::sync::Mutex::new(()),
            registry: r,
        }
    }

    /// The handles of the source labelled `label`. Called once per configured source at
    /// launch; the handles live on the source.
    pub fn source(&self, label: &str) -> SourceMetrics {
        self.by_source.handles(label)
    }

    /// The registry, for a part of the app that keeps its own metrics (`forward`).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        // Raised to the writer's count, one scrape at a time (two at once would both add).
        {
            let _one = self.log_sync.lock().unwrap_or_else(|e| e.into_inner());
            let dropped = crate::telemetry::dropped_lines();
            let counted = self.log_dropped.get();
            if dropped > counted {
                self.log_dropped.inc_by(dropped - counted);
            }
        }
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scanner's made-up names reach no label: the route counts any name it does not know
    /// on `unknown_source` (`metrics_count_every_outcome` in tests/api/operations.rs sends two
    /// to the real app), and only [`Metrics::source`] makes labels, at launch, for configured
    /// sources. After a hundred unknown deliveries the labels are `demo` and `_unknown` only.
    #[test]
    fn unknown_sources_share_one_label() {
        let m = Metrics::new();
        let demo = m.source("demo");
        demo.received.inc();
        for _ in 0..100 {
            m.unknown_source.received.inc();
            m.unknown_source.rejected(Rejection::UnknownSource).inc();
        }
        let text = m.render();
        assert!(
            text.contains(r#"idemhook_events_received_total{source="demo"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"idemhook_events_received_total{source="_unknown"} 100"#),
            "{text}"
        );
        assert!(text.contains(
            r#"idemhook_events_rejected_total{reason="unknown_source",source="_unknown"} 100"#
        ));
        let labels: std::collections::BTreeSet<&str> = text
            .split("source=\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .collect();
        assert_eq!(
            labels,
            std::collections::BTreeSet::from(["_unknown", "demo"]),
            "{text}"
        );
    }
}
