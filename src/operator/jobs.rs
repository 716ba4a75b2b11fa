//! Bulk operations as rows in `jobs`: created by a request, run in batches by whichever
//! instance's [`super::runner`] holds the job's lease, and readable from any instance.
//!
//! A batch and the job's progress commit together where the batch is one statement (a
//! redrive), so a crash neither loses nor double-counts progress; a replay is one transaction
//! per event, and the job's progress is written after each, so a crash can redo at most the
//! one event in flight, which the replay then refuses as already processed (counted
//! `skipped`). Every progress write is fenced by the lease token: an instance that lost its
//! lease (paused past it, then woke) writes nothing.

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait,
};
use serde::Serialize;
use utoipa::ToSchema;

use super::filter::{Filters, Status};
use super::instant;
use super::OperatorError;
use crate::entities::job::{self, Column};
use crate::entities::{delivery, failed_attempt, processed_event};
use crate::forward::deliveries::in_undelivered_state;
use crate::status::{DeliveryStatus, EventStatus, JobStatus};

pub const REDRIVE: &str = "redrive";
pub const REPLAY: &str = "replay";

/// How long a runner holds a job between two progress writes before another may take it.
pub const LEASE: TimeDelta = TimeDelta::seconds(30);

/// `GET /jobs/{id}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobView {
    pub id: i64,
    /// `redrive` or `replay`.
    pub kind: String,
    /// The filters the job was started with.
    #[schema(value_type = Object)]
    pub filters: serde_json::Value,
    /// `running`, `done` or `failed`.
    #[schema(value_type = String)]
    pub status: JobStatus,
    /// Items that matched when the job started.
    pub matched: i64,
    /// Items the job acted on (rescheduled, or replayed and processed).
    pub done: i64,
    /// Items it could not act on (a replay a handler refused or failed again).
    pub failed: i64,
    /// Items that were no longer in the state the job acts on when it reached them.
    pub skipped: i64,
    pub last_error: Option<String>,
    pub created_by: String,
    #[serde(serialize_with = "instant::serialize")]
    #[schema(value_type = String)]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "instant::serialize")]
    #[schema(value_type = String)]
    pub updated_at: DateTime<Utc>,
    #[serde(serialize_with = "instant::option::serialize")]
    #[schema(value_type = Option<String>)]
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<job::Model> for JobView {
    fn from(j: job::Model) -> Self {
        JobView {
            id: j.id,
            kind: j.kind,
            filters: serde_json::from_str(&j.filters).unwrap_or_default(),
            status: j.status,
            matched: j.matched,
            done: j.done,
            failed: j.failed,
            skipped: j.skipped,
            last_error: j.last_error,
            created_by: j.created_by,
            created_at: j.created_at,
            updated_at: j.updated_at,
            finished_at: j.finished_at,
        }
    }
}

/// The filters a job of `kind` acts on, checked: a redrive takes dead deliveries (a `status`
/// other than `dead` is refused), a replay takes `rejected` (the default) or `failed` events.
pub fn job_filters(kind: &str, mut filters: Filters) -> Result<Filters, OperatorError> {
    let (allowed, default): (&[Status], Status) = if kind == REDRIVE {
        (&[Status::Dead], Status::Dead)
    } else {
        (&[Status::Rejected, Status::Failed], Status::Rejected)
    };
    let status = filters.status.unwrap_or(default);
    if !allowed.contains(&status) {
        let names: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
        return Err(OperatorError::BadRequest(format!(
            "a {kind} job takes `status` {}",
            names.join(" or ")
        )));
    }
    filters.status = Some(status);
    filters
        .check_destination()
        .map_err(|e| OperatorError::BadRequest(e.0))?;
    Ok(filters)
}

/// Records a job for a runner to take; `matched`: what [`count`] found when it started.
///
/// One statement, not in the counting read's transaction: on SQLite a transaction that reads
/// and then writes cannot upgrade its lock once another writer (a runner's progress) has
/// committed meanwhile, and fails at once instead of waiting (schemathesis found it: 500s and
/// 503s when jobs were started while others ran).
pub async fn create(
    db: &impl ConnectionTrait,
    kind: &str,
    filters: &Filters,
    matched: u64,
    operator: &str,
    now: DateTime<Utc>,
) -> Result<job::Model, OperatorError> {
    let row = job::ActiveModel {
        kind: Set(kind.to_owned()),
        filters: Set(serde_json::to_string(filters).unwrap_or_else(|_| "{}".into())),
        status: Set(JobStatus::Running),
        matched: Set(i64::try_from(matched).unwrap_or(i64::MAX)),
        done: Set(0),
        failed: Set(0),
        skipped: Set(0),
        cursor: Set(None),
        lease_until: Set(None),
        lease_token: Set(None),
        last_error: Set(None),
        created_by: Set(operator.to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
        finished_at: Set(None),
        ..Default::default()
    };
    let id = job::Entity::insert(row).exec(db).await?.last_insert_id;
    job::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| OperatorError::NotFound("the job vanished as it was created".into()))
}

/// How many items the filters match now (their `status` is set: see [`job_filters`]).
pub async fn count(db: &impl ConnectionTrait, f: &Filters) -> Result<u64, DbErr> {
    macro_rules! narrowed {
        ($select:expr, $m:ident, $time:ident) => {{
            let mut select = $select;
            if let Some(source) = &f.source {
                select = select.filter($m::Column::Source.eq(source.as_str()));
            }
            if let Some(t) = &f.event_type {
                select = select.filter($m::Column::EventType.eq(t.as_str()));
            }
            if let Some(since) = f.since {
                select = select.filter($m::Column::$time.gte(since));
            }
            if let Some(until) = f.until {
                select = select.filter($m::Column::$time.lt(until));
            }
            select.count(db).await
        }};
    }
    match f.status {
        // Dead deliveries (an event dead at two destinations counts twice).
        Some(Status::Dead) => narrowed!(
            delivery::Entity::find()
                .filter(in_undelivered_state(DeliveryStatus::Dead))
                .apply_if(f.destination.as_deref(), |q, name| {
                    q.filter(delivery::Column::Destination.eq(name))
                }),
            delivery,
            CreatedAt
        ),
        Some(Status::Failed) => narrowed!(
            failed_attempt::Entity::find()
                .filter(super::search::unsettled(db.get_database_backend())),
            failed_attempt,
            LastFailedAt
        ),
        _ => narrowed!(
            processed_event::Entity::find()
                .filter(processed_event::Column::Status.eq(EventStatus::Rejected)),
            processed_event,
            ProcessedAt
        ),
    }
}

pub async fn get(db: &impl ConnectionTrait, id: i64) -> Result<Option<job::Model>, DbErr> {
    job::Entity::find_by_id(id).one(db).await
}

/// Takes the oldest running job nobody holds (never leased, or its lease ran out), under
/// `token`, or `None`.
pub async fn claim(
    db: &impl ConnectionTrait,
    token: &[u8; 16],
    now: DateTime<Utc>,
) -> Result<Option<job::Model>, DbErr> {
    let free = || {
        sea_orm::Condition::any()
            .add(Column::LeaseUntil.is_null())
            .add(Column::LeaseUntil.lt(now))
    };
    let candidates: Vec<i64> = job::Entity::find()
        .select_only()
        .column(Column::Id)
        .filter(Column::Status.eq(JobStatus::Running))
        .filter(free())
        .order_by_asc(Column::Id)
        .limit(4)
        .into_tuple()
        .all(db)
        .await?;
    for id in candidates {
        let taken = job::Entity::update_many()
            .col_expr(Column::LeaseToken, Expr::val(token.to_vec()))
            .col_expr(Column::LeaseUntil, Expr::val(now + LEASE))
            .filter(Column::Id.eq(id))
            .filter(Column::Status.eq(JobStatus::Running))
            .filter(free())
            .exec(db)
            .await?;
        if taken.rows_affected == 1 {
            return get(db, id).await;
        }
    }
    Ok(None)
}

/// Progress of one step, written under the lease.
#[derive(Debug, Default, Clone, Copy)]
pub struct Progress {
    pub done: u64,
    pub failed: u64,
    pub skipped: u64,
}

/// Adds `progress`, moves the cursor (`None` with `finished`: the job is done) and renews the
/// lease. `false`: the lease is lost, and nothing was written.
pub async fn advance(
    db: &impl ConnectionTrait,
    id: i64,
    token: &[u8; 16],
    progress: Progress,
    cursor: Option<String>,
    finished: bool,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let add = |col: Column, n: u64| Expr::col(col).add(i64::try_from(n).unwrap_or(i64::MAX));
    let mut update = job::Entity::update_many()
        .col_expr(Column::Done, add(Column::Done, progress.done))
        .col_expr(Column::Failed, add(Column::Failed, progress.failed))
        .col_expr(Column::Skipped, add(Column::Skipped, progress.skipped))
        .col_expr(Column::Cursor, Expr::val(cursor))
        .col_expr(Column::UpdatedAt, Expr::val(now));
    // Each column once: PostgreSQL refuses two assignments to one column.
    update = if finished {
        update
            .col_expr(Column::Status, Expr::val(JobStatus::Done))
            .col_expr(Column::FinishedAt, Expr::val(Some(now)))
            .col_expr(Column::LeaseUntil, Expr::val(None::<DateTime<Utc>>))
            .col_expr(Column::LeaseToken, Expr::val(None::<Vec<u8>>))
    } else {
        update.col_expr(Column::LeaseUntil, Expr::val(now + LEASE))
    };
    let result = update
        .filter(Column::Id.eq(id))
        .filter(Column::LeaseToken.eq(token.to_vec()))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Notes why the last batch failed (the job is taken up again when its lease runs out), so
/// `GET /jobs/<id>` shows what it is waiting on. Best effort, fenced like [`advance`].
pub async fn note_error(db: &impl ConnectionTrait, id: i64, token: &[u8; 16], error: &str) {
    let _ = job::Entity::update_many()
        .col_expr(Column::LastError, Expr::val(error))
        .filter(Column::Id.eq(id))
        .filter(Column::LeaseToken.eq(token.to_vec()))
        .exec(db)
        .await;
}

/// Ends a job that cannot go on (its filters no longer parse), fenced like [`advance`].
pub async fn fail(
    db: &impl ConnectionTrait,
    id: i64,
    token: &[u8; 16],
    error: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    job::Entity::update_many()
        .col_expr(Column::Status, Expr::val(JobStatus::Failed))
        .col_expr(Column::LastError, Expr::val(error))
        .col_expr(Column::UpdatedAt, Expr::val(now))
        .col_expr(Column::FinishedAt, Expr::val(Some(now)))
        .filter(Column::Id.eq(id))
        .filter(Column::LeaseToken.eq(token.to_vec()))
        .exec(db)
        .await
        .map(|_| ())
}
