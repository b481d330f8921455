//! The Workflows view's Memory tab: the memories agent steps share, their entries, and
//! forgetting one, as `stepwise memory` does.

use tauri::State;

use crate::error::AppError;
use crate::state::AppState;
use crate::view::{MemoryEntryView, MemoryView};

#[tauri::command]
pub async fn list_memories(state: State<'_, AppState>) -> Result<Vec<MemoryView>, AppError> {
    Ok(state
        .engine
        .memories()
        .await?
        .into_iter()
        .map(|m| MemoryView {
            name: m.name,
            entries: m.entries,
            updated_at_ms: m.updated_at_ms,
        })
        .collect())
}

/// The most entries the window is sent at once (a memory holds up to 10,000 of up to 8 KiB).
const MAX_ENTRIES_SHOWN: usize = 1_000;

/// The first entries of `memory`, by key.
#[tauri::command]
pub async fn memory_entries(
    state: State<'_, AppState>,
    memory: String,
) -> Result<Vec<MemoryEntryView>, AppError> {
    Ok(state
        .engine
        .memory_entries(&memory)
        .await?
        .into_iter()
        .take(MAX_ENTRIES_SHOWN)
        .map(|e| MemoryEntryView {
            key: e.key,
            text: e.text,
            run_id: e.run_id,
            step: e.step,
            updated_at_ms: e.updated_at_ms,
        })
        .collect())
}

/// Removes `key` from `memory`; whether it was there.
#[tauri::command]
pub async fn forget_memory(
    state: State<'_, AppState>,
    memory: String,
    key: String,
) -> Result<bool, AppError> {
    Ok(state.engine.forget_memory(&memory, &key).await?)
}
