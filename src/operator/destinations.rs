//! `GET /destinations` and an operator's pause and resume: each forwarding destination with
//! its state and its backlog. A destination is what the configuration names (each source's
//! forward table, named `forward`, and its `destinations` tables); one that is no longer
//! configured but still has rows in the outbox is listed as `removed`, so its events are never
//! out of sight.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};
use serde::Serialize;
use utoipa::ToSchema;

use super::instant;
use crate::config::DestinationKind;
use crate::entities::destination;
use crate::forward::brakes;
use crate::forward::deliveries::{self, Backlog};
use crate::status::PauseReason;

/// Whether a destination's deliveries are attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DestinationState {
    /// Its due deliveries are attempted (after a hold, if its app asked for room).
    Active,
    /// Nothing is attempted until it is resumed; its deliveries wait, pending.
    Paused,
    /// No longer configured, with deliveries left: nothing is attempted (the retention still
    /// sweeps its delivered and dead rows).
    Removed,
}

/// One destination, as `GET /destinations` lists it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DestinationView {
    pub source: String,
    pub name: String,
    /// How its deliveries are carried: `http` or `nats`; none for a removed destination.
    #[schema(value_type = Option<String>)]
    pub kind: Option<DestinationKind>,
    pub state: DestinationState,
    /// Why it is paused: `operator`.
    #[schema(value_type = Option<String>)]
    pub paused_reason: Option<PauseReason>,
    #[serde(serialize_with = "instant::option::serialize")]
    #[schema(value_type = Option<String>)]
    pub paused_at: Option<DateTime<Utc>>,
    /// Until when its app asked for room (a 429, or a 503 with `Retry-After`), while that is
    /// ahead.
    #[serde(serialize_with = "instant::option::serialize")]
    #[schema(value_type = Option<String>)]
    pub held_until: Option<DateTime<Utc>>,
    pub pending: u64,
    pub dead: u64,
    /// Age of its oldest pending delivery, in seconds.
    pub oldest_pending_age_secs: Option<i64>,
}

/// `GET /destinations`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DestinationList {
    pub destinations: Vec<DestinationView>,
}

/// Every destination: the configured ones (`configured`: (source, name) pairs), then those
/// only the outbox still knows of, in (source, name) order.
pub async fn list(
    db: &impl ConnectionTrait,
    configured: &[(String, String)],
    kinds: &HashMap<(String, String), DestinationKind>,
    now: DateTime<Utc>,
) -> Result<Vec<DestinationView>, DbErr> {
    let rows: HashMap<(String, String), destination::Model> = brakes::all(db)
        .await?
        .into_iter()
        .map(|row| ((row.source.clone(), row.name.clone()), row))
        .collect();
    let backlogs = deliveries::backlogs(db).await?;
    let mut all: BTreeMap<(String, String), bool> =
        configured.iter().map(|key| (key.clone(), true)).collect();
    for key in backlogs.keys() {
        all.entry(key.clone()).or_insert(false);
    }
    Ok(all
        .into_iter()
        .map(|(key, is_configured)| {
            let row = rows.get(&key);
            let backlog = backlogs.get(&key).cloned().unwrap_or_default();
            let kind = kinds.get(&key).copied();
            view(key.0, key.1, kind, is_configured, row, &backlog, now)
        })
        .collect())
}

fn view(
    source: String,
    name: String,
    kind: Option<DestinationKind>,
    configured: bool,
    row: Option<&destination::Model>,
    backlog: &Backlog,
    now: DateTime<Utc>,
) -> DestinationView {
    let paused_reason = row.and_then(|r| r.paused_reason);
    let state = match (configured, paused_reason) {
        (false, _) => DestinationState::Removed,
        (true, Some(_)) => DestinationState::Paused,
        (true, None) => DestinationState::Active,
    };
    DestinationView {
        source,
        name,
        kind,
        state,
        paused_reason,
        paused_at: row.and_then(|r| r.paused_at),
        held_until: row.and_then(|r| r.hold_until).filter(|until| *until > now),
        pending: backlog.pending,
        dead: backlog.dead,
        oldest_pending_age_secs: backlog
            .oldest_pending
            .map(|t| (now - t).num_seconds().max(0)),
    }
}
