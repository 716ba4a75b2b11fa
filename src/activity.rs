//! The console's last hour: per source, what arrived each minute.
//!
//! Nothing new is counted on the request path. The per-source Prometheus counters
//! ([`SourceMetrics`]) already count every outcome; a task reads them once a minute and keeps
//! the readings of the last [`MINUTES`] minutes. A minute's activity is the difference of
//! two readings, and the minute in progress is the live counters minus the last reading, so
//! the overview moves as events arrive. The memory is fixed: sources are configured at
//! launch (an unknown source has no row), and the ring holds `MINUTES + 1` readings.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::clock::Clock;
use crate::metrics::{Rejection, SourceMetrics};
use crate::providers::Sources;
use crate::task::{OnStop, TaskGuard};

/// How far back the overview's chart goes.
pub const MINUTES: usize = 60;

/// What arrived for one source in some stretch of time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// New events, processed.
    pub new: u64,
    /// Deliveries of events already settled, answered without running anything.
    pub duplicates: u64,
    /// Handlers failed (500): rolled back, the provider retries.
    pub failed: u64,
    /// Handlers refused the event for good (settled `rejected`).
    pub rejected: u64,
    /// Refused before any handler: a bad signature, a malformed or oversized body (4xx).
    pub refused: u64,
    /// Turned away for load or an outage (503).
    pub overloaded: u64,
}

impl Counts {
    fn read(m: &SourceMetrics) -> Self {
        let sum = |reasons: &[Rejection]| reasons.iter().map(|r| m.rejected(*r).get()).sum();
        Counts {
            new: m.processed.get(),
            duplicates: m.duplicate.get(),
            failed: m.failed.get(),
            rejected: m.handler_rejections.get(),
            refused: sum(&[
                Rejection::BadRequest,
                Rejection::Unauthorized,
                Rejection::TooLarge,
            ]),
            overloaded: sum(&[
                Rejection::QueueFull,
                Rejection::Unavailable,
                Rejection::Timeout,
                Rejection::OverBudget,
            ]),
        }
    }

    /// `self - earlier`, for counters that only grow.
    fn since(self, earlier: Counts) -> Counts {
        Counts {
            new: self.new.saturating_sub(earlier.new),
            duplicates: self.duplicates.saturating_sub(earlier.duplicates),
            failed: self.failed.saturating_sub(earlier.failed),
            rejected: self.rejected.saturating_sub(earlier.rejected),
            refused: self.refused.saturating_sub(earlier.refused),
            overloaded: self.overloaded.saturating_sub(earlier.overloaded),
        }
    }

    fn add(self, other: Counts) -> Counts {
        Counts {
            new: self.new + other.new,
            duplicates: self.duplicates + other.duplicates,
            failed: self.failed + other.failed,
            rejected: self.rejected + other.rejected,
            refused: self.refused + other.refused,
            overloaded: self.overloaded + other.overloaded,
        }
    }
}

/// One reading of every source's counters, in [`Activity::sources`] order.
struct Reading {
    at: DateTime<Utc>,
    counts: Vec<Counts>,
}

/// One source's last hour.
#[derive(Debug, Clone, Serialize)]
pub struct SourceActivity {
    pub source: String,
    /// The whole window: the recorded minutes and the one in progress.
    pub total: Counts,
    /// New events and duplicates per minute over the last (up to) five minutes.
    pub per_minute: f64,
    /// Oldest first; the last entry is the minute in progress.
    pub minutes: Vec<Counts>,
}

/// The overview's numbers: each source's last hour, and when each minute began.
#[derive(Debug, Clone, Serialize)]
pub struct LastHour {
    /// The start of each minute in `minutes` (RFC 3339), oldest first.
    pub starts: Vec<String>,
    pub sources: Vec<SourceActivity>,
}

pub struct Activity {
    sources: Vec<(String, SourceMetrics)>,
    readings: Mutex<VecDeque<Reading>>,
    clock: Clock,
}

impl Activity {
    pub fn new(sources: &Sources, clock: Clock) -> Self {
        let mut named: Vec<(String, SourceMetrics)> = sources
            .iter()
            .map(|(name, s)| (name.clone(), s.metrics.clone()))
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let activity = Activity {
            sources: named,
            readings: Mutex::new(VecDeque::with_capacity(MINUTES + 1)),
            clock,
        };
        activity.record();
        activity
    }

    fn read(&self) -> Vec<Counts> {
        self.sources.iter().map(|(_, m)| Counts::read(m)).collect()
    }

    /// Takes a reading: the minute that just ended is closed, a new one starts.
    pub fn record(&self) {
        let reading = Reading {
            at: self.clock.now(),
            counts: self.read(),
        };
        let mut readings = self.readings.lock().unwrap_or_else(|e| e.into_inner());
        if readings.len() > MINUTES {
            readings.pop_front();
        }
        readings.push_back(reading);
    }

    /// Every source's last hour, the minute in progress included.
    pub fn last_hour(&self) -> LastHour {
        let live = self.read();
        let readings = self.readings.lock().unwrap_or_else(|e| e.into_inner());
        let starts = readings.iter().map(|r| r.at.to_rfc3339()).collect();
        let sources = self
            .sources
            .iter()
            .enumerate()
            .map(|(i, (name, _))| {
                let ends = readings
                    .iter()
                    .skip(1)
                    .map(|r| r.counts[i])
                    .chain([live[i]]);
                let minutes: Vec<Counts> = readings
                    .iter()
                    .zip(ends)
                    .map(|(start, end)| end.since(start.counts[i]))
                    .collect();
                let total = minutes.iter().fold(Counts::default(), |a, m| a.add(*m));
                let recent = &minutes[minutes.len().saturating_sub(5)..];
                let arrived: u64 = recent.iter().map(|m| m.new + m.duplicates).sum();
                SourceActivity {
                    source: name.clone(),
                    total,
                    per_minute: arrived as f64 / recent.len().max(1) as f64,
                    minutes,
                }
            })
            .collect();
        LastHour { starts, sources }
    }

    /// Takes a reading every minute until its guard stops it (told, or dropped with the app).
    fn spawn(self: Arc<Self>) -> TaskGuard {
        TaskGuard::spawn("activity", OnStop::Tell, |mut stopped| async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            tick.tick().await; // the first tick is immediate; `new` took that reading
            loop {
                tokio::select! {
                    _ = tick.tick() => self.record(),
                    _ = stopped.changed() => return,
                }
            }
        })
    }
}

/// The console's activity, its first reading taken now, and the task that takes the others.
pub fn start(sources: &Sources, clock: Clock) -> (Arc<Activity>, TaskGuard) {
    let activity = Arc::new(Activity::new(sources, clock));
    let task = activity.clone().spawn();
    (activity, task)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    fn activity(metrics: &SourceMetrics) -> Activity {
        Activity {
            sources: vec![("shop".into(), metrics.clone())],
            readings: Mutex::new(VecDeque::new()),
            clock: Clock::system(),
        }
    }

    #[test]
    fn minutes_are_differences_of_readings_and_the_last_is_live() {
        let m = Metrics::new().source("shop");
        let a = activity(&m);
        m.processed.inc_by(5);
        a.record();
        m.processed.inc_by(3);
        m.duplicate.inc_by(2);
        a.record();
        m.processed.inc();
        m.rejected(Rejection::Unauthorized).inc();
        m.rejected(Rejection::QueueFull).inc();
        let hour = a.last_hour();
        let shop = &hour.sources[0];
        assert_eq!(shop.minutes.len(), 2);
        assert_eq!((shop.minutes[0].new, shop.minutes[0].duplicates), (3, 2));
        assert_eq!(
            shop.minutes[1],
            Counts {
                new: 1,
                refused: 1,
                overloaded: 1,
                ..Counts::default()
            }
        );
        assert_eq!(
            shop.total.new, 4,
            "counts before the first reading are not in the window"
        );
        assert_eq!(shop.per_minute, 3.0);
    }

    #[test]
    fn the_window_holds_an_hour_of_readings() {
        let m = Metrics::new().source("shop");
        let a = activity(&m);
        for _ in 0..(MINUTES * 3) {
            m.processed.inc();
            a.record();
        }
        let hour = a.last_hour();
        assert_eq!(hour.starts.len(), MINUTES + 1);
        assert_eq!(hour.sources[0].minutes.len(), MINUTES + 1);
        assert_eq!(hour.sources[0].total.new, MINUTES as u64);
    }
}
