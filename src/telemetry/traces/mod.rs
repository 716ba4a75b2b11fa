//! OpenTelemetry traces: one trace per event, from the provider's request to every delivery
//! attempt, exported over OTLP/HTTP (protobuf). Off by default (`[idemhook.tracing]`).
//!
//! **Off means off.** With tracing off there is no [`Traces`], and the request path builds no
//! span, no context and no string: each place that would trace holds an `Option` that is
//! `None`. idemhook does not route its traces through `tracing` spans either: a log line
//! inside a span would leave the fixed log layout (`telemetry::line`) for the general one.
//!
//! **What a trace holds** (`spans`): the request's server span, with children for reading
//! the body, verifying, the wait in the shard and the event's share of its transaction. The
//! transaction is its own span (several events commit in one), linked from each event's
//! share; it carries the batch's size, handlers, outcome and retries. Each delivery attempt
//! is a child of the event's span, on whichever instance makes it: the event's `traceparent`
//! is stored with its outbox rows, and sent on to the consumer (HTTP header, NATS and
//! RabbitMQ headers, the pull lease's answer).
//!
//! **Who chooses.** A provider's `traceparent` is only linked to unless
//! `trust_incoming_traceparent`: an outsider must not choose which events we sample, nor
//! write its trace id into ours. Sampling is by trace id, so every instance that touches a
//! trace decides the same way.
//!
//! **What a span carries**: source, event type, key digest, outcome, status, durations.
//! Never a body, a header value or a secret.

mod export;
mod spans;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{
    Link, SpanContext, SpanKind, TraceContextExt, TraceId, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    Sampler, SamplingDecision, SamplingResult, SdkTracer, SdkTracerProvider, ShouldSample,
};
use opentelemetry_sdk::Resource;
use prometheus::{IntCounter, Registry};

use crate::config::{Environment, TracesConfig};
pub use spans::{Attempt, AttemptSpan, Committing, EventTrace, TransactionSpan};

/// How long one export request may take unless `OTEL_EXPORTER_OTLP_TIMEOUT` says otherwise.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The tracer, when tracing is on.
pub struct Traces {
    tracer: SdkTracer,
    provider: SdkTracerProvider,
    trust_incoming: bool,
    exporting: Mutex<Option<export::Exporting>>,
}

/// The tracer, or `None` when tracing is off (held by the engine).
#[derive(Clone, Default)]
pub struct Tracing(pub Option<Arc<Traces>>);

impl Traces {
    /// Tracing as configured: `None` unless an endpoint is set (here or in the standard
    /// variables). The drop counter is registered either way, so dashboards see a zero.
    pub fn start(
        config: &TracesConfig,
        env: &Environment,
        registry: &Registry,
    ) -> Result<Tracing, String> {
        let dropped = IntCounter::new(
            "idemhook_trace_spans_dropped_total",
            "Finished spans never exported: dropped because the export queue was full, or lost \
             with an export that failed or timed out (the collector is slow or down)",
        )
        .map_err(|e| e.to_string())?;
        registry
            .register(Box::new(dropped.clone()))
            .map_err(|e| e.to_string())?;
        let from_env = [
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ]
        .iter()
        .any(|v| env.get(v).is_some_and(|s| !s.is_empty()));
        let disabled = env
            .get("OTEL_SDK_DISABLED")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if disabled || (config.otlp_endpoint.is_none() && !from_env) {
            return Ok(Tracing(None));
        }
        let timeout = [
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        ]
        .iter()
        .find_map(|v| env.get(v).and_then(|ms| ms.parse().ok()))
        .map_or(EXPORT_TIMEOUT, Duration::from_millis);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("traces: cannot build the HTTP client: {e}"))?;
        let mut builder = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(export::Client(client))
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_timeout(timeout);
        if let Some(base) = &config.otlp_endpoint {
            builder = builder.with_endpoint(format!("{}/v1/traces", base.trim_end_matches('/')));
        }
        let mut exporter = builder
            .build()
            .map_err(|e| format!("idemhook.tracing: {e}"))?;
        let mut resource = Resource::builder();
        if env.get("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name(config.service_name.clone());
        }
        let resource = resource.build();
        opentelemetry_sdk::trace::SpanExporter::set_resource(&mut exporter, &resource);
        let (queue, exporting) = export::Queue::start(exporter, config.queue, timeout, dropped);
        let provider = SdkTracerProvider::builder()
            .with_sampler(Sampling::new(config.sample_ratio))
            .with_span_processor(queue)
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("idemhook");
        tracing::info!(
            sample_ratio = config.sample_ratio,
            trust_incoming_traceparent = config.trust_incoming_traceparent,
            "traces: exported over OTLP/HTTP"
        );
        Ok(Tracing(Some(Arc::new(Traces {
            tracer,
            provider,
            trust_incoming: config.trust_incoming_traceparent,
            exporting: Mutex::new(Some(exporting)),
        }))))
    }

    /// Sends the spans still queued (at shutdown), waiting at most `grace`.
    pub async fn finish(&self, grace: Duration) {
        let _ = self.provider.force_flush();
        let exporting = self.exporting.lock().ok().and_then(|mut e| e.take());
        if let Some(exporting) = exporting {
            exporting.finish(grace).await;
        }
    }

    /// Where an event's request span starts from: the provider's context when it is
    /// trusted (continued), a new root otherwise (linked to it, when there is one).
    fn request_parent(&self, traceparent: Option<&str>) -> (Context, Vec<Link>) {
        match traceparent.and_then(parse) {
            Some(remote) if self.trust_incoming => {
                (Context::new().with_remote_span_context(remote), Vec::new())
            }
            Some(remote) => (Context::new(), vec![Link::with_context(remote)]),
            None => (Context::new(), Vec::new()),
        }
    }
}

/// The W3C `traceparent` of a span context (version 00).
pub fn traceparent(cx: &SpanContext) -> String {
    format!(
        "00-{:032x}-{:016x}-{:02x}",
        cx.trace_id(),
        cx.span_id(),
        cx.trace_flags().to_u8()
    )
}

/// A W3C `traceparent` read with the SDK's propagator: `None` unless valid.
pub fn parse(traceparent: &str) -> Option<SpanContext> {
    struct One<'a>(&'a str);
    impl Extractor for One<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            (key == "traceparent").then_some(self.0)
        }
        fn keys(&self) -> Vec<&str> {
            vec!["traceparent"]
        }
    }
    let cx = TraceContextPropagator::new().extract(&One(traceparent));
    let span = cx.span();
    let found = span.span_context();
    found.is_valid().then(|| found.clone())
}

/// The sampler: a span with a parent follows it (every span of an event's trace, on every
/// instance, makes the event's decision); a transaction span, which has no parent, is kept
/// when one of the events it links to is; any other root is kept at `sample_ratio`, by its
/// trace id.
#[derive(Debug, Clone)]
struct Sampling {
    ratio: Sampler,
}

impl Sampling {
    fn new(ratio: f64) -> Self {
        Self {
            ratio: Sampler::TraceIdRatioBased(ratio),
        }
    }
}

impl ShouldSample for Sampling {
    fn should_sample(
        &self,
        parent: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        let parent_cx = parent.filter(|cx| cx.has_active_span());
        let decision = match parent_cx {
            Some(cx) if cx.span().span_context().is_sampled() => {
                Some(SamplingDecision::RecordAndSample)
            }
            Some(_) => Some(SamplingDecision::Drop),
            None if spans::is_transaction(name) => {
                Some(if links.iter().any(|l| l.span_context.is_sampled()) {
                    SamplingDecision::RecordAndSample
                } else {
                    SamplingDecision::Drop
                })
            }
            None => None,
        };
        match decision {
            Some(decision) => SamplingResult {
                decision,
                attributes: Vec::new(),
                trace_state: parent_cx
                    .map(|cx| cx.span().span_context().trace_state().clone())
                    .unwrap_or_default(),
            },
            None => self
                .ratio
                .should_sample(parent, trace_id, name, kind, attributes, links),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_round_trips_and_garbage_is_refused() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let cx = parse(tp).expect("valid");
        assert!(cx.is_sampled() && cx.is_remote());
        assert_eq!(traceparent(&cx), tp);
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
    }
}
