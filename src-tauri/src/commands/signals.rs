//! Signals from the window: the "Send signal" form of a step that waits for one.

use stepwise_engine::SendSignal;
use tauri::State;

use crate::error::AppError;
use crate::state::AppState;
use crate::view::SignalSentView;

/// Records a signal (`data`: JSON text, default null; `key`: its idempotency key), which a
/// `wait_signal` step waiting for `name` takes, in whichever process drives its run.
#[tauri::command]
pub async fn send_signal(
    state: State<'_, AppState>,
    name: String,
    data: Option<String>,
    key: Option<String>,
) -> Result<SignalSentView, AppError> {
    let payload = match data.as_deref().map(str::trim) {
        None | Some("") => serde_json::Value::Null,
        Some(text) => serde_json::from_str(text)
            .map_err(|e| AppError::invalid(format!("the signal's data is not JSON: {e}")))?,
    };
    let key = key.filter(|key| !key.trim().is_empty());
    let sent = state
        .engine
        .send_signal(SendSignal {
            name,
            payload,
            idempotency_key: key,
            correlation_id: None,
        })
        .await?;
    Ok(SignalSentView {
        signal_id: sent.signal_id,
        recorded: sent.recorded,
        taken_by: sent.taken_by.map(|(run, _)| run),
    })
}
