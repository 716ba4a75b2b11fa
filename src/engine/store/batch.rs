//! Group commit: several new events in one transaction, and what to do when that fails.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use sea_orm::{DbErr, EntityTrait};

use super::{dedupe_record, BatchFailure, Store};
use crate::engine::db_error::{classify, DbErrorKind};
use crate::entities::processed_event;
use crate::event::Event;
use crate::handlers::{Handler, HandlerError};

impl Store {
    /// Group commit: the events of one batch in a single transaction, with one multi-row
    /// dedupe insert. `Ok(check)` when every event committed (all were new and every handler
    /// succeeded). Otherwise nothing was committed, and either the database is unreachable
    /// (every event is answered 503 at once) or the caller runs each event through
    /// [`Store::process`], which isolates duplicates, failures, timeouts and retries per
    /// event. The optimistic path is the common one: duplicates mostly never get here (the
    /// cache answers them) and handler failures are rare, so a batch of N new events costs
    /// one BEGIN, one INSERT and one COMMIT instead of N of each, and each handler sees the
    /// batch's events in one [`Handler::handle_batch`] call.
    ///
    /// `events` must be sorted by digest and free of repeats: two batches on two instances
    /// then take their dedupe-row locks in the same order and cannot deadlock on them.
    pub async fn commit_batch(
        &self,
        events: &[(&Event, &[Arc<dyn Handler>])],
    ) -> Result<Duration, BatchFailure> {
        match tokio::time::timeout(self.bounds.transaction, self.try_batch(events)).await {
            Ok(result) => result,
            Err(_) => Err(BatchFailure::Unavailable(format!(
                "the database did not finish a group's transaction within {:?}",
                self.bounds.transaction
            ))),
        }
    }

    async fn try_batch(
        &self,
        events: &[(&Event, &[Arc<dyn Handler>])],
    ) -> Result<Duration, BatchFailure> {
        let started = Instant::now();
        let txn = self.begin().await.map_err(batch_failure)?;
        let now = self.clock.now();
        let records = events.iter().map(|(event, _)| dedupe_record(event, now));
        if let Err(err) = processed_event::Entity::insert_many(records)
            .exec_without_returning(&txn)
            .await
        {
            let _ = txn.rollback().await;
            return Err(batch_failure(err));
        }
        let check = started.elapsed();
        for (handler, its_events) in by_handler(events) {
            let result = AssertUnwindSafe(handler.handle_batch(&its_events, &txn))
                .catch_unwind()
                .await;
            let failure = match result {
                Ok(Ok(())) => continue,
                Ok(Err(HandlerError::Db(err))) => batch_failure(err),
                Ok(Err(_)) | Err(_) => BatchFailure::Redo,
            };
            let _ = txn.rollback().await;
            return Err(failure);
        }
        txn.commit().await.map_err(batch_failure)?;
        Ok(check)
    }
}

/// A group's database error: an unreachable database fails the whole group, anything else
/// sends its events through one transaction each.
fn batch_failure(err: DbErr) -> BatchFailure {
    match classify(&err) {
        DbErrorKind::Unavailable => BatchFailure::Unavailable(err.to_string()),
        _ => BatchFailure::Redo,
    }
}

/// Each distinct handler of a batch (in the order sources list them) with the events that run
/// it, so that a handler sees its events together. Sources naming the same handler share one
/// instance (the registry's), which is what makes them one group.
fn by_handler<'a>(
    events: &[(&'a Event, &'a [Arc<dyn Handler>])],
) -> Vec<(&'a Arc<dyn Handler>, Vec<&'a Event>)> {
    let mut groups: Vec<(&Arc<dyn Handler>, Vec<&Event>)> = Vec::new();
    for (event, handlers) in events {
        for handler in handlers.iter() {
            match groups.iter_mut().find(|(h, _)| Arc::ptr_eq(h, handler)) {
                Some((_, its_events)) => its_events.push(event),
                None => groups.push((handler, vec![event])),
            }
        }
    }
    groups
}
