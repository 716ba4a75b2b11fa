//! The job runner: one task per instance that takes running jobs nobody holds and works them
//! to the end in batches, renewing its lease with every progress write. A job started on an
//! instance that then died is taken over by any other (or by the same one restarted) once
//! its lease runs out.

use std::time::Duration;

use sea_orm::TransactionTrait;
use tokio::sync::watch;

use super::filter::{Cursor, Filters, ListQuery};
use super::jobs::{self, Progress, REDRIVE};
use super::{search, Operator, OperatorError};
use crate::engine::store::ReplayRequest;
use crate::entities::job;
use crate::forward::deliveries;
use crate::status::{DeliveryStatus, JobStatus};
use crate::task::{OnStop, TaskGuard};

/// Items per batch: one redrive statement, or this many replays between two looks at `stop`.
const BATCH: u64 = 100;
/// A failed batch is tried again this many times, after `RETRY_PAUSE`, doubling up to
/// `RETRY_PAUSE_MAX` (4.6 s of pauses in all), from where the job stands, before the job is
/// left to its lease (30 s). The failures this absorbs are races, gone on the next try: on
/// SQLite, a batch's read-then-write transaction cannot upgrade its lock once another writer
/// committed meanwhile and fails at once (a redrive job lost to twenty jobs being created, and
/// then sat 30 s); a row locked elsewhere past the lock timeout; deadlocks. Should the lease
/// run out meanwhile, the fenced writes and [`JobRunner::resume_at`] see it and stop. A stop
/// signal ends a pause at once.
const RETRIES: u32 = 8;
const RETRY_PAUSE: Duration = Duration::from_millis(50);
const RETRY_PAUSE_MAX: Duration = Duration::from_secs(1);
/// What becomes of a job whose runner stops before it is done.
const STOPPED: &str = "the job is taken up again when its lease runs out";
/// How often an idle runner looks for a job it did not hear of (one started elsewhere, or
/// one whose runner died).
const POLL: Duration = Duration::from_secs(2);

/// How one batch ended.
enum Batch {
    /// More to do, from this position.
    More(Cursor),
    /// The last batch: the job is written done.
    Done,
    /// A fenced write found the lease gone: another runner owns the job now.
    LeaseLost,
    /// The runner was told to stop mid-batch; the job is taken up again when its lease runs
    /// out.
    Stopped,
}

/// Works jobs through the same service the admin routes use.
pub struct JobRunner {
    pub operator: Operator,
}

/// The job runner, started: see [`JobRunner::spawn`].
pub fn start(operator: Operator) -> TaskGuard {
    JobRunner { operator }.spawn()
}

impl JobRunner {
    /// Runs jobs until its guard is stopped: a stop is seen before each job, batch and replay,
    /// and ends a pause at once; the job under way is taken up again when its lease runs out
    /// ([`OnStop::Tell`]: a shutdown does not wait for it). A job created on this instance
    /// wakes it at once (`Operator::start_job`) rather than at the next poll.
    pub fn spawn(self) -> TaskGuard {
        let woken = self.operator.jobs_created.clone();
        TaskGuard::spawn("job runner", OnStop::Tell, |mut stopped| async move {
            loop {
                let token: [u8; 16] = rand::random();
                loop {
                    if *stopped.borrow() {
                        return;
                    }
                    match jobs::claim(&self.operator.db, &token, self.operator.clock.now()).await {
                        Ok(Some(job)) => self.run(job, &token, &stopped).await,
                        Ok(None) => break,
                        Err(err) => {
                            tracing::warn!(error = %err, "jobs: cannot look for work");
                            break;
                        }
                    }
                }
                tokio::select! {
                    _ = woken.notified() => {}
                    _ = tokio::time::sleep(POLL) => {}
                    _ = stopped.changed() => return,
                }
            }
        })
    }

    /// Works `job` until it is done, the lease is lost, the database fails (the lease then
    /// runs out and the job is taken up again), or the runner is told to stop.
    async fn run(&self, job: job::Model, token: &[u8; 16], stopped: &watch::Receiver<bool>) {
        let id = job.id;
        let filters: Result<Filters, _> = serde_json::from_str(&job.filters);
        let cursor = job.cursor.as_deref().map(Cursor::decode).transpose();
        let (filters, mut cursor) = match (filters, cursor) {
            (Ok(f), Ok(c)) => (f, c),
            _ => {
                let error = "the job's stored filters or cursor do not parse";
                let _ = jobs::fail(
                    &self.operator.db,
                    id,
                    token,
                    error,
                    self.operator.clock.now(),
                )
                .await;
                return;
            }
        };
        tracing::info!(job = id, kind = %job.kind, "jobs: working a job");
        let mut failures = 0;
        loop {
            if *stopped.borrow() {
                return;
            }
            let query = ListQuery {
                filters: filters.clone(),
                limit: BATCH,
                cursor,
            };
            let step = if job.kind == REDRIVE {
                self.redrive_batch(id, token, &query).await
            } else {
                self.replay_batch(id, token, &query, stopped).await
            };
            match step {
                Ok(Batch::More(next)) => {
                    cursor = Some(next);
                    failures = 0;
                }
                Ok(Batch::Done) => {
                    tracing::info!(job = id, "jobs: job done");
                    return;
                }
                Ok(Batch::LeaseLost) => {
                    tracing::info!(
                        job = id,
                        "jobs: the job's lease was lost; it is left to its new owner"
                    );
                    return;
                }
                Ok(Batch::Stopped) => {
                    tracing::info!(job = id, "jobs: stopping; {STOPPED}");
                    return;
                }
                Err(err) if failures < RETRIES => {
                    tracing::info!(job = id, error = %err, "jobs: a batch failed; trying it again");
                    jobs::note_error(&self.operator.db, id, token, &err.to_string()).await;
                    // A stop ends the pause: a shutdown does not wait out seconds of them.
                    let pause = (RETRY_PAUSE * 2u32.pow(failures)).min(RETRY_PAUSE_MAX);
                    let mut stop = stopped.clone();
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = stop.wait_for(|&stop| stop) => {
                            tracing::info!(job = id, "jobs: stopped in a retry pause; {STOPPED}");
                            return;
                        }
                    }
                    failures += 1;
                    match self.resume_at(id, token).await {
                        Some(stored) => cursor = stored,
                        None => return,
                    }
                }
                Err(err) => {
                    tracing::warn!(job = id, error = %err, "jobs: a batch failed again; {STOPPED}");
                    jobs::note_error(&self.operator.db, id, token, &err.to_string()).await;
                    return;
                }
            }
        }
    }

    /// Where a job this runner still holds stands in the database, to go on from there after
    /// a failed batch (a replay batch writes its position after every event, so the batch's
    /// own start may be behind it). `None`: the lease is lost, the job is finished, or the
    /// database cannot say; the job is then left to its lease.
    async fn resume_at(&self, id: i64, token: &[u8; 16]) -> Option<Option<Cursor>> {
        let job = jobs::get(&self.operator.db, id).await.ok()??;
        let held =
            job.status == JobStatus::Running && job.lease_token.as_deref() == Some(&token[..]);
        let cursor = job.cursor.as_deref().map(Cursor::decode).transpose().ok()?;
        held.then_some(cursor)
    }

    /// One redrive batch and the job's progress in one transaction.
    async fn redrive_batch(
        &self,
        id: i64,
        token: &[u8; 16],
        query: &ListQuery,
    ) -> Result<Batch, OperatorError> {
        let txn = self.operator.db.begin().await?;
        let now = self.operator.clock.now();
        let (hits, next) = search::page(&txn, query).await?;
        let digests: Vec<Vec<u8>> = hits.iter().map(|(_, d)| d.to_vec()).collect();
        let done = if digests.is_empty() {
            0
        } else {
            let destination = query.filters.destination.as_deref();
            let rows =
                deliveries::reschedule(&txn, &digests, destination, &[DeliveryStatus::Dead], now);
            // Rows, not events: an event dead at two destinations counts once.
            rows.await?.min(digests.len() as u64)
        };
        let progress = Progress {
            done,
            failed: 0,
            skipped: digests.len() as u64 - done,
        };
        let encoded = next.map(|c| c.encode());
        if !jobs::advance(&txn, id, token, progress, encoded, next.is_none(), now).await? {
            txn.rollback().await?;
            return Ok(Batch::LeaseLost);
        }
        txn.commit().await?;
        Ok(next.map_or(Batch::Done, Batch::More))
    }

    /// One batch of replays, each its own transaction, the job's progress written after each.
    async fn replay_batch(
        &self,
        id: i64,
        token: &[u8; 16],
        query: &ListQuery,
        stopped: &watch::Receiver<bool>,
    ) -> Result<Batch, OperatorError> {
        let (hits, next) = search::page(&self.operator.db, query).await?;
        let request = ReplayRequest {
            force: false,
            operator: format!("job {id}"),
            job_id: Some(id),
            audit: None,
        };
        for (i, &(at, digest)) in hits.iter().enumerate() {
            if *stopped.borrow() {
                return Ok(Batch::Stopped);
            }
            let mut progress = Progress::default();
            match self.operator.replay(&digest, &request).await {
                Ok(_) => progress.done = 1,
                Err(OperatorError::NotApplied(_)) => progress.failed = 1,
                Err(OperatorError::NotFound(_) | OperatorError::Conflict(_)) => {
                    progress.skipped = 1
                }
                Err(err) => return Err(err),
            }
            let last = i + 1 == hits.len();
            let position = Cursor { at, digest };
            let (cursor, finished) = match (last, next) {
                (true, None) => (None, true),
                _ => (Some(position.encode()), false),
            };
            let now = self.operator.clock.now();
            if !jobs::advance(
                &self.operator.db,
                id,
                token,
                progress,
                cursor,
                finished,
                now,
            )
            .await?
            {
                return Ok(Batch::LeaseLost);
            }
        }
        if hits.is_empty() {
            let now = self.operator.clock.now();
            if !jobs::advance(
                &self.operator.db,
                id,
                token,
                Progress::default(),
                None,
                true,
                now,
            )
            .await?
            {
                return Ok(Batch::LeaseLost);
            }
        }
        Ok(next.map_or(Batch::Done, Batch::More))
    }
}
