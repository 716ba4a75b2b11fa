//! Latency histograms, results, and how they are printed and saved.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Microsecond latencies from 1 µs to 60 s, 3 significant figures.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

#[derive(Debug, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct RunResult {
    pub mode: String,
    pub target: String,
    pub concurrency: usize,
    pub duplicates_percent: u8,
    /// The offered load (`--rate`), when the run was paced rather than saturating.
    pub offered_rate: Option<f64>,
    pub seconds: f64,
    pub requests: u64,
    pub throughput_per_sec: f64,
    pub latency: Latency,
    pub status_counts: BTreeMap<String, u64>,
    /// Distinct new events sent, and what the server says it processed meanwhile.
    pub new_events_sent: Option<u64>,
    pub server_processed: Option<u64>,
    pub server_duplicates: Option<u64>,
    /// The server's own idempotency-check p99 (a histogram bucket's upper bound), in ms.
    pub server_check_p99_hit_ms: Option<f64>,
    pub server_check_p99_miss_ms: Option<f64>,
    /// `false` when the server's processed count differs from the new events sent: such a
    /// run lost or double-counted events and is not a result.
    pub consistent: bool,
}

impl RunResult {
    pub fn new(
        mode: &str,
        target: &str,
        concurrency: usize,
        elapsed: Duration,
        h: &Histogram<u64>,
    ) -> Self {
        let seconds = elapsed.as_secs_f64();
        Self {
            mode: mode.to_owned(),
            target: target.to_owned(),
            concurrency,
            duplicates_percent: 0,
            offered_rate: None,
            seconds,
            requests: h.len(),
            throughput_per_sec: h.len() as f64 / seconds.max(f64::EPSILON),
            latency: Latency::of(h),
            status_counts: BTreeMap::new(),
            new_events_sent: None,
            server_processed: None,
            server_duplicates: None,
            server_check_p99_hit_ms: None,
            server_check_p99_miss_ms: None,
            consistent: true,
        }
    }

    pub fn print(&self) {
        let opt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.3}"));
        println!(
            "{:<9} {:<40} c={:<3} dup={:>3}%{} {:>9.0}/s  p50 {:>7.3} ms  p90 {:>7.3}  p99 {:>7.3}  p99.9 {:>7.3}  max {:>8.3}  check-p99 hit {} miss {}  statuses {:?}{}",
            self.mode,
            self.target,
            self.concurrency,
            self.duplicates_percent,
            self.offered_rate
                .map_or(String::new(), |r| format!(" rate={r:.0}/s")),
            self.throughput_per_sec,
            self.latency.p50_ms,
            self.latency.p90_ms,
            self.latency.p99_ms,
            self.latency.p999_ms,
            self.latency.max_ms,
            opt(self.server_check_p99_hit_ms),
            opt(self.server_check_p99_miss_ms),
            self.status_counts,
            if self.consistent { "" } else { "  INCONSISTENT: events lost or double-counted" }
        );
    }

    pub fn save(&self, path: Option<&std::path::Path>) -> Result<(), String> {
        if let Some(path) = path {
            let json = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
            std::fs::write(path, json).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(())
    }
}
