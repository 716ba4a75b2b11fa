//! What a settled delivery is answered, and how it is counted.

use rocket::http::ContentType;
use rocket::http::Status;
use rocket::request::Request;
use rocket::response::{self, Responder, Response};
use serde::Serialize;

use crate::engine::Outcome as EngineOutcome;
use crate::event::key::EventKey;
use crate::metrics::SourceMetrics;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Receipt<'a> {
    /// `processed`, `duplicate` (nothing ran) or `rejected` (a handler refused it for good).
    status: &'static str,
    source: &'a str,
    event_type: &'a str,
    event_id: &'a str,
}

/// A 200: `processed`, or `duplicate` with `Idempotent-Replayed: true`.
pub struct Accepted {
    pub(super) outcome: EngineOutcome,
    pub(super) key: EventKey,
}

impl<'r> Responder<'r, 'static> for Accepted {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let replayed = matches!(
            self.outcome,
            EngineOutcome::Duplicate { .. } | EngineOutcome::Rejected { replayed: true }
        );
        let key = &self.key;
        let receipt = Receipt {
            status: outcome_label(self.outcome),
            source: &key.source,
            event_type: &key.event_type,
            event_id: &key.event_id,
        };
        // Built directly rather than through `Json`, which answers a `String` and then
        // merges a second response into it for the content type: a duplicate's answer is
        // most of what it costs once its key is known.
        let body = serde_json::to_vec(&receipt).map_err(|_| Status::InternalServerError)?;
        let mut response = Response::build();
        response
            .header(ContentType::JSON)
            .sized_body(body.len(), std::io::Cursor::new(body));
        if replayed {
            response.raw_header("Idempotent-Replayed", "true");
        }
        Ok(response.finalize())
    }
}

pub(super) fn outcome_label(outcome: EngineOutcome) -> &'static str {
    match outcome {
        EngineOutcome::Processed => "processed",
        EngineOutcome::Duplicate { .. } => "duplicate",
        EngineOutcome::Rejected { .. } => "rejected",
    }
}

pub(super) fn count(counters: &SourceMetrics, outcome: EngineOutcome, seconds: f64) {
    match outcome {
        EngineOutcome::Processed => {
            counters.processed.inc();
            counters.processed_seconds.observe(seconds);
        }
        EngineOutcome::Duplicate { mismatch } => {
            counters.duplicate.inc();
            counters.duplicate_seconds.observe(seconds);
            if mismatch.is_some() {
                counters.payload_mismatches.inc();
            }
        }
        // A later delivery of a rejected event is a redelivery like any duplicate.
        EngineOutcome::Rejected { replayed: true } => {
            counters.duplicate.inc();
            counters.duplicate_seconds.observe(seconds);
        }
        EngineOutcome::Rejected { replayed: false } => counters.handler_rejections.inc(),
    }
}
