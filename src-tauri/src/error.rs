//! The error every command returns across the IPC boundary: a code the UI may branch on and a
//! message to show, never a bare string.

use serde::Serialize;
use stepwise_engine::EngineError;
use ts_rs::TS;

/// What kind of failure, for the UI to branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Bad input: a workflow with errors, an unknown run, a bad value.
    Invalid,
    /// The run refused the command (the step no longer waits, the proposal changed).
    Refused,
    /// No such run, workflow or file.
    NotFound,
    /// Anything else (the database, the file system).
    Internal,
}

/// A failed command, as the UI receives it.
#[derive(Debug, Clone, Serialize, TS, thiserror::Error)]
#[error("{message}")]
pub struct AppError {
    pub code: ErrorCode,
    pub message: String,
}

impl AppError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> AppError {
        AppError {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> AppError {
        AppError::new(ErrorCode::Invalid, message)
    }

    pub fn internal(message: impl Into<String>) -> AppError {
        AppError::new(ErrorCode::Internal, message)
    }
}

impl From<EngineError> for AppError {
    fn from(error: EngineError) -> AppError {
        let code = match &error {
            EngineError::Refused(_) | EngineError::ProposalChanged { .. } => ErrorCode::Refused,
            EngineError::RunNotFound { .. } => ErrorCode::NotFound,
            e if e.is_invalid_input() => ErrorCode::Invalid,
            _ => ErrorCode::Internal,
        };
        AppError::new(code, error.to_string())
    }
}
