//! Every failure an endpoint answers with: an HTTP status and a JSON body naming what kind of
//! failure it is and what is wrong, in words.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use stepwise_engine::EngineError;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// For a client to branch on: `unauthorized`, `forbidden`, `invalid`, `not_found`,
    /// `refused` (the run did not take the command: see `message`), `conflict`, `too_large`,
    /// `busy`, `internal`.
    pub kind: String,
    /// What is wrong, in words.
    pub message: String,
}

/// A failed request.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind,
            message: message.into(),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> ApiError {
        let (status, kind) = match &error {
            EngineError::Refused(_) | EngineError::ProposalChanged { .. } => {
                (StatusCode::CONFLICT, "refused")
            }
            EngineError::RunNotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            EngineError::RunLocked { .. } => (StatusCode::CONFLICT, "conflict"),
            e if e.is_invalid_input() => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError::new(status, kind, error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                kind: self.kind.to_string(),
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}
