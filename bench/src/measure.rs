//! What a measured run of `http` and `db-limit` shares: its connections, its length (a
//! duration, or a number of requests), and the label and file of its result.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(clap::Args)]
pub struct MeasureArgs {
    /// Concurrent connections.
    #[arg(long, short = 'c', default_value_t = 16)]
    pub concurrency: usize,
    /// Seconds to run the measured phase (default 10 unless --events is given).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Events in the measured phase (requests; for db-limit, transactions), instead of a
    /// duration.
    #[arg(long)]
    pub events: Option<u64>,
    /// Label for the report (e.g. "idemhook postgres").
    #[arg(long)]
    pub label: Option<String>,
    /// Write the result as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

impl MeasureArgs {
    /// How long the measured phase lasts; `None` when `--events` bounds it instead.
    pub fn length(&self) -> Option<Duration> {
        self.events
            .is_none()
            .then(|| Duration::from_secs_f64(self.duration.unwrap_or(10.0)))
    }

    /// The events the measured phase may send, shared by its connections ([`take`]).
    pub fn budget(&self) -> AtomicU64 {
        AtomicU64::new(self.events.unwrap_or(u64::MAX))
    }
}

/// Takes one event from `budget`; false once it is spent.
pub fn take(budget: &AtomicU64) -> bool {
    budget
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| b.checked_sub(1))
        .is_ok()
}
