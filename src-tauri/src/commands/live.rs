//! Subscriptions: the live signals, and one run as it goes on.

use std::sync::Arc;

use tauri::State;
use tauri::ipc::Channel;

use crate::error::AppError;
use crate::state::AppState;
use crate::view::{LiveSignal, RunFeedItem};

/// Sends every live signal to `channel` from now on, after the driver failures of the last
/// minutes (a run that failed before the window listened is not left unseen).
#[tauri::command]
pub fn subscribe_live(state: State<'_, AppState>, channel: Channel<LiveSignal>) {
    let signals = state.live.subscribe();
    for failure in state.failures.recent() {
        if channel.send(failure).is_err() {
            return;
        }
    }
    crate::live::forward_signals(signals, channel);
}

/// Sends to `channel` what each batch of `run`'s events after `after_seq` changes (and its
/// model calls' and commands' text). The window follows one run at a time: this stops
/// following the previous one.
#[tauri::command]
pub fn follow_run(
    state: State<'_, AppState>,
    run: String,
    after_seq: u64,
    channel: Channel<RunFeedItem>,
) -> Result<(), AppError> {
    let task = tauri::async_runtime::spawn(crate::live::follow_run(
        state.engine.clone(),
        Arc::clone(&state.models),
        Arc::clone(&state.holders),
        run,
        after_seq,
        channel,
    ));
    let mut following = state.following.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(previous) = following.replace(task) {
        previous.abort();
    }
    Ok(())
}
