//! One delivery attempt, whatever carries it: the key every attempt of an event carries, what
//! an answer means, and when to try again. How a kind of destination sends is its own file
//! (`http`); the worker settles every kind's answer the same way.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rand::Rng;

use super::metrics::Class;
use crate::entities::delivery;
use crate::telemetry::traces::{Attempt, AttemptSpan, Traces};

/// The `Idempotency-Key` (and `webhook-id`) of the event with this key digest.
pub fn idempotency_key(key_digest: &[u8]) -> String {
    format!("ih_{}", hex::encode(key_digest))
}

/// How an attempt ended.
pub struct Answer {
    pub class: Class,
    pub status: Option<u16>,
    /// `Retry-After` of a 429 or 503, in seconds.
    pub retry_after: Option<u64>,
    /// For a failure: what to show the operator.
    pub error: String,
    /// What a failure means beyond "try again later".
    pub fault: Fault,
}

/// What a failed attempt means beyond "try again after the backoff".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// An ordinary answer.
    #[default]
    None,
    /// Sent, and no answer came back (a timeout, a cut connection): the destination may have
    /// it. A broker that drops a message id it already has (NATS JetStream) must see the
    /// retry inside its duplicate window, so the row stays marked (its lease runs on until
    /// the retry is due) and the retry is claimed past a pause (`deliveries::claim`).
    InDoubt,
    /// The destination can never take this delivery (larger than the broker's
    /// `max_payload`): dead at once, not retried until `max_attempts`.
    Undeliverable,
    /// The destination is set up wrong (its stream is missing, or does not capture the
    /// subject, or its duplicate window is too short): it is paused with reason
    /// `misconfigured` until an operator fixes it and resumes it.
    Misconfigured,
}

impl Answer {
    /// A broker took it (no HTTP status).
    pub fn taken() -> Self {
        Self::failed(Class::Success, String::new(), Fault::None)
    }

    /// An attempt that did not deliver, without an HTTP status (a broker's answer, or none).
    pub fn failed(class: Class, error: String, fault: Fault) -> Self {
        Self {
            class,
            status: None,
            retry_after: None,
            error,
            fault,
        }
    }

    pub fn delivered(&self) -> bool {
        self.class == Class::Success
    }

    /// The app asked for room: a 429, or a 503 that says when to come back. It holds the
    /// whole destination back (`forward::hold`); a 503 without `Retry-After` is an ordinary
    /// failure.
    pub fn throttled(&self) -> bool {
        match self.status {
            Some(429) => true,
            Some(503) => self.retry_after.is_some(),
            _ => false,
        }
    }
}

/// What a check of a broker's setup (a stream, an exchange) found.
pub enum Verdict {
    /// A definite answer that the destination is set up wrong.
    Misconfigured(String),
    /// No answer (the broker is down, or did not answer in time).
    Unreachable(String),
}

/// How long a launch waits for a broker to answer its check before it starts the destination
/// unchecked (checked, then, on its first attempt once connected).
const LAUNCH_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// A broker destination's check at launch (`check`: its stream's or exchange's): a definite
/// misconfiguration refuses to launch; a broker that does not answer, or not in time, lets
/// the destination start (ingestion never waits for a broker), with a warning.
pub async fn launch_check(
    destination: &str,
    check: impl std::future::Future<Output = Result<(), Verdict>>,
) -> Result<(), String> {
    let why = match tokio::time::timeout(LAUNCH_WAIT, check).await {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(Verdict::Misconfigured(why))) => return Err(why),
        Ok(Err(Verdict::Unreachable(why))) => why,
        Err(_) => format!("no answer within {} s", LAUNCH_WAIT.as_secs()),
    };
    tracing::warn!(destination, error = %why,
        "forwarding: the broker cannot be reached now; the destination starts, retries, and \
         checks its setup once connected");
    Ok(())
}

/// The span of an attempt at `row`, when its event is traced and sampled.
pub fn span(traces: Option<&Traces>, row: &delivery::Model) -> Option<AttemptSpan> {
    let attempt = Attempt {
        source: &row.source,
        destination: &row.destination,
        event_type: &row.event_type,
        key_digest: row.event_key(),
        number: u32::try_from(row.attempts).unwrap_or(0),
    };
    traces?.attempt(row.traceparent.as_deref(), &attempt)
}

/// How one kind of destination carries a delivery. Called with no transaction and no
/// ingest connection held; an attempt that outlives the target's `timeout` is cut off
/// by the kind itself (the row's lease lasts a little longer, see `Target::lease`).
#[async_trait]
pub trait Transport: Send + Sync {
    /// Sends the delivery once and says how it went.
    async fn send(&self, row: &delivery::Model, now: DateTime<Utc>) -> Answer;

    /// Whether a retry after an unknown outcome must come soon (the destination dedupes by
    /// message id within a window): such rows are claimed past a pause.
    fn retries_in_doubt_first(&self) -> bool {
        false
    }

    /// Checks, at launch, what the kind can check of its destination before the first
    /// attempt (`max_body`: the largest body its source accepts). An error refuses to launch.
    async fn check_at_launch(&self, _max_body: u64) -> Result<(), String> {
        Ok(())
    }
}

/// The crash tests' fault point (the binary of the `test-handlers` feature only): with
/// `IDEMHOOK_TEST_EXIT_AFTER_DELIVERY` set, the process exits as soon as a destination has
/// taken a delivery and before idemhook records it, the window in which only the
/// destination's own dedupe (a stream's message id, an app's `Idempotency-Key`) keeps the
/// delivery once.
#[cfg(feature = "test-handlers")]
pub fn crash_after_delivery(answer: &Answer) {
    if answer.delivered() && std::env::var_os("IDEMHOOK_TEST_EXIT_AFTER_DELIVERY").is_some() {
        tracing::error!("test fault point: exiting after a delivery, before recording it");
        std::process::exit(86);
    }
}

/// The wait before attempt `attempts + 1`: exponential from `base`, doubled per attempt, up
/// to `max`, with full jitter between the base and that bound (many deliveries failing
/// together do not retry together). A `Retry-After` longer than that wins, capped at `max`.
pub fn backoff(base: Duration, max: Duration, attempts: u32, retry_after: Option<u64>) -> Duration {
    let exp = base
        .saturating_mul(1u32 << attempts.saturating_sub(1).min(30))
        .min(max)
        .max(base);
    let jittered = if exp > base {
        rand::thread_rng().gen_range(base..=exp)
    } else {
        base
    };
    match retry_after {
        Some(secs) => jittered.max(Duration::from_secs(secs).min(max)),
        None => jittered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_from_the_base_to_the_cap_and_honours_retry_after() {
        let (base, max) = (Duration::from_millis(100), Duration::from_secs(1));
        for attempts in 1..40 {
            let d = backoff(base, max, attempts, None);
            assert!(d >= base && d <= max, "{attempts}: {d:?}");
        }
        assert_eq!(backoff(base, max, 1, None), base);
        assert_eq!(backoff(base, max, 1, Some(60)), max);
        assert!(backoff(base, Duration::from_secs(3600), 1, Some(5)) >= Duration::from_secs(5));
    }
}
