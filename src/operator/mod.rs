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

use crate::engine::EngineError;

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
