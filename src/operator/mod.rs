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

use crate::event::EngineError;

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
