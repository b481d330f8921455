//! Sending a signal, as `stepwise signal` does: recorded once per name and key, taken by a
//! step waiting for it, and a waiting run nobody drives is driven here.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stepwise_engine::{EngineError, SendSignal};
use utoipa::ToSchema;

use super::{ApiState, Body};
use crate::error::{ApiError, ErrorBody};

/// A signal.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalRequest {
    /// What a `wait_signal` step (or an `on: signal:` trigger) waits for.
    pub name: String,
    /// Its data: the waiting step's output.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub data: Value,
    /// Its idempotency key: the same name and key again is the same signal, taken once.
    pub key: Option<String>,
    /// Ties it to other records of one piece of work.
    pub correlation_id: Option<String>,
}

/// What sending it did.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignalResult {
    pub signal_id: i64,
    /// `false`: a signal of that name and key was recorded already (this is that one).
    pub recorded: bool,
    /// The run whose waiting step took it, if one did yet.
    pub taken_by: Option<String>,
    /// The run waiting for it that nobody drove, now driven (by this server, or by whichever
    /// process took it first).
    pub woke: Option<String>,
}

/// Records a signal; a step waiting for it takes it, in whichever process drives its run.
#[utoipa::path(
    post,
    path = "/v1/signals",
    tag = "signals",
    request_body = SignalRequest,
    responses(
        (status = 200, description = "Recorded (or found recorded already)", body = SignalResult),
        (status = 422, description = "The name or key cannot be used", body = ErrorBody)
    )
)]
pub(crate) async fn send_signal(
    State(state): State<ApiState>,
    Body(request): Body<SignalRequest>,
) -> Result<Json<SignalResult>, ApiError> {
    let name = request.name.clone();
    let sent = state
        .engine
        .send_signal(SendSignal {
            name: request.name,
            payload: request.data,
            idempotency_key: request.key.filter(|k| !k.trim().is_empty()),
            correlation_id: request.correlation_id,
        })
        .await?;
    // The signal is recorded: from here on nothing fails the request (a client retrying
    // without a key would record it twice). A run waiting for it that nobody drives is driven
    // here (not resumed: a run paused meanwhile stays paused).
    let woke = match state.engine.run_to_wake_for(&name, &sent).await {
        Ok(Some(run)) => match state.engine.drive(run.as_str()).await {
            Ok(_) | Err(EngineError::RunLocked { .. }) => Some(run),
            Err(error) => {
                tracing::warn!(
                    "signal `{name}`: run {run} waits for it but cannot be driven here: {error}"
                );
                None
            }
        },
        Ok(None) => None,
        Err(error) => {
            tracing::warn!("signal `{name}`: looking for a run waiting for it: {error}");
            None
        }
    };
    Ok(Json(SignalResult {
        signal_id: sent.signal_id,
        recorded: sent.recorded,
        taken_by: sent.taken_by.map(|(run, _)| run.to_string()),
        woke: woke.map(|r| r.to_string()),
    }))
}
