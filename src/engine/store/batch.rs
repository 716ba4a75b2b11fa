//! Group commit: several new events in one transaction, and what to do when that fails.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use sea_orm::{DatabaseTransaction, EntityTrait, TransactionTrait};

use super::{dedupe_record, AttemptError, BatchFailure, Store};
use crate::db::error::{classify, DbErrorKind};
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
    /// batch's events in one [`Handler::handle_batch`] call. On PostgreSQL, when every handler
    /// hands over its rows ([`Handler::writes`]), the whole batch is one statement instead
    /// (`statement.rs`).
    ///
    /// `events` must be sorted by digest and free of repeats: two batches on two instances
    /// then take their dedupe-row locks in the same order and cannot deadlock on them.
    pub async fn commit_batch(
        &self,
        events: &[(&Event, &[Arc<dyn Handler>])],
    ) -> Result<Duration, BatchFailure> {
        let groups = by_handler(events);
        if let Some(written) = self.commit_statement(events, &groups).await {
            return written;
        }
        let started = Instant::now();
        let txn = self.wait(self.db.begin()).await.map_err(batch_failure)?;
        let batch: Vec<&Event> = events.iter().map(|(e, _)| *e).collect();
        match self.wait(self.legacy_replays(&txn, &batch)).await {
            Ok(replays) if replays.is_empty() => {}
            // A replay of an earlier release's record: each event alone finds its own answer.
            Ok(_) => {
                self.rollback(txn).await;
                return Err(BatchFailure::Redo);
            }
            Err(err) => {
                self.rollback(txn).await;
                return Err(batch_failure(err));
            }
        }
        let now = self.clock.now();
        let records = events.iter().map(|(event, _)| dedupe_record(event, now));
        let inserted =
            self.wait(processed_event::Entity::insert_many(records).exec_without_returning(&txn));
        if let Err(err) = inserted.await {
            self.rollback(txn).await;
            return Err(batch_failure(err));
        }
        let check = started.elapsed();
        let run = tokio::time::timeout(self.bounds.handlers, run_batch(&groups, &txn));
        let failure = match run.await {
            Ok(Ok(())) => None,
            Ok(Err(HandlerError::Db(err))) => Some(batch_failure(AttemptError::Db(err))),
            // A handler's failure, rejection, panic or stall: each event alone finds its own.
            Ok(Err(_)) | Err(_) => Some(BatchFailure::Redo),
        };
        if let Some(failure) = failure {
            self.rollback(txn).await;
            return Err(failure);
        }
        if let Err(err) = self.wait(txn.commit()).await {
            // Applied after all? Then every event of the group is (one transaction).
            let (first, _) = events.first().copied().ok_or(BatchFailure::Redo)?;
            if !self.committed_by(first).await {
                return Err(batch_failure(err));
            }
        }
        crate::handlers::committed(groups.iter().map(|(h, _)| *h));
        Ok(check)
    }
}

/// Each handler of the group once, with its events ([`Handler::handle_batch`]); a panic is a
/// failure like any other.
async fn run_batch(
    groups: &[(&Arc<dyn Handler>, Vec<&Event>)],
    txn: &DatabaseTransaction,
) -> Result<(), HandlerError> {
    for (handler, its_events) in groups {
        AssertUnwindSafe(handler.handle_batch(its_events, txn))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Err(HandlerError::failed("a handler panicked in a group")))?;
    }
    Ok(())
}

/// A group's error: an unreachable or stalled database fails the whole group, anything else
/// sends its events through one transaction each.
pub(super) fn batch_failure(err: AttemptError) -> BatchFailure {
    match err {
        AttemptError::Db(err) if classify(&err) == DbErrorKind::Unavailable => {
            BatchFailure::Unavailable(err.to_string())
        }
        AttemptError::Stalled => {
            BatchFailure::Unavailable("the database did not answer a statement in time".into())
        }
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
