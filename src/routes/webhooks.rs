//! `POST /webhooks/<source>`: read the body, identify the event, hand it to its shard.

use std::sync::Arc;

use chrono::Utc;
use rocket::data::{Data, ToByteUnit};
use rocket::http::Header;
use rocket::request::{FromRequest, Outcome, Request};
use rocket::response::{self, Responder};
use rocket::serde::json::Json;
use rocket::{post, routes, Route, State};
use serde::Serialize;

use crate::engine::key::{sha256, EventKey};
use crate::engine::{Engine, Event, Job, Outcome as EngineOutcome};
use crate::error::ApiError;
use crate::providers::{Delivery, Sources};

/// The body limit used when Rocket.toml sets no `limits.webhook`.
pub const DEFAULT_BODY_LIMIT: u64 = 1024 * 1024;

pub fn routes() -> Vec<Route> {
    routes![ingest]
}

/// The request's headers (names lowercased) and its body limit, taken before the body is read.
pub struct RequestMeta {
    headers: Vec<(String, String)>,
    body_limit: u64,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for RequestMeta {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let headers = req
            .headers()
            .iter()
            .map(|h| (h.name().as_str().to_ascii_lowercase(), h.value().to_owned()))
            .collect();
        let body_limit = req
            .limits()
            .get("webhook")
            .map(|l| l.as_u64())
            .unwrap_or(DEFAULT_BODY_LIMIT);
        Outcome::Success(RequestMeta {
            headers,
            body_limit,
        })
    }
}

#[derive(Serialize)]
struct Receipt {
    status: &'static str,
    source: String,
    event_type: String,
    event_id: String,
}

/// A 200: `processed`, or `duplicate` with `Idempotent-Replayed: true`.
pub struct Accepted {
    outcome: EngineOutcome,
    key: EventKey,
}

impl<'r> Responder<'r, 'static> for Accepted {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        let duplicate = matches!(self.outcome, EngineOutcome::Duplicate { .. });
        let receipt = Receipt {
            status: if duplicate { "duplicate" } else { "processed" },
            source: self.key.source,
            event_type: self.key.event_type,
            event_id: self.key.event_id,
        };
        let mut response = Json(receipt).respond_to(req)?;
        if duplicate {
            response.set_header(Header::new("Idempotent-Replayed", "true"));
        }
        Ok(response)
    }
}

#[post("/webhooks/<source>", data = "<body>")]
async fn ingest(
    source: &str,
    meta: RequestMeta,
    body: Data<'_>,
    sources: &State<Sources>,
    engine: &State<Arc<Engine>>,
) -> Result<Accepted, ApiError> {
    let source = sources
        .get(source)
        .ok_or_else(|| ApiError::NotFound("unknown source".to_owned()))?;
    let body = body
        .open(meta.body_limit.bytes())
        .into_bytes()
        .await
        .map_err(|e| ApiError::BadRequest(format!("could not read the body: {e}")))?;
    if !body.is_complete() {
        return Err(ApiError::PayloadTooLarge {
            limit: meta.body_limit,
        });
    }
    let body = body.into_inner();
    let payload_sha256 = sha256(&body);
    let mut delivery = Delivery {
        headers: &meta.headers,
        body: &body,
        json: None,
        payload_sha256: &payload_sha256,
    };
    // The signature is checked before the body is even parsed: a forged delivery costs a
    // hash, and learns nothing about how we read payloads.
    source
        .provider
        .verify(&delivery, Utc::now().timestamp())
        .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
    let json: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    delivery.json = json.as_ref();
    let (event_type, event_id) = source.provider.extract(&delivery)?;
    let key = EventKey::new(&source.name, event_type, event_id)?;
    let event = Event {
        digest: key.digest(),
        key: key.clone(),
        payload_sha256,
        headers: meta.headers,
        body,
        json,
        received_at: Utc::now(),
    };
    let outcome = engine
        .submit(Job {
            event: Arc::new(event),
            handlers: source.handlers.clone(),
        })
        .await?;
    tracing::info!(
        source = %key.source,
        event_type = %key.event_type,
        event_id = %key.event_id,
        outcome = if matches!(outcome, EngineOutcome::Processed) { "processed" } else { "duplicate" },
        "event"
    );
    Ok(Accepted { outcome, key })
}
