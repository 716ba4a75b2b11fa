//! What the admin API answers about events: one shape for a list item and the body of the
//! detail view, built from the rows that hold an event (its dedupe record, its failed
//! attempts, its delivery), whichever of them exist.

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, Iterable, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::Serialize;
use utoipa::ToSchema;

use super::delivery_view::{delivery_summary, outbox_payload, DeliverySummary};
use super::instant;
use crate::config::FORWARD_HANDLER;
use crate::entities::{
    attempt, delivery, event_payload, failed_attempt, inbox, processed_event, replay,
};
use crate::event::key::Sha256Digest;
use crate::forward::deliveries;
use crate::status::EventStatus;

/// An event as lists show it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventSummary {
    pub source: String,
    pub event_type: String,
    pub event_id: String,
    /// `processed`, `rejected` (a handler refused it for good) or `failed` (attempted, not
    /// processed).
    #[schema(value_type = String)]
    pub status: EventStatus,
    /// Why a handler rejected it.
    pub reason: Option<String>,
    /// When it first arrived (RFC 3339).
    #[serde(serialize_with = "instant::serialize")]
    #[schema(value_type = String)]
    pub received_at: DateTime<Utc>,
    /// When it was settled (processed or rejected).
    #[serde(serialize_with = "instant::option::serialize")]
    #[schema(value_type = Option<String>)]
    pub processed_at: Option<DateTime<Utc>>,
    /// Handler attempts: the failed ones, plus the one that settled it.
    pub attempts: i32,
    /// The last failed attempt's error.
    pub last_error: Option<String>,
    /// SHA-256 of the payload that settled it (or of the last failed attempt's), hex.
    pub payload_sha256: String,
    /// Its delivery to the `forward` destination (or to its only destination), as before
    /// fan-out.
    pub delivery: Option<DeliverySummary>,
    /// Its delivery to each destination that wanted it, by name.
    pub deliveries: Vec<DeliverySummary>,
    /// Duplicates that came with another body (recorded within about a second).
    pub payload_mismatches: PayloadMismatches,
}

/// Duplicates of a settled event whose body differed from the one that settled it: never
/// applied, counted on the event's record.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct PayloadMismatches {
    pub count: i64,
    /// SHA-256 of the last such body, hex.
    pub last_mismatch_sha256: Option<String>,
    /// When it came (RFC 3339).
    #[serde(serialize_with = "instant::option::serialize")]
    #[schema(value_type = Option<String>)]
    pub last_mismatch_at: Option<DateTime<Utc>>,
}

/// `GET /events`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    pub events: Vec<EventSummary>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// One attempt in an event's history.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Attempt {
    #[serde(serialize_with = "instant::serialize")]
    #[schema(value_type = String)]
    pub at: DateTime<Utc>,
    /// Handlers: `failed`, `processed`, `rejected`. Deliveries: `retry`, `dead`, `delivered`.
    pub outcome: String,
    /// The app's HTTP status, for a delivery that got an answer.
    pub status_code: Option<i32>,
    pub error: Option<String>,
    /// The destination a delivery attempt went to.
    pub destination: Option<String>,
}

/// A deliberate re-run an operator asked for.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReplayRecord {
    #[serde(serialize_with = "instant::serialize")]
    #[schema(value_type = String)]
    pub replayed_at: DateTime<Utc>,
    /// What the event was before: `rejected`, `failed`, or `processed` (forced).
    #[schema(value_type = String)]
    pub previous_status: EventStatus,
    pub forced: bool,
    pub operator: String,
    pub job_id: Option<i64>,
}

/// `GET /webhooks/{source}/events/{event_id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventDetail {
    #[serde(flatten)]
    pub summary: EventSummary,
    /// The raw payload as text, when idemhook holds it and it is UTF-8.
    pub payload: Option<String>,
    /// The raw payload, base64 (exact bytes), when idemhook holds it.
    pub payload_base64: Option<String>,
    /// Where the payload was found: `replay_store` (rejected and failed events), `inbox` or
    /// `outbox`.
    pub payload_from: Option<String>,
    /// Oldest first.
    pub handler_attempts: Vec<Attempt>,
    /// Oldest first, current round last.
    pub delivery_attempts: Vec<Attempt>,
    pub replays: Vec<ReplayRecord>,
}

/// The rows that hold one event; any may be missing.
#[derive(Default)]
struct Rows {
    processed: Option<processed_event::Model>,
    failed: Option<failed_attempt::Model>,
    /// Its outbox rows, one per destination, by name.
    deliveries: Vec<delivery::Model>,
}

impl Rows {
    /// The row `delivery` shows: the `forward` destination's, or the only one.
    fn delivery(&self) -> Option<&delivery::Model> {
        self.deliveries
            .iter()
            .find(|d| d.destination == FORWARD_HANDLER)
            .or_else(|| (self.deliveries.len() == 1).then(|| &self.deliveries[0]))
    }
}

fn summary(rows: &Rows) -> Option<EventSummary> {
    let failures = rows.failed.as_ref().map_or(0, |f| f.attempts);
    let last_error = rows.failed.as_ref().map(|f| f.last_error.clone());
    let delivery = rows.delivery().map(delivery_summary);
    let (key, status, reason, received, settled, attempts, payload) =
        match (&rows.processed, &rows.failed, rows.deliveries.first()) {
            (Some(p), _, _) => (
                (&p.source, &p.event_type, &p.event_id),
                p.status,
                p.reason.clone(),
                p.received_at,
                Some(p.processed_at),
                failures + 1,
                hex::encode(&p.payload_sha256),
            ),
            (None, Some(f), _) => (
                (&f.source, &f.event_type, &f.event_id),
                EventStatus::Failed,
                None,
                f.first_failed_at,
                None,
                failures,
                hex::encode(&f.payload_sha256),
            ),
            // A delivery exists only for a processed event: its record was swept first.
            (None, None, Some(d)) => (
                (&d.source, &d.event_type, &d.event_id),
                EventStatus::Processed,
                None,
                d.created_at,
                Some(d.created_at),
                1,
                hex::encode(crate::event::key::sha256(&d.payload)),
            ),
            (None, None, None) => return None,
        };
    let payload_mismatches = rows
        .processed
        .as_ref()
        .map_or_else(PayloadMismatches::default, |p| PayloadMismatches {
            count: p.mismatches,
            last_mismatch_sha256: p.last_mismatch_sha256.as_ref().map(hex::encode),
            last_mismatch_at: p.last_mismatch_at,
        });
    Some(EventSummary {
        payload_mismatches,
        source: key.0.clone(),
        event_type: key.1.clone(),
        event_id: key.2.clone(),
        status,
        reason,
        received_at: received,
        processed_at: settled,
        attempts,
        last_error,
        payload_sha256: payload,
        delivery,
        deliveries: rows.deliveries.iter().map(delivery_summary).collect(),
    })
}

/// The summaries of `digests`, in their order (three `IN` lookups, whatever the page size).
pub async fn summaries(
    db: &impl ConnectionTrait,
    digests: &[Sha256Digest],
) -> Result<Vec<EventSummary>, DbErr> {
    if digests.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<Vec<u8>> = digests.iter().map(|d| d.to_vec()).collect();
    let mut rows: HashMap<Vec<u8>, Rows> = HashMap::new();
    for p in processed_event::Entity::find()
        .filter(processed_event::Column::KeyDigest.is_in(keys.clone()))
        .all(db)
        .await?
    {
        let key = p.key_digest.clone();
        rows.entry(key).or_default().processed = Some(p);
    }
    for f in failed_attempt::Entity::find()
        .filter(failed_attempt::Column::KeyDigest.is_in(keys.clone()))
        .all(db)
        .await?
    {
        let key = f.key_digest.clone();
        rows.entry(key).or_default().failed = Some(f);
    }
    // Without the payload (up to the body limit each): a page needs the delivery's state only.
    let mut state = delivery::Entity::find().select_only();
    for column in delivery::Column::iter().filter(|c| !matches!(c, delivery::Column::Payload)) {
        state = state.column(column);
    }
    for d in state
        .expr_as(Expr::val(Vec::<u8>::new()), "payload")
        .filter(deliveries::of_events(keys.clone()))
        .order_by_asc(delivery::Column::Destination)
        .into_model::<delivery::Model>()
        .all(db)
        .await?
    {
        let key = d.event_key().to_vec();
        rows.entry(key).or_default().deliveries.push(d);
    }
    // A delivery whose record was swept first is summarised from its payload: read it then.
    for (key, r) in rows.iter_mut() {
        if r.processed.is_some() || r.failed.is_some() || r.deliveries.is_empty() {
            continue;
        }
        if let Some((body, _)) = outbox_payload(db, key).await? {
            r.deliveries[0].payload = body;
        }
    }
    Ok(keys
        .iter()
        .filter_map(|k| rows.get(k).and_then(summary))
        .collect())
}

/// The raw payload idemhook holds for an event, and where it was found: the replay store
/// (rejected and failed events), the inbox, or the outbox.
pub async fn payload(
    db: &impl ConnectionTrait,
    digest: &Sha256Digest,
) -> Result<Option<(Vec<u8>, &'static str)>, DbErr> {
    let key = digest.to_vec();
    if let Some(p) = event_payload::Entity::find_by_id(key.clone())
        .one(db)
        .await?
    {
        return Ok(Some((p.payload, "replay_store")));
    }
    if let Some(i) = inbox::Entity::find()
        .filter(inbox::Column::KeyDigest.eq(key.clone()))
        .one(db)
        .await?
    {
        return Ok(Some((i.payload, "inbox")));
    }
    outbox_payload(db, &key).await
}

/// The detail view of one event, or `None` when idemhook knows nothing of it.
pub async fn detail(
    db: &impl ConnectionTrait,
    digest: &Sha256Digest,
) -> Result<Option<EventDetail>, DbErr> {
    let Some(summary) = summaries(db, &[*digest]).await?.pop() else {
        return Ok(None);
    };
    let history = attempt::Entity::find()
        .filter(attempt::Column::KeyDigest.eq(digest.to_vec()))
        // By the attempt's time: a history row is written after its attempt settles, so ids
        // can follow the writes rather than the attempts.
        .order_by_asc(attempt::Column::At)
        .order_by_asc(attempt::Column::Id)
        .all(db)
        .await?;
    let as_attempt = |a: &attempt::Model| Attempt {
        at: a.at,
        outcome: a.outcome.to_string(),
        status_code: a.status_code,
        error: a.error.clone(),
        // History from before fan-out went to the one destination there was.
        destination: (a.kind == attempt::DELIVERY).then(|| {
            a.destination
                .clone()
                .unwrap_or_else(|| FORWARD_HANDLER.to_owned())
        }),
    };
    let mut handler_attempts: Vec<Attempt> = history
        .iter()
        .filter(|a| a.kind == attempt::HANDLER)
        .map(as_attempt)
        .collect();
    if let Some(at) = summary.processed_at {
        handler_attempts.push(Attempt {
            at,
            outcome: summary.status.to_string(),
            status_code: None,
            error: summary.reason.clone(),
            destination: None,
        });
    }
    let mut delivery_attempts: Vec<Attempt> = history
        .iter()
        .filter(|a| a.kind == attempt::DELIVERY)
        .map(as_attempt)
        .collect();
    for d in &summary.deliveries {
        if let Some(at) = d.delivered_at {
            delivery_attempts.push(Attempt {
                at,
                outcome: d.status.to_string(),
                status_code: d.last_status,
                error: None,
                destination: Some(d.destination.clone()),
            });
        }
    }
    delivery_attempts.sort_by_key(|a| a.at);
    let replays = replay::Entity::find()
        .filter(replay::Column::KeyDigest.eq(digest.to_vec()))
        .order_by_asc(replay::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(|r| ReplayRecord {
            replayed_at: r.replayed_at,
            previous_status: r.previous_status,
            forced: r.forced,
            operator: r.operator,
            job_id: r.job_id,
        })
        .collect();
    let stored = payload(db, digest).await?;
    Ok(Some(EventDetail {
        payload: stored
            .as_ref()
            .and_then(|(p, _)| String::from_utf8(p.clone()).ok()),
        payload_base64: stored.as_ref().map(|(p, _)| STANDARD.encode(p)),
        payload_from: stored.map(|(_, from)| from.to_owned()),
        summary,
        handler_attempts,
        delivery_attempts,
        replays,
    }))
}
