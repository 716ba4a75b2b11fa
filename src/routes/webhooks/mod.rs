//! `POST /webhooks/<source>`: read the body, identify the event, hand it to its shard.
//!
//! `request` reads the request (headers first, then the body within the source's limit);
//! `answer` says what a settled delivery is answered and how it is counted.

mod answer;
mod request;

pub use answer::{Accepted, Receipt};
pub use request::{RequestMeta, DEFAULT_BODY_LIMIT, MAX_HEADER_BYTES};

use answer::{count, outcome_label};
use request::{owned_headers, read_body, truncate};

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use rocket::data::Data;
use rocket::http::{HeaderMap, Status};
use rocket::{post, routes, Route, State};

use crate::budget::Budget;
use crate::clock::Clock;
use crate::config::{OnPayloadMismatch, ProviderKind};
use crate::engine::Outcome as EngineOutcome;
use crate::engine::{Engine, Job};
use crate::event::key::{
    attempt_token, legacy_signed_key, sha256, signed_key, EventKey, Sha256Digest,
};
use crate::event::Event;
use crate::metrics::Rejection;
use crate::providers::{Delivery, ProviderError, Source, Sources};
use crate::routes::error::ErrorBody;
use crate::routes::error::{ApiError, Counted};
use crate::telemetry::traces::EventTrace;

pub fn routes() -> Vec<Route> {
    routes![ingest]
}

/// A delivery that was not answered 200, with what is known of it for the log line.
struct Refused {
    event: Option<Arc<Event>>,
    error: ApiError,
    counted: Counted,
}

impl Refused {
    fn new(rejection: Rejection, error: impl Into<ApiError>) -> Self {
        Self {
            event: None,
            error: error.into(),
            counted: Counted::Rejected(rejection),
        }
    }
}

/// A 200, and when its body had been read (processing time is measured from there).
struct Received {
    accepted: Accepted,
    body_read: Instant,
}

/// Counts and logs the delivery (one line per delivery, never the body), then answers it.
///
/// Every 200 means the provider may stop retrying: the event is settled (processed now,
/// processed before, or rejected for good). Anything else means nothing was recorded.
#[utoipa::path(post, path = "/webhooks/{source}", tag = "webhooks",
    params(("source" = String, Path, description = "A source configured in Rocket.toml")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "The provider's raw body, signed as the source's provider signs it"),
    responses(
        (status = 200, description = "Settled: processed, duplicate (with `Idempotent-Replayed: true`), or rejected", body = Receipt),
        (status = 400, description = "Malformed: no event type or id, a bad key, an unreadable body, a type outside `accept_types`", body = ErrorBody),
        (status = 401, description = "A missing, wrong or stale signature", body = ErrorBody),
        (status = 404, description = "Unknown source", body = ErrorBody),
        (status = 409, description = "A duplicate whose body differs from the settled one, on a source with `on_payload_mismatch = \"reject\"`; nothing applied", body = ErrorBody),
        (status = 413, description = "The body is over the source's limit (`max_body`, or its provider's default)", body = ErrorBody),
        (status = 431, description = "The headers are larger than a webhook needs", body = ErrorBody),
        (status = 500, description = "A handler failed; the event was rolled back, not recorded", body = ErrorBody),
        (status = 503, description = "Overloaded or the database is down; retry after `Retry-After` seconds", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds"))),
    ))]
#[post("/webhooks/<source>", data = "<body>")]
pub async fn ingest(
    source: &str,
    meta: RequestMeta<'_>,
    body: Data<'_>,
    sources: &State<Arc<Sources>>,
    engine: &State<Arc<Engine>>,
    clock: &State<Clock>,
    budget: &State<Budget>,
) -> Result<Accepted, ApiError> {
    let started = Instant::now();
    let configured = sources.get(source);
    let counters = configured.map_or(&engine.metrics().unknown_source, |s| &s.metrics);
    counters.received.inc();
    let headers = meta.headers;
    // Only a configured source's requests are traced: a scan of made-up sources makes none.
    let mut trace = engine.traces().zip(configured).map(|(traces, source)| {
        let incoming = headers.get_one("traceparent");
        let handlers = source.handler_names.clone();
        traces.event(incoming, &source.name, handlers, SystemTime::now())
    });
    let result = match configured {
        Some(configured) => {
            receive(
                configured,
                meta,
                body,
                engine,
                clock,
                budget,
                trace.as_mut(),
            )
            .await
        }
        None => Err(Refused::new(
            Rejection::UnknownSource,
            ApiError::NotFound("unknown source".to_owned()),
        )),
    };
    match result {
        Ok(Received {
            accepted,
            body_read,
        }) => {
            let latency = body_read.elapsed();
            count(counters, accepted.outcome, latency.as_secs_f64());
            if let Some(trace) = trace {
                trace.finish(outcome_label(accepted.outcome), 200);
            }
            let key = &accepted.key;
            tracing::info!(
                source = %key.source,
                event_type = %key.event_type,
                event_id = %key.event_id,
                outcome = outcome_label(accepted.outcome),
                latency_ms = latency.as_secs_f64() * 1000.0,
                "event"
            );
            Ok(accepted)
        }
        Err(refused) => {
            match refused.counted {
                Counted::Rejected(reason) => counters.rejected(reason).inc(),
                Counted::Failed => counters.failed.inc(),
            }
            let (event_type, event_id) = refused.event.as_ref().map_or(("", ""), |e| {
                (e.key.event_type.as_str(), e.key.event_id.as_str())
            });
            if let Some(configured) = configured {
                warn_unretried(configured, &refused.error, headers);
            }
            if let Some(trace) = trace {
                let status = refused.error.status();
                trace.finish(status.reason().unwrap_or("refused"), status.code);
            }
            tracing::info!(
                source = %truncate(source, 64),
                event_type = %event_type,
                event_id = %event_id,
                outcome = %refused.error.status().code,
                error = %refused.error,
                latency_ms = started.elapsed().as_secs_f64() * 1000.0,
                "event refused"
            );
            Err(refused.error)
        }
    }
}

/// GitHub never retries a failed delivery by itself: a 413 or a 503 answered to it loses the
/// event unless someone redelivers it. Each is logged at warn with its `X-GitHub-Delivery`
/// GUID, which GitHub's API takes to redeliver it (docs/providers.md, GitHub).
fn warn_unretried(source: &Source, error: &ApiError, headers: &HeaderMap<'_>) {
    let status = error.status();
    if source.kind != ProviderKind::Github
        || !matches!(status, Status::PayloadTooLarge | Status::ServiceUnavailable)
    {
        return;
    }
    let guid = headers.get_one("X-GitHub-Delivery").unwrap_or("");
    tracing::warn!(
        source = %source.name,
        github_delivery = %truncate(guid, 64),
        status = status.code,
        error = %error,
        "GitHub delivery refused, and GitHub does not retry it: redeliver it by its \
         X-GitHub-Delivery GUID once the cause is fixed"
    );
}

async fn receive(
    source: &Source,
    meta: RequestMeta<'_>,
    body: Data<'_>,
    engine: &Engine,
    clock: &Clock,
    budget: &Budget,
    mut trace: Option<&mut EventTrace>,
) -> Result<Received, Refused> {
    if meta.header_bytes > MAX_HEADER_BYTES {
        return Err(Refused::new(
            Rejection::TooLarge,
            ApiError::HeadersTooLarge {
                limit: MAX_HEADER_BYTES,
            },
        ));
    }
    // Room for the body, before a byte of it is read; held until the delivery is answered.
    let limit = source.max_body;
    let declared = meta.content_length.unwrap_or(limit);
    let _reserved = budget.try_reserve(declared.min(limit)).ok_or_else(|| {
        Refused::new(
            Rejection::OverBudget,
            ApiError::Unavailable {
                message: "too many bytes of deliveries are in flight; retry later",
                retry_after_secs: 1,
            },
        )
    })?;
    let body = read_body(body, limit, meta.content_length)
        .await
        .map_err(|e| {
            Refused::new(
                Rejection::BadRequest,
                ApiError::BadRequest(format!("could not read the body: {e}")),
            )
        })?
        .ok_or_else(|| {
            Refused::new(
                Rejection::TooLarge,
                ApiError::PayloadTooLarge {
                    name: source.name.clone(),
                    limit,
                },
            )
        })?;
    let body_read = Instant::now();
    if let Some(trace) = trace.as_deref_mut() {
        trace.phase("read body");
    }
    let payload_sha256 = sha256(&body);
    let now = clock.now();
    let delivery = Delivery {
        headers: meta.headers,
        body: &body,
        payload_sha256: &payload_sha256,
    };
    // The signature is checked before the body is even parsed: a forged delivery costs a
    // hash, and learns nothing about how we read payloads.
    let verified = source.provider.verify(&delivery, now.timestamp());
    if let Some(trace) = trace.as_deref_mut() {
        trace.phase("verify");
    }
    let signed = verified.map_err(|e| {
        Refused::new(
            Rejection::Unauthorized,
            ApiError::Unauthorized(e.to_string()),
        )
    })?;
    let (event_type, event_id) = source
        .provider
        .extract(&delivery)
        .map_err(|e| Refused::new(Rejection::BadRequest, e))?;
    let key = EventKey::new(&source.name, event_type, event_id)
        .map_err(|e| Refused::new(Rejection::BadRequest, e))?;
    if !source.accepts(&key.event_type) {
        let refused = ProviderError::TypeNotAccepted(key.event_type);
        return Err(Refused::new(Rejection::BadRequest, refused));
    }
    let digest = key.digest();
    if let Some(trace) = trace.as_deref() {
        trace.event(&key.event_type, &digest);
    }
    if let Some(outcome) = engine.cached(&key, &digest, &payload_sha256).await {
        check_mismatch(source, engine, &digest, &payload_sha256, outcome).await?;
        return Ok(Received {
            accepted: Accepted { outcome, key },
            body_read,
        });
    }
    let signed = signed.filter(|_| source.dedupe_signed_bytes);
    let event = Arc::new(Event {
        digest,
        payload_sha256,
        signed_key: signed.map(|s| signed_key(&source.name, &key.event_type, &s)),
        legacy_signed_key: signed.map(|s| legacy_signed_key(&source.name, &s)),
        key,
        attempt_token: attempt_token(&digest),
        headers: owned_headers(meta.headers),
        body,
        received_at: now,
        traceparent: trace.as_deref().map(EventTrace::traceparent),
    });
    let job = Job {
        event: event.clone(),
        handlers: source.handlers.clone(),
        trace: trace.map(|t| {
            t.queued();
            t.committing()
        }),
    };
    match engine.submit(job).await {
        Ok(outcome) => {
            check_mismatch(source, engine, &digest, &payload_sha256, outcome)
                .await
                .map_err(|refused| Refused {
                    event: Some(event.clone()),
                    ..refused
                })?;
            Ok(Received {
                accepted: Accepted {
                    outcome,
                    key: event.key.clone(),
                },
                body_read,
            })
        }
        Err(e) => {
            let (error, counted) = e.answer();
            Err(Refused {
                event: Some(event),
                error,
                counted,
            })
        }
    }
}

/// A duplicate whose body differs from the one that settled its event: noted on the event's
/// record, and answered 409 naming both hashes where the source sets
/// `on_payload_mismatch = "reject"` (counted as a mismatch and as a rejection). Nothing of it
/// is applied either way.
async fn check_mismatch(
    source: &Source,
    engine: &Engine,
    digest: &Sha256Digest,
    payload_sha256: &Sha256Digest,
    outcome: EngineOutcome,
) -> Result<(), Refused> {
    let EngineOutcome::Duplicate {
        mismatch: Some(stored),
    } = outcome
    else {
        return Ok(());
    };
    engine.note_mismatch(digest, payload_sha256).await;
    if source.on_payload_mismatch == OnPayloadMismatch::Duplicate {
        return Ok(());
    }
    source.metrics.payload_mismatches.inc();
    Err(Refused::new(
        Rejection::PayloadMismatch,
        ApiError::Conflict(format!(
            "this event was settled with a payload of SHA-256 {}, and this delivery's payload \
             is SHA-256 {}: not applied (the source sets on_payload_mismatch = \"reject\")",
            hex::encode(stored),
            hex::encode(payload_sha256)
        )),
    ))
}
