//! The `nats` destination kind: each delivery published into a NATS JetStream stream,
//! exactly once.
//!
//! **Exactly once in the stream.** Every attempt of a delivery carries the same `Nats-Msg-Id`
//! ([`message_id`]: the event's key, the destination, the row and its redelivery round), and
//! JetStream stores a message id once within the stream's `duplicate_window`: an attempt
//! whose ack was lost (a timeout, a cut connection, or this process killed between the ack
//! and its record) is published again and acked as a duplicate, which counts as delivered.
//! What keeps that inside the window:
//! - this kind's defaults (`timeout_secs` 5, `backoff_max_secs` 30) and a launch check that
//!   the worst gap between a publish and its retry ([`Nats::gap`]) fits the stream's window;
//! - an attempt whose outcome is unknown settles as `Fault::InDoubt`, and its retry is
//!   claimed past a pause (`deliveries::Brakes::InDoubtPast`).
//!
//! What could still store an event twice is in docs/forwarding.md ("What exactly once
//! means"): a retry that comes later than the window, e.g. every server unreachable for
//! longer than the window right after a lost ack.
//!
//! **The broker down or wrong.** The client connects in the background and reconnects by
//! itself (a restarted server, a dead node of a cluster: the client knows the others). At
//! launch the stream is checked when the broker answers (a definite misconfiguration refuses
//! to launch); otherwise, on the first attempt once it answers, and a misconfiguration found
//! then pauses the destination (`misconfigured`). A delivery larger than the server's
//! `max_payload` is dead at once.

use std::future::IntoFuture as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::{self, ErrorCode};
use async_nats::HeaderMap;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::attempt::{self, idempotency_key, Answer, Fault, Transport, Verdict};
use super::http::header_value;
use super::metrics::Class;
use crate::config::subject::{covers, Template};
use crate::config::{Environment, ForwardConfig};
use crate::entities::delivery;

/// `Nats-Msg-Id`: the same for every attempt of one round of one delivery, on every instance;
/// different per destination (two destinations on one stream must not dedupe each other),
/// per row (a forced replay writes new rows: published again) and per redelivery round.
pub fn message_id(row: &delivery::Model) -> String {
    format!(
        "{}:{}:{}:{}",
        idempotency_key(row.event_key()),
        row.destination,
        row.id,
        row.round
    )
}

/// One stream and the subjects a source's events are published to.
pub struct Nats {
    source: String,
    destination: String,
    /// What error messages call it: its config table.
    table: String,
    subject: Template,
    stream: String,
    timeout: Duration,
    /// The longest a retry may come after a publish whose outcome is unknown.
    gap: Duration,
    client: async_nats::Client,
    js: jetstream::Context,
    /// The stream was found and fits: checked once per connection's first attempt, and again
    /// after a publish the stream refused.
    checked: AtomicBool,
    /// The largest body the source accepts, for the warning of [`Nats::passed`].
    max_body: AtomicU64,
}

/// The settings [`Nats::new`] takes beyond the config table.
pub struct Resolved<'a> {
    pub source: &'a str,
    pub destination: &'a str,
    pub table: &'a str,
    /// The target's lease and the worker's poll: they bound the gap after a crash.
    pub lease: Duration,
    pub poll: Duration,
}

impl Nats {
    /// Connects in the background (never waits for the broker here: one that is down does not
    /// stop the launch) with the table's credentials.
    pub async fn new(
        config: &ForwardConfig,
        at: Resolved<'_>,
        env: &Environment,
    ) -> Result<Self, String> {
        let table = at.table;
        let mut options = async_nats::ConnectOptions::new()
            .name(format!("idemhook {}/{}", at.source, at.destination))
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(2))
            .event_callback(|event| async move {
                tracing::info!(event = %event, "forwarding: NATS connection");
            });
        if let Some(name) = &config.token_env {
            options = options.token(env.required(table, "token_env", name)?);
        }
        if let (Some(user), Some(password)) = (&config.user_env, &config.password_env) {
            let (user, password) = (
                env.required(table, "user_env", user)?,
                env.required(table, "password_env", password)?,
            );
            options = options.user_and_password(user, password);
        }
        if let Some(name) = &config.creds_file_env {
            let path = env.required(table, "creds_file_env", name)?;
            options = options
                .credentials_file(&path)
                .await
                .map_err(|e| format!("{table}.creds_file_env: cannot read {path:?}: {e}"))?;
        }
        let urls = config
            .urls
            .iter()
            .map(|u| u.parse::<async_nats::ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{table}.urls: {e}"))?;
        let client = options
            .connect(urls)
            .await
            .map_err(|e| format!("{table}: cannot start the NATS client: {e}"))?;
        let timeout = Duration::from_secs(config.timeout_secs());
        let mut js = jetstream::new(client.clone());
        js.set_timeout(timeout);
        let subject =
            Template::parse(&config.subject).map_err(|e| format!("{table}.subject: {e}"))?;
        let backoff_max = Duration::from_secs(config.backoff_max_secs());
        Ok(Self {
            source: at.source.to_owned(),
            destination: at.destination.to_owned(),
            table: table.to_owned(),
            subject,
            stream: config.stream.clone(),
            timeout,
            gap: Self::gap(timeout, backoff_max, at.lease, at.poll),
            client,
            js,
            checked: AtomicBool::new(false),
            max_body: AtomicU64::new(0),
        })
    }

    /// The longest time between a publish whose outcome is unknown and the retry's publish,
    /// which must fit the stream's `duplicate_window`: the ack's wait and then the backoff
    /// (a timeout), or the lease running out (this instance killed after the publish), plus
    /// the worker's poll to claim it and a margin for the claim itself.
    pub fn gap(
        timeout: Duration,
        backoff_max: Duration,
        lease: Duration,
        poll: Duration,
    ) -> Duration {
        (timeout + backoff_max).max(lease) + poll + Duration::from_secs(5)
    }

    /// The launch's check: when the broker answers within a few seconds, a definite
    /// misconfiguration refuses to launch; when it does not, the destination starts and runs
    /// the same check on its first attempt once connected.
    pub async fn check_at_launch(&self, max_body: u64) -> Result<(), String> {
        self.max_body.store(max_body, Ordering::Relaxed);
        let check = async { self.verify().await.map(|()| self.passed()) };
        attempt::launch_check(&self.destination, check).await
    }

    /// The stream passed its check, on this connection: not checked again until a publish is
    /// refused. A source whose bodies may exceed what the server takes is named (those
    /// deliveries go dead at once).
    fn passed(&self) {
        self.checked.store(true, Ordering::Relaxed);
        let max_body = self.max_body.load(Ordering::Relaxed);
        let max_payload = self.client.server_info().max_payload as u64;
        if max_payload > 0 && max_body > max_payload {
            tracing::warn!(
                source = %self.source,
                destination = %self.destination,
                max_body,
                max_payload,
                "forwarding: the source accepts bodies larger than the NATS server's \
                 max_payload: such events cannot be published and their deliveries to this \
                 destination go dead at once"
            );
        }
    }

    /// Whether the stream exists, captures this source's subjects and keeps message ids long
    /// enough.
    async fn verify(&self) -> Result<(), Verdict> {
        let table = &self.table;
        let stream = match self.js.get_stream(&self.stream).await {
            Ok(stream) => stream,
            Err(e) => {
                return Err(match e.kind() {
                    jetstream::context::GetStreamErrorKind::JetStream(err)
                        if err.error_code() == ErrorCode::STREAM_NOT_FOUND =>
                    {
                        Verdict::Misconfigured(format!(
                            "{table}.stream: the NATS stream {:?} does not exist: create it \
                             (idemhook publishes into a stream, it does not create one)",
                            self.stream
                        ))
                    }
                    _ => Verdict::Unreachable(e.to_string()),
                })
            }
        };
        let config = &stream.cached_info().config;
        let pattern = self.subject.pattern(&self.source);
        if !config.subjects.iter().any(|f| covers(f, &pattern)) {
            return Err(Verdict::Misconfigured(format!(
                "{table}.subject: the stream {:?} (subjects {:?}) does not capture {pattern:?}, \
                 the subjects of source {:?}",
                self.stream, config.subjects, self.source
            )));
        }
        let window = config.duplicate_window;
        if window < self.gap {
            return Err(Verdict::Misconfigured(format!(
                "{table}: the stream {:?} keeps message ids for {} s (duplicate_window), but a \
                 retry after a lost ack may come {} s later (timeout_secs + backoff_max_secs, \
                 or the lease, plus forward_poll_ms and 5 s): lower timeout_secs or \
                 backoff_max_secs, or raise the stream's duplicate_window",
                self.stream,
                window.as_secs(),
                self.gap.as_secs()
            )));
        }
        Ok(())
    }

    fn headers(&self, row: &delivery::Model) -> HeaderMap {
        let encode = header_value;
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", message_id(row).as_str());
        headers.insert("Nats-Expected-Stream", self.stream.as_str());
        headers.insert(
            "Content-Type",
            row.content_type.as_deref().unwrap_or("application/json"),
        );
        headers.insert("Idempotency-Key", idempotency_key(row.event_key()).as_str());
        headers.insert("Idemhook-Source", encode(&row.source).as_str());
        headers.insert("Idemhook-Event-Type", encode(&row.event_type).as_str());
        headers.insert("Idemhook-Event-Id", encode(&row.event_id).as_str());
        headers.insert("Idemhook-Destination", self.destination.as_str());
        headers.insert("Idemhook-Attempt", row.attempts.to_string().as_str());
        if let Some(traceparent) = &row.traceparent {
            headers.insert("traceparent", traceparent.as_str());
        }
        headers
    }

    async fn publish(&self, row: &delivery::Model) -> Answer {
        if !self.checked.load(Ordering::Relaxed) {
            match self.verify().await {
                Ok(()) => self.passed(),
                Err(Verdict::Misconfigured(why)) => {
                    return Answer::failed(Class::Rejected, why, Fault::Misconfigured)
                }
                Err(Verdict::Unreachable(why)) => {
                    return Answer::failed(
                        Class::Connect,
                        format!("connection: {why}"),
                        Fault::None,
                    )
                }
            }
        }
        let subject = self
            .subject
            .render(&row.source, &row.event_type, &row.event_id);
        let payload = row.payload.clone().into();
        // Sent or not: an error before the send is certain (nothing reached the broker).
        let publish = self
            .js
            .publish_with_headers(subject, self.headers(row), payload);
        let ack = match publish.await {
            Ok(ack) => ack,
            Err(e) => return self.refused(e.kind(), e.to_string(), false).await,
        };
        match tokio::time::timeout(self.timeout, ack.into_future()).await {
            Ok(Ok(_ack)) => Answer::taken(),
            Ok(Err(e)) => self.refused(e.kind(), e.to_string(), true).await,
            Err(_) => Answer::failed(
                Class::Timeout,
                "timeout: no ack from the stream (the retry publishes the same message id)"
                    .to_owned(),
                Fault::InDoubt,
            ),
        }
    }

    /// A publish that failed: `sent` says whether the message may have reached the broker.
    async fn refused(&self, kind: PublishErrorKind, error: String, sent: bool) -> Answer {
        match kind {
            PublishErrorKind::MaxPayloadExceeded => Answer::failed(
                Class::Rejected,
                format!(
                    "larger than the NATS server's max_payload ({} bytes): {error}",
                    self.client.server_info().max_payload
                ),
                Fault::Undeliverable,
            ),
            PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe if sent => Answer::failed(
                Class::Timeout,
                format!("{error} (the retry publishes the same message id)"),
                Fault::InDoubt,
            ),
            PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe => {
                Answer::failed(Class::Connect, format!("connection: {error}"), Fault::None)
            }
            // No stream took the subject, or another stream did: is it the setup or a moment
            // of a cluster electing a leader? Asked again before the next attempt.
            PublishErrorKind::StreamNotFound | PublishErrorKind::Other => {
                self.checked.store(false, Ordering::Relaxed);
                match self.verify().await {
                    Err(Verdict::Misconfigured(why)) => {
                        Answer::failed(Class::Rejected, why, Fault::Misconfigured)
                    }
                    _ => Answer::failed(Class::Rejected, error, Fault::None),
                }
            }
            _ => Answer::failed(Class::Rejected, error, Fault::None),
        }
    }
}

#[async_trait]
impl Transport for Nats {
    async fn send(&self, row: &delivery::Model, _now: DateTime<Utc>) -> Answer {
        self.publish(row).await
    }

    async fn check_at_launch(&self, max_body: u64) -> Result<(), String> {
        Nats::check_at_launch(self, max_body).await
    }

    fn retries_in_doubt_first(&self) -> bool {
        true
    }
}
