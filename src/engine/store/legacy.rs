//! Records of earlier releases keep refusing replays of their signed bytes.
//!
//! Releases before the signed-bytes key counted the event type wrote the key (source, signed
//! bytes) into `processed_events.signed_key`; this release writes (source, type, signed
//! bytes) into `typed_signed_key`. Neither unique index sees the other form, so a replay,
//! after the upgrade, of bytes an earlier release applied would commit again. Before an event
//! that carries a signed key commits, the engine therefore looks its old-form key up: a
//! record with the same bytes *and the same type* makes the delivery a `duplicate` (the
//! replay the key exists for); another type is another event, as under the new rule.
//!
//! The lookup costs a read per transaction, so it runs only while rows with an old-form key
//! may exist: whether any does is asked at most once a minute (an index probe), and once the
//! retention sweep has removed the last of them, the check turns itself off. During a rolling
//! deploy, an instance of the earlier release still writes old-form rows; the next probe sees
//! them. The lookup reads committed rows: an old-release instance committing the same bytes
//! at the same moment is not seen, the window docs/operations.md ("Upgrading") describes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect};

use super::Store;
use crate::entities::processed_event;
use crate::event::key::Sha256Digest;
use crate::event::Event;

/// How long a probe's answer stands.
const PROBE_EVERY: Duration = Duration::from_secs(60);

/// Whether old-form rows may exist, as the last probe found.
#[derive(Debug)]
pub(super) struct LegacyKeys {
    /// True until a probe finds none: a check too many costs a read, one too few a replay.
    may_exist: AtomicBool,
    /// When the next probe is due (`None`: now).
    next_probe: Mutex<Option<Instant>>,
}

impl Default for LegacyKeys {
    fn default() -> Self {
        Self {
            may_exist: AtomicBool::new(true),
            next_probe: Mutex::new(None),
        }
    }
}

impl LegacyKeys {
    /// Whether a probe is due, claiming it (one caller probes, the others use the last answer).
    fn probe_due(&self) -> bool {
        let Ok(mut next) = self.next_probe.lock() else {
            return true;
        };
        let now = Instant::now();
        if next.is_some_and(|at| now < at) {
            return false;
        }
        *next = Some(now + PROBE_EVERY);
        true
    }
}

impl Store {
    /// The events of `events` whose signed bytes a record of an earlier release holds under
    /// the same event type: replays, to be answered `duplicate`. Empty without a read when no
    /// event carries a signed key or no old-form row is left.
    pub(super) async fn legacy_replays(
        &self,
        conn: &impl ConnectionTrait,
        events: &[&Event],
    ) -> Result<Vec<Sha256Digest>, DbErr> {
        let keys: Vec<Vec<u8>> = events
            .iter()
            .filter_map(|e| e.legacy_signed_key.map(|k| k.to_vec()))
            .collect();
        if keys.is_empty() || !self.legacy_rows_may_exist(conn).await {
            return Ok(Vec::new());
        }
        use processed_event::Column as C;
        let found: Vec<(Vec<u8>, String)> = processed_event::Entity::find()
            .select_only()
            .column(C::LegacySignedKey)
            .column(C::EventType)
            .filter(C::LegacySignedKey.is_in(keys))
            // The index holds non-NULL keys only (migration `m20261210_000001`): said in the
            // text, since not every planner infers it from an `IN` list.
            .filter(C::LegacySignedKey.is_not_null())
            .into_tuple()
            .all(conn)
            .await?;
        Ok(events
            .iter()
            .filter(|e| {
                e.legacy_signed_key.is_some_and(|legacy| {
                    found
                        .iter()
                        .any(|(k, ty)| *k == legacy && *ty == e.key.event_type)
                })
            })
            .map(|e| e.digest)
            .collect())
    }

    /// Whether rows with an old-form key may exist: the last probe's answer, or a new probe
    /// when one is due. A probe that fails answers "may exist".
    async fn legacy_rows_may_exist(&self, conn: &impl ConnectionTrait) -> bool {
        let legacy = &self.legacy;
        if !legacy.probe_due() {
            return legacy.may_exist.load(Ordering::Relaxed);
        }
        let probe = processed_event::Entity::find()
            .select_only()
            .column(processed_event::Column::KeyDigest)
            .filter(processed_event::Column::LegacySignedKey.is_not_null())
            .into_tuple::<Vec<u8>>()
            .one(conn)
            .await;
        let exists = !matches!(probe, Ok(None));
        legacy.may_exist.store(exists, Ordering::Relaxed);
        exists
    }
}
