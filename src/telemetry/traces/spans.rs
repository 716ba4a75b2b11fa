//! The spans of an event's trace, built from times taken on the way (a phase's span is made
//! once the phase is over, with its own start and end): the request holds no span open
//! across the shard and the writers, and an untraced event builds none.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use opentelemetry::trace::{
    Link, Span as _, SpanContext, SpanKind, Status, TraceContextExt, Tracer as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SdkTracer, Span};

use super::{parse, traceparent, Traces};

/// The name of a transaction's span (the sampler keeps it when an event it links to is kept).
const TRANSACTION: &str = "transaction";

pub(super) fn is_transaction(name: &str) -> bool {
    name == TRANSACTION
}

/// An event's link with the transaction that settles it: the writers note when it ran and
/// which span it was, and the request makes the event's share of it from that.
#[derive(Debug)]
pub struct Committing {
    event: SpanContext,
    handlers: Arc<str>,
    mark: Mutex<Option<Mark>>,
}

#[derive(Debug, Clone)]
struct Mark {
    started: SystemTime,
    ended: SystemTime,
    transaction: SpanContext,
}

impl Committing {
    fn take(&self) -> Option<Mark> {
        self.mark.lock().ok().and_then(|mut m| m.take())
    }
}

/// One event's trace, held by its request.
pub struct EventTrace {
    tracer: SdkTracer,
    /// Holds the request's span.
    cx: Context,
    recording: bool,
    /// The end of the last phase, the start of the next.
    last: SystemTime,
    phases: Vec<(&'static str, SystemTime, SystemTime)>,
    /// When the event was handed to its shard.
    queued: Option<SystemTime>,
    committing: Arc<Committing>,
}

impl Traces {
    /// The trace of an event of `source` whose request began at `started`. `incoming` is the
    /// provider's `traceparent` header; `handlers`, the source's handler names.
    pub fn event(
        &self,
        incoming: Option<&str>,
        source: &str,
        handlers: Arc<str>,
        started: SystemTime,
    ) -> EventTrace {
        let (parent, links) = self.request_parent(incoming);
        let builder = self
            .tracer
            .span_builder("POST /webhooks/{source}")
            .with_kind(SpanKind::Server)
            .with_start_time(started)
            .with_links(links)
            .with_attributes([
                KeyValue::new("http.request.method", "POST"),
                KeyValue::new("http.route", "/webhooks/{source}"),
                KeyValue::new("idemhook.source", source.to_owned()),
            ]);
        let span = self.tracer.build_with_context(builder, &parent);
        let context = span.span_context().clone();
        let recording = span.is_recording();
        EventTrace {
            tracer: self.tracer.clone(),
            cx: parent.with_span(span),
            recording,
            last: started,
            phases: Vec::new(),
            queued: None,
            committing: Arc::new(Committing {
                event: context,
                handlers,
                mark: Mutex::new(None),
            }),
        }
    }

    /// The span of a transaction committing these events, when one of them is sampled.
    pub fn transaction<'a>(
        &self,
        events: impl Iterator<Item = &'a Arc<Committing>>,
    ) -> Option<TransactionSpan> {
        let traced: Vec<Arc<Committing>> =
            events.filter(|c| c.event.is_sampled()).cloned().collect();
        if traced.is_empty() {
            return None;
        }
        let started = SystemTime::now();
        let links = traced
            .iter()
            .map(|c| Link::with_context(c.event.clone()))
            .collect();
        let builder = self
            .tracer
            .span_builder(TRANSACTION)
            .with_start_time(started)
            .with_links(links);
        let span = self.tracer.build_with_context(builder, &Context::new());
        Some(TransactionSpan {
            span,
            started,
            traced,
        })
    }

    /// The span of a delivery attempt of an event whose outbox row holds `stored` (its
    /// `traceparent`): `None` unless that event is sampled.
    pub fn attempt(&self, stored: Option<&str>, attempt: &Attempt<'_>) -> Option<AttemptSpan> {
        let event = stored.and_then(parse).filter(SpanContext::is_sampled)?;
        let builder = self
            .tracer
            .span_builder(format!("deliver {}", attempt.destination))
            .with_kind(SpanKind::Producer)
            .with_attributes([
                KeyValue::new("idemhook.source", attempt.source.to_owned()),
                KeyValue::new("idemhook.destination", attempt.destination.to_owned()),
                KeyValue::new("idemhook.event_type", attempt.event_type.to_owned()),
                KeyValue::new("idemhook.key_digest", hex::encode(attempt.key_digest)),
                KeyValue::new("idemhook.attempt", i64::from(attempt.number)),
            ]);
        let parent = Context::new().with_remote_span_context(event);
        let span = self.tracer.build_with_context(builder, &parent);
        let traceparent = traceparent(span.span_context());
        Some(AttemptSpan { span, traceparent })
    }
}

impl EventTrace {
    /// Ends the phase that began where the last one ended (the first: at the request's start).
    pub fn phase(&mut self, name: &'static str) {
        let at = SystemTime::now();
        if self.recording {
            self.phases.push((name, self.last, at));
        }
        self.last = at;
    }

    /// The event is known: its type and key digest go on the request's span.
    pub fn event(&self, event_type: &str, key_digest: &[u8]) {
        if self.recording {
            let span = self.cx.span();
            span.set_attribute(KeyValue::new("idemhook.event_type", event_type.to_owned()));
            span.set_attribute(KeyValue::new(
                "idemhook.key_digest",
                hex::encode(key_digest),
            ));
        }
    }

    /// The event is handed to its shard: the wait there begins.
    pub fn queued(&mut self) {
        self.queued = Some(SystemTime::now());
    }

    /// The event's `traceparent`, stored with its outbox rows: formatted only for an event
    /// that gets that far (a duplicate answered from the cache never asks).
    pub fn traceparent(&self) -> String {
        traceparent(&self.committing.event)
    }

    /// What the writers note the transaction on.
    pub fn committing(&self) -> Arc<Committing> {
        self.committing.clone()
    }

    /// Ends the trace's request span with the answer given, after the spans of its phases.
    pub fn finish(self, outcome: &str, status: u16) {
        if !self.recording {
            return;
        }
        for (name, start, end) in &self.phases {
            self.child(name, *start, *end, Vec::new());
        }
        if let (Some(queued), Some(mark)) = (self.queued, self.committing.take()) {
            self.child("shard wait", queued, mark.started, Vec::new());
            let link = Link::with_context(mark.transaction);
            self.child("commit", mark.started, mark.ended, vec![link]);
        }
        let span = self.cx.span();
        span.set_attribute(KeyValue::new("idemhook.outcome", outcome.to_owned()));
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
        if status >= 500 {
            span.set_status(Status::error(outcome.to_owned()));
        }
        span.end_with_timestamp(SystemTime::now());
    }

    fn child(&self, name: &'static str, start: SystemTime, end: SystemTime, links: Vec<Link>) {
        let builder = self
            .tracer
            .span_builder(name)
            .with_start_time(start)
            .with_links(links);
        self.tracer
            .build_with_context(builder, &self.cx)
            .end_with_timestamp(end);
    }
}

/// A transaction's span; its end tells each traced event when it ran.
pub struct TransactionSpan {
    span: Span,
    started: SystemTime,
    traced: Vec<Arc<Committing>>,
}

impl TransactionSpan {
    /// Ends it: `size` events, `outcome` (`committed`, `per_event`, `unavailable`, ...),
    /// `retries` reruns after lost races.
    pub fn finish(mut self, size: usize, outcome: &'static str, retries: u32) {
        let ended = SystemTime::now();
        let mut handlers: Vec<&str> = self.traced.iter().map(|c| &*c.handlers).collect();
        handlers.sort_unstable();
        handlers.dedup();
        self.span.set_attribute(KeyValue::new(
            "idemhook.batch.size",
            i64::try_from(size).unwrap_or(i64::MAX),
        ));
        self.span
            .set_attribute(KeyValue::new("idemhook.handlers", handlers.join(" ")));
        self.span
            .set_attribute(KeyValue::new("idemhook.outcome", outcome));
        self.span
            .set_attribute(KeyValue::new("idemhook.retries", i64::from(retries)));
        self.span.end_with_timestamp(ended);
        let transaction = self.span.span_context().clone();
        for committing in &self.traced {
            if let Ok(mut mark) = committing.mark.lock() {
                *mark = Some(Mark {
                    started: self.started,
                    ended,
                    transaction: transaction.clone(),
                });
            }
        }
    }
}

/// What an attempt's span says of its delivery.
pub struct Attempt<'a> {
    pub source: &'a str,
    pub destination: &'a str,
    pub event_type: &'a str,
    pub key_digest: &'a [u8],
    pub number: u32,
}

/// A delivery attempt's span.
pub struct AttemptSpan {
    span: Span,
    traceparent: String,
}

impl AttemptSpan {
    /// The `traceparent` sent to the consumer: the attempt's own span, in the event's trace.
    pub fn traceparent(&self) -> &str {
        &self.traceparent
    }

    /// Ends it with what the attempt got: an HTTP status if any, and how a failure is
    /// classed (`5xx`, `timeout`, `connect`, ...: the metrics' `class` label).
    pub fn finish(mut self, delivered: bool, status: Option<u16>, class: &'static str) {
        if let Some(status) = status {
            self.span.set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
        }
        if !delivered {
            // The class only: a failure's text may quote the consumer's answer.
            self.span.set_status(Status::error(class));
        }
        self.span.end();
    }
}
