//! What an operator does beside the flow: find events ([`search`], [`view`]), re-run one on
//! purpose ([`replay`]), and run bulk operations as resumable [`jobs`] (redrive dead
//! deliveries, replay rejected or failed events). The admin routes call these; so does the
//! job runner, which is why none of it speaks HTTP: [`OperatorError`] says what went wrong
//! and `error.rs` maps it to a status.

pub mod filter;
pub mod jobs;
pub mod replay;
pub mod runner;
pub mod search;
pub mod view;

use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait};

use crate::db::Limits;
use crate::engine::EngineError;

/// The statement and lock bounds an operator's transactions run under (reads and the job
/// runner's batches), where the session does not already carry them (MariaDB/MySQL; see
/// `db::limits`). Without them a filter no index serves (an event type that matches nothing,
/// on 10 million rows) ran for ten minutes on MariaDB holding a pool connection the writers
/// need (BENCHMARKS.md), and a redrive batch meeting a row locked elsewhere waited out
/// InnoDB's 50 s lock wait.
#[derive(Debug, Clone, Copy)]
pub struct OperatorLimits(pub Option<Limits>);

impl OperatorLimits {
    /// A transaction for an operator, bounded like an ingest transaction.
    pub async fn begin(&self, db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
        let txn = db.begin().await?;
        if let Some(limits) = &self.0 {
            if let Err(err) = limits.apply(&txn).await {
                let _ = txn.rollback().await;
                return Err(err);
            }
        }
        Ok(txn)
    }

    /// One page of events (`GET /events`, the console's lists): the hits and their summaries,
    /// read in one bounded transaction.
    pub async fn page(
        &self,
        db: &DatabaseConnection,
        query: &filter::ListQuery,
    ) -> Result<view::EventPage, DbErr> {
        let txn = self.begin(db).await?;
        let (hits, next) = search::page(&txn, query).await?;
        let digests: Vec<_> = hits.iter().map(|(_, d)| *d).collect();
        let events = view::summaries(&txn, &digests).await?;
        txn.commit().await?;
        Ok(view::EventPage {
            events,
            next_cursor: next.map(|c| c.encode()),
        })
    }

    /// One event's detail, or `None` when idemhook knows nothing of it.
    pub async fn detail(
        &self,
        db: &DatabaseConnection,
        digest: &crate::event::key::Sha256Digest,
    ) -> Result<Option<view::EventDetail>, DbErr> {
        let txn = self.begin(db).await?;
        let detail = view::detail(&txn, digest).await?;
        txn.commit().await?;
        Ok(detail)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 409: the event's state does not allow it (processed and not forced, no payload kept).
    #[error("{0}")]
    Conflict(String),
    /// 422: the handlers ran and refused or failed; nothing was applied.
    #[error("{0}")]
    NotApplied(String),
    /// 400: a filter or a parameter is wrong.
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

impl From<filter::FilterError> for OperatorError {
    fn from(err: filter::FilterError) -> Self {
        OperatorError::BadRequest(err.0)
    }
}
