//! The one error type of the HTTP surface, and its mapping to status codes.
//!
//! Client errors carry a message that says what to fix. Server errors are logged with their
//! detail and answered with an opaque message: a database error string can name tables,
//! hosts or values that a caller has no business seeing.

use std::io::Cursor;

use rocket::http::{ContentType, Header, Status};
use rocket::request::Request;
use rocket::response::{self, Responder, Response};
use serde_json::json;

use crate::db::error::{classify, DbErrorKind};
use crate::engine::EngineError;
use crate::event::key::KeyError;
use crate::metrics::Rejection;
use crate::operator::OperatorError;
use crate::providers::ProviderError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request cannot be understood (bad JSON, missing type or id, bad key).
    #[error("{0}")]
    BadRequest(String),
    /// 401: missing or wrong credentials (admin token; webhook signatures).
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the endpoint is disabled, or the operator's role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 404: unknown source, event or order.
    #[error("{0}")]
    NotFound(String),
    /// 409: the request conflicts with the resource's state (a redelivery already pending).
    #[error("{0}")]
    Conflict(String),
    /// 422: the request was understood, and what it asked for ran and did not apply (a
    /// replay whose handler refused or failed again).
    #[error("{0}")]
    Unprocessable(String),
    /// 413: body over the source's limit (its `max_body`, or its provider's default).
    #[error("the body is larger than source {name:?}'s limit of {limit} bytes")]
    PayloadTooLarge { name: String, limit: u64 },
    /// 431: more header bytes than a webhook needs.
    #[error("the request headers are larger than {limit} bytes")]
    HeadersTooLarge { limit: usize },
    /// 429 with `Retry-After`: this address failed to authenticate too often.
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after_secs: u32,
    },
    /// 503 with `Retry-After`: try again later (database down, shard queue full).
    #[error("{message}")]
    Unavailable {
        message: &'static str,
        retry_after_secs: u32,
    },
    /// 500: logged with `detail`; the caller sees only `public`.
    #[error("{public}")]
    Internal {
        public: &'static str,
        detail: String,
    },
}

impl ApiError {
    pub fn status(&self) -> Status {
        match self {
            ApiError::BadRequest(_) => Status::BadRequest,
            ApiError::Unauthorized(_) => Status::Unauthorized,
            ApiError::Forbidden(_) => Status::Forbidden,
            ApiError::NotFound(_) => Status::NotFound,
            ApiError::Conflict(_) => Status::Conflict,
            ApiError::Unprocessable(_) => Status::UnprocessableEntity,
            ApiError::PayloadTooLarge { .. } => Status::PayloadTooLarge,
            ApiError::HeadersTooLarge { .. } => Status::RequestHeaderFieldsTooLarge,
            ApiError::TooManyRequests { .. } => Status::TooManyRequests,
            ApiError::Unavailable { .. } => Status::ServiceUnavailable,
            ApiError::Internal { .. } => Status::InternalServerError,
        }
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        ApiError::Internal {
            public: "internal error",
            detail: detail.to_string(),
        }
    }
}

/// How the ingest route counts a delivery that it did not answer 200.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// Refused before its transaction, or instead of it: `idemhook_events_rejected_total`.
    Rejected(Rejection),
    /// Its transaction ran and did not commit: `idemhook_events_failed_total`.
    Failed,
}

impl EngineError {
    /// The one mapping of an engine error: the HTTP answer, and how the delivery is counted.
    pub fn answer(self) -> (ApiError, Counted) {
        let unavailable = |message, retry_after_secs| ApiError::Unavailable {
            message,
            retry_after_secs,
        };
        match self {
            EngineError::QueueFull => (
                unavailable("too many events are waiting; retry later", 1),
                Counted::Rejected(Rejection::QueueFull),
            ),
            // Logged once per outage by the engine, not once per request here.
            EngineError::Unavailable(_) => (
                unavailable(
                    "the database is unavailable; the event was not recorded, retry later",
                    5,
                ),
                Counted::Rejected(Rejection::Unavailable),
            ),
            EngineError::Timeout(detail) => {
                tracing::warn!(%detail, "event transaction timed out waiting on the database");
                (
                    unavailable(
                        "the event's transaction waited too long on the database; retry later",
                        1,
                    ),
                    Counted::Rejected(Rejection::Timeout),
                )
            }
            EngineError::Conflict(detail) => {
                tracing::warn!(%detail, "event transaction kept conflicting");
                (
                    unavailable("the event's transaction kept conflicting; retry later", 1),
                    Counted::Rejected(Rejection::Unavailable),
                )
            }
            EngineError::ShuttingDown => (
                unavailable("this instance is shutting down; retry later", 1),
                Counted::Rejected(Rejection::Unavailable),
            ),
            EngineError::HandlerFailed(detail) => (
                ApiError::Internal {
                    public:
                        "a handler failed; the event was rolled back and not recorded as processed",
                    detail,
                },
                Counted::Failed,
            ),
            EngineError::Internal(detail) => (
                ApiError::Internal {
                    public: "internal error; the event was not recorded as processed",
                    detail,
                },
                Counted::Failed,
            ),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(err: EngineError) -> Self {
        err.answer().0
    }
}

impl From<KeyError> for ApiError {
    fn from(err: KeyError) -> Self {
        ApiError::BadRequest(err.to_string())
    }
}

impl From<ProviderError> for ApiError {
    fn from(err: ProviderError) -> Self {
        ApiError::BadRequest(err.to_string())
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(err: sea_orm::DbErr) -> Self {
        match classify(&err) {
            DbErrorKind::Unavailable => EngineError::Unavailable(err.to_string()).into(),
            // An admin read past the statement timeout (a filter no index serves, on a huge
            // table), or a row locked elsewhere: the database is fine, the request is not.
            DbErrorKind::Timeout => ApiError::Unavailable {
                message: "the database query ran past its timeout; narrow it (a source, or \
                          since/until) or retry later",
                retry_after_secs: 1,
            },
            _ => ApiError::internal(err),
        }
    }
}

impl From<crate::operator::filter::FilterError> for ApiError {
    fn from(err: crate::operator::filter::FilterError) -> Self {
        ApiError::BadRequest(err.0)
    }
}

impl From<OperatorError> for ApiError {
    fn from(err: OperatorError) -> Self {
        match err {
            OperatorError::NotFound(m) => ApiError::NotFound(m),
            OperatorError::Conflict(m) => ApiError::Conflict(m),
            OperatorError::NotApplied(m) => ApiError::Unprocessable(m),
            OperatorError::BadRequest(m) => ApiError::BadRequest(m),
            OperatorError::Engine(e) => e.into(),
            OperatorError::Db(e) => e.into(),
        }
    }
}

/// The body of every error answer, as the OpenAPI document describes it.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, and for a client error what to change.
    pub error: String,
}

/// `{"error": "…"}` with the given status: the shape of every error idemhook answers.
pub struct JsonError {
    status: Status,
    message: String,
}

impl JsonError {
    pub fn new(status: Status, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn into_response(self) -> Response<'static> {
        let body = json!({ "error": self.message }).to_string();
        Response::build()
            .status(self.status)
            .header(ContentType::JSON)
            .sized_body(body.len(), Cursor::new(body))
            .finalize()
    }
}

impl<'r> Responder<'r, 'static> for JsonError {
    fn respond_to(self, _req: &'r Request<'_>) -> response::Result<'static> {
        Ok(self.into_response())
    }
}

impl<'r> Responder<'r, 'static> for ApiError {
    fn respond_to(self, _req: &'r Request<'_>) -> response::Result<'static> {
        let status = self.status();
        if let ApiError::Internal { detail, .. } = &self {
            tracing::error!(%detail, "request failed");
        }
        let mut response = JsonError::new(status, self.to_string()).into_response();
        if let ApiError::Unavailable {
            retry_after_secs, ..
        }
        | ApiError::TooManyRequests {
            retry_after_secs, ..
        } = self
        {
            response.set_header(Header::new("Retry-After", retry_after_secs.to_string()));
        }
        Ok(response)
    }
}
