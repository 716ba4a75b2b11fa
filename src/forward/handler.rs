//! The `forward` handler: writes the event's outbox row in the event's own transaction, when
//! its destination wants the event ([`Filter`]).
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
use crate::config::Settings;
use crate::entities::delivery;
use crate::event::Event;
use crate::handlers::{Handler, HandlerError};
use crate::status::DeliveryStatus;

/// What the handler needs of one forwarding source's destination.
struct Wanted {
    /// Its `ordering` pointer (`None`: unordered).
    ordering: Option<Pointer>,
    /// Its `types` and `match`.
    filter: Filter,
}

pub struct Forward {
    /// Each forwarding source's destination.
    destinations: HashMap<String, Wanted>,
    clock: Clock,
    /// Wakes this instance's worker once the rows are committed.
    wake: Wake,
}

impl Forward {
    /// Refuses to launch on a filter that cannot mean what it says (see [`Filter::new`]).
    pub fn new(settings: &Settings, clock: Clock, wake: Wake) -> Result<Self, String> {
        let mut destinations = HashMap::new();
        for (name, cfg) in &settings.sources {
            let Some(forward) = cfg.forward.as_ref() else {
                continue;
            };
            let table = format!("idemhook.sources.{name}.forward");
            let wanted = Wanted {
                ordering: (!forward.ordering.is_empty()).then(|| Pointer::new(&forward.ordering)),
                filter: Filter::new(&table, &forward.types, &forward.matches)?,
            };
            destinations.insert(name.clone(), wanted);
        }
        Ok(Self {
            destinations,
            clock,
            wake,
        })
    }

    /// The event's outbox row, or `None` when its destination does not want it.
    fn row(&self, event: &Event) -> Result<Option<delivery::ActiveModel>, HandlerError> {
        let wanted = self.destinations.get(&event.key.source).ok_or_else(|| {
            // A source lists "forward" without a forward table: refused at launch, so only a
            // library user calling the handler by hand gets here.
            HandlerError::failed(format!(
                "source {:?} has no [forward] table",
                event.key.source
            ))
        })?;
        if !wanted.filter.wants(event) {
            return Ok(None);
        }
        let now = self.clock.now();
        Ok(Some(delivery::ActiveModel {
            id: NotSet,
            key_digest: Set(event.digest.to_vec()),
            source: Set(event.key.source.clone()),
            event_type: Set(event.key.event_type.clone()),
            event_id: Set(event.key.event_id.clone()),
            content_type: Set(event.header("content-type").map(|c| truncate(c, 255))),
            payload: Set(event.body.clone()),
            ordering_key: Set(wanted
                .ordering
                .as_ref()
                .and_then(|p| ordering_key(event, p))),
            status: Set(DeliveryStatus::Pending),
            attempts: Set(0),
            next_attempt_at: Set(now),
            lease_until: Set(None),
            lease_token: Set(None),
            last_status: Set(None),
            last_error: Set(None),
            created_at: Set(now),
            delivered_at: Set(None),
        }))
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
        let mut rows = Vec::with_capacity(events.len());
        for event in events {
            rows.extend(self.row(event)?);
        }
        if !rows.is_empty() {
            deliveries::insert(rows, txn).await?;
        }
        Ok(())
    }

    fn committed(&self) {
        self.wake.notify();
    }
}

/// The SHA-256 of (source, the value at the ordering pointer): deliveries with equal keys go
/// one at a time. A string or an integer is taken as written; any other value by its compact
/// JSON form; an absent or null value orders nothing. The source is part of the key, so two
/// sources never wait on each other.
fn ordering_key(event: &Event, pointer: &Pointer) -> Option<Vec<u8>> {
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
