//! Export off the request path: finished spans go into a bounded queue, and one task sends
//! them to the collector in batches. A span that finds the queue full is dropped and counted
//! (`idemhook_trace_spans_dropped_total`), never waited for, as are the spans of an export
//! that fails or times out: a collector that is slow, down or hanging costs spans, not
//! requests.
//!
//! The SDK's own batch processor would do the batching too, but it counts its drops only in
//! its internal log; operators need them as a metric beside the other drops.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use opentelemetry::Context;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use prometheus::IntCounter;
use tokio::sync::{mpsc, Notify};

/// Most spans one export request carries.
const BATCH: usize = 512;
/// How long the task lets spans gather before it sends a partial batch.
const GATHER: Duration = Duration::from_millis(500);

/// The processor the tracer provider calls as each span ends.
#[derive(Debug)]
pub struct Queue {
    spans: mpsc::Sender<SpanData>,
    dropped: IntCounter,
    /// Wakes the export task to send what is queued now.
    flush: Arc<Notify>,
    /// Set at shutdown: the task sends what is queued and ends.
    closing: Arc<AtomicBool>,
}

/// The export task, to wait for at shutdown.
pub struct Exporting {
    flush: Arc<Notify>,
    closing: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Exporting {
    /// Sends what is queued, waiting at most `grace` for the collector.
    pub async fn finish(self, grace: Duration) {
        self.closing.store(true, Ordering::Release);
        self.flush.notify_one();
        if tokio::time::timeout(grace, self.task).await.is_err() {
            tracing::warn!("traces: the collector did not take the last spans in time");
        }
    }
}

impl Queue {
    /// The queue of `capacity` spans and the task that empties it into `exporter`, each
    /// export cut off after `timeout`.
    pub fn start<E: SpanExporter + 'static>(
        exporter: E,
        capacity: usize,
        timeout: Duration,
        dropped: IntCounter,
    ) -> (Self, Exporting) {
        let (spans, rx) = mpsc::channel(capacity);
        let flush = Arc::new(Notify::new());
        let closing = Arc::new(AtomicBool::new(false));
        let lost = dropped.clone();
        let task = tokio::spawn(export(
            exporter,
            rx,
            flush.clone(),
            closing.clone(),
            timeout,
            lost,
        ));
        let queue = Self {
            spans,
            dropped,
            flush: flush.clone(),
            closing: closing.clone(),
        };
        let exporting = Exporting {
            flush,
            closing,
            task,
        };
        (queue, exporting)
    }
}

impl SpanProcessor for Queue {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        if self.spans.try_send(span).is_err() {
            self.dropped.inc();
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.flush.notify_one();
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.closing.store(true, Ordering::Release);
        self.flush.notify_one();
        Ok(())
    }
}

/// Sends the queued spans in batches of up to [`BATCH`], one request at a time, until the
/// queue closes or shutdown has sent what was queued.
async fn export<E: SpanExporter>(
    exporter: E,
    mut rx: mpsc::Receiver<SpanData>,
    flush: Arc<Notify>,
    closing: Arc<AtomicBool>,
    timeout: Duration,
    lost: IntCounter,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => if n == 0 { return },
            () = flush.notified() => {}
        }
        let ending = closing.load(Ordering::Acquire);
        if ending {
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(span) => batch.push(span),
                    Err(_) => break,
                }
            }
        } else if batch.len() < BATCH {
            // Let a partial batch fill a little, unless a flush asks for it now.
            let gather = async {
                while batch.len() < BATCH {
                    let room = BATCH - batch.len();
                    if rx.recv_many(&mut batch, room).await == 0 {
                        break;
                    }
                }
            };
            tokio::select! {
                () = gather => {}
                () = tokio::time::sleep(GATHER) => {}
                () = flush.notified() => {}
            }
        }
        if !batch.is_empty() {
            let spans = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            send(&exporter, spans, timeout, &lost).await;
        }
        if ending && rx.is_empty() {
            return;
        }
        if ending {
            flush.notify_one(); // more than one batch was queued: go on without waiting
        }
    }
}

/// One export; the spans of one that fails or times out are counted as dropped too.
async fn send<E: SpanExporter>(
    exporter: &E,
    spans: Vec<SpanData>,
    timeout: Duration,
    lost: &IntCounter,
) {
    let count = spans.len();
    let sent = tokio::time::timeout(timeout, exporter.export(spans)).await;
    if !matches!(sent, Ok(Ok(()))) {
        lost.inc_by(count as u64);
    }
    match sent {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(spans = count, error = %e, "traces: export failed; the spans are lost")
        }
        Err(_) => tracing::warn!(
            spans = count,
            timeout_secs = timeout.as_secs(),
            "traces: the collector did not answer in time; the spans are lost"
        ),
    }
}

/// The exporter's HTTP client: the one forwarding uses (reqwest, rustls), so tracing adds no
/// second HTTP stack. Each request is bounded by the client's timeout.
#[derive(Debug, Clone)]
pub struct Client(pub reqwest::Client);

#[async_trait::async_trait]
impl HttpClient for Client {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let response = self
            .0
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body)
            .send()
            .await?;
        let status = response.status();
        let headers = response.headers().clone();
        // The collector's answer is a small protobuf; its size is bounded all the same.
        let body = response.bytes().await?;
        let body = body.slice(..body.len().min(64 * 1024));
        let mut answer = Response::builder().status(status).body(body)?;
        *answer.headers_mut() = headers;
        Ok(answer)
    }
}
