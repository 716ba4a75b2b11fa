//! What an operator does beside the flow: find events ([`search`], [`view`]), re-run one on
//! purpose ([`replay`]), redeliver one, run bulk operations as resumable [`jobs`] (redrive
//! dead deliveries, replay rejected or failed events), read an order ([`orders`]). All of it
//! through one service, [`Operator`], which the admin routes, the console and the job
//! [`runner`] call; none of it speaks HTTP: [`OperatorError`] says what went wrong and
//! `routes::error` maps it to a status.

pub mod audit;
pub mod delivery_view;
pub mod destinations;
pub mod filter;
pub mod instant;
pub mod jobs;
pub mod orders;
pub mod replay;
pub mod runner;
pub mod search;
mod service;
pub mod view;

pub use service::Operator;

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
