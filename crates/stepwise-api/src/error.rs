//! Every failure an endpoint answers with: an HTTP status and a JSON body naming what kind of
//! failure it is and what is wrong, in words.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use stepwise_engine::{EngineError, RefusalKind};
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
    /// `too_large`, `busy`, `internal`; when a run refused a command, why: `stale_proposal`
    /// (the file changed; a new proposal waits), `proposal_changed`, `wrong_state` (the step
    /// does not wait for that), `run_finished`, `unknown_step`, `missing_reason`,
    /// `invalid_edit`, `invalid_proposal_hash`; `conflict` when another process holds the
    /// run.
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
            EngineError::Refused(refusal) => refused(refusal.kind),
            EngineError::ProposalChanged { .. } => (StatusCode::CONFLICT, "proposal_changed"),
            EngineError::RunFinished { .. } => (StatusCode::CONFLICT, "run_finished"),
            EngineError::WrongStepState { .. } => (StatusCode::CONFLICT, "wrong_state"),
            EngineError::UnknownStep { .. } => (StatusCode::NOT_FOUND, "unknown_step"),
            EngineError::RunNotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            EngineError::RunLocked { .. } => (StatusCode::CONFLICT, "conflict"),
            e if e.is_invalid_input() => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError::new(status, kind, error.to_string())
    }
}

/// A run's refusal: 409 when the run is not in a state to take the command (a client may look
/// again and decide anew), 422 when the command itself is wrong, 404 when it names no step,
/// 403 when the person may not answer (`approvers`);
/// the kind is the refusal's own.
fn refused(kind: RefusalKind) -> (StatusCode, &'static str) {
    match kind {
        RefusalKind::StaleProposal => (StatusCode::CONFLICT, "stale_proposal"),
        RefusalKind::ProposalChanged => (StatusCode::CONFLICT, "proposal_changed"),
        RefusalKind::WrongState => (StatusCode::CONFLICT, "wrong_state"),
        RefusalKind::RunFinished => (StatusCode::CONFLICT, "run_finished"),
        RefusalKind::UnknownStep => (StatusCode::NOT_FOUND, "unknown_step"),
        RefusalKind::MissingReason => (StatusCode::UNPROCESSABLE_ENTITY, "missing_reason"),
        RefusalKind::InvalidEdit => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_edit"),
        RefusalKind::InvalidProposalHash => {
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_proposal_hash")
        }
        RefusalKind::Unreadable => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        RefusalKind::NotAnApprover => (StatusCode::FORBIDDEN, "not_an_approver"),
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
