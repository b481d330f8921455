//! Pausing, resuming and cancelling a run, and how every command is sent: to whichever
//! process drives the run, or driven here when none does.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use stepwise_engine::Command;
use utoipa::ToSchema;

use super::{ApiState, Segments};
use crate::error::{ApiError, ErrorBody};

/// A command the run took.
#[derive(Debug, Serialize, ToSchema)]
pub struct Done {
    pub run_id: String,
    /// `approve`, `reject`, `pause`, `resume`, `cancel`, `continue --all`.
    pub command: String,
    /// The seq of the event it recorded; absent when it changed nothing (resuming a run that
    /// was not paused).
    pub seq: Option<u64>,
}

/// Sends a command and answers once the run took it (or refused it: 409, saying why).
pub(crate) async fn send(
    state: &ApiState,
    run: &str,
    command: Command,
) -> Result<Json<Done>, ApiError> {
    let run_id = state.engine.find_run(run).await?.run_id;
    let name = command.name();
    let applied = state.engine.send(run_id.as_str(), command).await?;
    Ok(Json(Done {
        run_id: run_id.to_string(),
        command: name.to_string(),
        seq: applied.seq.map(|s| s.get()),
    }))
}

/// Running operations finish; nothing new starts until it is resumed.
#[utoipa::path(
    post,
    path = "/v1/runs/{run}/pause",
    tag = "control",
    params(("run" = String, Path, description = "The run's id, or a prefix that names one run")),
    responses(
        (status = 200, description = "Paused", body = Done),
        (status = 409, description = "Refused (the run has ended)", body = ErrorBody)
    )
)]
pub(crate) async fn pause(
    State(state): State<ApiState>,
    Segments(run): Segments<String>,
) -> Result<Json<Done>, ApiError> {
    send(&state, &run, Command::Pause).await
}

/// Goes on after a pause; a run no process drives (interrupted) is taken over and driven here.
#[utoipa::path(
    post,
    path = "/v1/runs/{run}/resume",
    tag = "control",
    params(("run" = String, Path, description = "The run's id, or a prefix that names one run")),
    responses(
        (status = 200, description = "Resumed", body = Done),
        (status = 409, description = "Refused (the run has ended)", body = ErrorBody)
    )
)]
pub(crate) async fn resume(
    State(state): State<ApiState>,
    Segments(run): Segments<String>,
) -> Result<Json<Done>, ApiError> {
    let row = state.engine.find_run(&run).await?;
    if row.status.is_finished() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "run_finished",
            format!("run {} has already {}", row.run_id, row.status.as_str()),
        ));
    }
    // Sent to whoever drives it; with nobody driving it, this server drives it.
    send(&state, row.run_id.as_str(), Command::Resume).await
}

/// Running commands are killed, nothing new starts (but compensations), and the run ends
/// cancelled.
#[utoipa::path(
    post,
    path = "/v1/runs/{run}/cancel",
    tag = "control",
    params(("run" = String, Path, description = "The run's id, or a prefix that names one run")),
    responses(
        (status = 200, description = "Cancelled", body = Done),
        (status = 409, description = "Refused (the run has ended)", body = ErrorBody)
    )
)]
pub(crate) async fn cancel(
    State(state): State<ApiState>,
    Segments(run): Segments<String>,
) -> Result<Json<Done>, ApiError> {
    send(&state, &run, Command::Cancel).await
}
