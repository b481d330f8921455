//! The Workflows view's Steps tab: the step types a workflow may use, built-in and custom
//! (the workspace's and the user's manifests), as `stepwise steps` lists them.

use std::path::PathBuf;

use stepwise_core::workflow::{StepType, builtin_step_types, custom_step_types};
use tauri::State;

use crate::error::AppError;
use crate::state::AppState;

/// The step types of `workspace` (default: the app's).
#[tauri::command]
pub async fn list_step_types(
    state: State<'_, AppState>,
    workspace: Option<String>,
) -> Result<Vec<StepType>, AppError> {
    let workspace = workspace
        .map(PathBuf::from)
        .unwrap_or_else(|| state.default_workspace.clone());
    tauri::async_runtime::spawn_blocking(move || {
        let mut types = builtin_step_types();
        types.extend(custom_step_types(&stepwise_engine::load_step_types(Some(
            &workspace,
        ))));
        types
    })
    .await
    .map_err(|e| AppError::internal(format!("listing step types stopped: {e}")))
}
