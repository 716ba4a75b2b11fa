//! The `forward` handler: writes the event's outbox rows in the event's own transaction, one
//! per destination of its source that wants the event ([`Filter`]).
//!
//! This is the whole guarantee: the row commits with the dedupe record or not at all, so a
//! committed event is always delivered (the worker finds the row whatever happens to the
//! process), and an event whose transaction rolled back never is. Nothing is sent from here:
//! no HTTP call ever runs inside a transaction.

use std::collections::HashMap;

use async_trait::async_trait;
use sea_orm::{ActiveValue::NotSet, ActiveValue::Set, DatabaseTransaction};
use sha2::{Digest, Sha256};
use wire::pointer::{self, Found, Pointer};

use super::filter::Filter;
use super::{deliveries, Wake};
use crate::clock::Clock;
use crate::config::{destination_table, Settings, FORWARD_HANDLER};
use crate::entities::{delivery, delivery_body};
use crate::event::Event;
use crate::handlers::{Handler, HandlerError, Rows, Upsert, Writes};
use crate::status::DeliveryStatus;

/// What the handler needs of one destination of a source.
struct Wanted {
    /// Its name (`forward`: the source's forward table).
    name: String,
    /// Its `ordering` pointer (`None`: unordered).
    ordering: Option<Pointer>,
    /// Its `types` and `match`.
    filter: Filter,
}

pub struct Forward {
    /// Each forwarding source's destinations.
    destinations: HashMap<String, Vec<Wanted>>,
    clock: Clock,
    /// Wakes this instance's worker once the rows are committed.
    wake: Wake,
}

impl Forward {
    /// Refuses to launch on a filter that cannot mean what it says (see [`Filter::new`]).
    pub fn new(settings: &Settings, clock: Clock, wake: Wake) -> Result<Self, String> {
        let mut destinations = HashMap::new();
        for (source, cfg) in &settings.sources {
            let mut wanted = Vec::new();
            for (name, destination) in cfg.destinations() {
                let table = destination_table(&format!("idemhook.sources.{source}"), name);
                let ordering = &destination.ordering;
                wanted.push(Wanted {
                    name: name.to_owned(),
                    ordering: (!ordering.is_empty()).then(|| Pointer::new(ordering)),
                    filter: Filter::new(&table, &destination.types, &destination.matches)?,
                });
            }
            if !wanted.is_empty() {
                destinations.insert(source.clone(), wanted);
            }
        }
        Ok(Self {
            destinations,
            clock,
            wake,
        })
    }

    /// The event's outbox rows, one per destination that wants it, and its body when more than
    /// one does (stored once, the rows then holding none).
    fn rows(
        &self,
        event: &Event,
        rows: &mut Vec<delivery::ActiveModel>,
        bodies: &mut Vec<delivery_body::ActiveModel>,
    ) -> Result<(), HandlerError> {
        let destinations = self.destinations.get(&event.key.source).ok_or_else(|| {
            // A source lists "forward" without a destination: refused at launch, so only a
            // library user calling the handler by hand gets here.
            HandlerError::failed(format!(
                "source {:?} has no destination to forward to",
                event.key.source
            ))
        })?;
        let wanted: Vec<&Wanted> = destinations
            .iter()
            .filter(|w| w.filter.wants(event))
            .collect();
        let now = self.clock.now();
        let shared = wanted.len() > 1;
        if shared {
            bodies.push(delivery_body::ActiveModel {
                event_digest: Set(event.digest.to_vec()),
                payload: Set(event.body.clone()),
                created_at: Set(now),
            });
        }
        let content_type = event.header("content-type").map(|c| truncate(c, 255));
        for w in wanted {
            rows.push(delivery::ActiveModel {
                id: NotSet,
                key_digest: Set(row_key(&event.digest, &w.name)),
                source: Set(event.key.source.clone()),
                destination: Set(w.name.clone()),
                event_digest: Set(Some(event.digest.to_vec())),
                event_type: Set(event.key.event_type.clone()),
                event_id: Set(event.key.event_id.clone()),
                content_type: Set(content_type.clone()),
                payload: Set(if shared {
                    Vec::new()
                } else {
                    event.body.clone()
                }),
                ordering_key: Set(w
                    .ordering
                    .as_ref()
                    .and_then(|p| ordering_key(event, p, &w.name))),
                status: Set(DeliveryStatus::Pending),
                attempts: Set(0),
                next_attempt_at: Set(now),
                lease_until: Set(None),
                lease_token: Set(None),
                last_status: Set(None),
                last_error: Set(None),
                created_at: Set(now),
                round: Set(0),
                delivered_at: Set(None),
                traceparent: Set(event.traceparent.clone()),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl Handler for Forward {
    async fn handle(&self, event: &Event, txn: &DatabaseTransaction) -> Result<(), HandlerError> {
        self.handle_batch(&[event], txn).await
    }

    /// One multi-row INSERT for the group's wanted events; none when no event is wanted.
    async fn handle_batch(
        &self,
        events: &[&Event],
        txn: &DatabaseTransaction,
    ) -> Result<(), HandlerError> {
        let (mut rows, mut bodies) = (Vec::with_capacity(events.len()), Vec::new());
        for event in events {
            self.rows(event, &mut rows, &mut bodies)?;
        }
        deliveries::insert(rows, bodies, txn).await?;
        Ok(())
    }

    /// The same rows, handed to the store: the bodies (replaced by the same bytes when a
    /// forced replay rewrites them, as [`deliveries::insert`] does), then the outbox rows.
    fn writes(&self, events: &[&Event]) -> Option<Result<Writes, HandlerError>> {
        let (mut rows, mut bodies) = (Vec::with_capacity(events.len()), Vec::new());
        for event in events {
            if let Err(err) = self.rows(event, &mut rows, &mut bodies) {
                return Some(Err(err));
            }
        }
        let replaced = Upsert::on(delivery_body::Column::EventDigest)
            .replace(delivery_body::Column::Payload)
            .replace(delivery_body::Column::CreatedAt);
        Some(Ok(Writes::none()
            .and(Rows::of(bodies).upsert(replaced))
            .and(Rows::of(rows))))
    }

    fn committed(&self) {
        self.wake.notify();
    }
}

/// A row's own key (`deliveries.key_digest`, unique): the event's digest for the `forward`
/// destination, as before fan-out, so rows pending from an earlier release still dedupe; the
/// SHA-256 of (event digest, name) for another.
pub fn row_key(event_digest: &[u8; 32], destination: &str) -> Vec<u8> {
    if destination == FORWARD_HANDLER {
        return event_digest.to_vec();
    }
    let mut hasher = Sha256::new();
    hasher.update(event_digest);
    hasher.update(destination.as_bytes());
    hasher.finalize().to_vec()
}

/// The SHA-256 of (source, the value at the ordering pointer, and the destination's name but
/// for `forward`, whose keys stay as before fan-out): deliveries with equal keys go one at a
/// time. A string or an integer is taken as written; any other value by its compact JSON
/// form; an absent or null value orders nothing. The source and the destination are part of
/// the key, so neither two sources nor two destinations ever wait on each other.
fn ordering_key(event: &Event, pointer: &Pointer, destination: &str) -> Option<Vec<u8>> {
    let value = match pointer::find(&event.body, [pointer]) {
        Ok([Found::String(s)]) => format!("s:{s}"),
        Ok([Found::Integer(n)]) => format!("s:{n}"),
        Ok([Found::Other]) => format!("j:{}", event.json()?.pointer(pointer.as_str())?),
        _ => return None,
    };
    let mut hasher = Sha256::new();
    hasher.update((event.key.source.len() as u64).to_be_bytes());
    hasher.update(event.key.source.as_bytes());
    hasher.update(value.as_bytes());
    if destination != FORWARD_HANDLER {
        hasher.update(b"\0destination:");
        hasher.update(destination.as_bytes());
    }
    Some(hasher.finalize().to_vec())
}

/// At most `max` bytes, cut at a character boundary.
fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}
