//! Workflows: those in the workspace's `workflows/` and the bundled examples, each checked;
//! and starting a run from the form of a workflow's inputs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use stepwise_core::event::StepPauses;
use stepwise_engine::{Engine, EngineError, StartRun};
use tauri::State;

use crate::error::AppError;
use crate::state::AppState;
use crate::view::{WorkflowInfo, WorkflowInput, WorkflowProblem};

/// The workflows of `workspace` (default: the app's) and the bundled examples.
#[tauri::command]
pub async fn list_workflows(
    state: State<'_, AppState>,
    workspace: Option<String>,
) -> Result<Vec<WorkflowInfo>, AppError> {
    let workspace = workspace
        .map(PathBuf::from)
        .unwrap_or_else(|| state.default_workspace.clone());
    let folders = [
        (workspace.join("workflows"), "workspace"),
        (state.bundled_workflows.clone(), "bundled"),
    ];
    tauri::async_runtime::spawn_blocking(move || {
        // The workspace's and the user's step manifests, read once for every file.
        let step_types = stepwise_engine::load_step_types(Some(&workspace));
        let mut found = Vec::new();
        for (folder, source) in folders {
            for path in stepwise_engine::workflow_files(&folder) {
                found.push(describe(&path, source, &step_types));
            }
        }
        found
    })
    .await
    .map_err(|e| AppError::internal(format!("listing workflows stopped: {e}")))
}

fn describe(
    path: &Path,
    source: &str,
    step_types: &stepwise_core::custom_step::StepTypes,
) -> WorkflowInfo {
    let mut info = WorkflowInfo {
        path: path.display().to_string(),
        source: source.into(),
        name: None,
        description: None,
        steps: None,
        inputs: Vec::new(),
        errors: Vec::new(),
    };
    match Engine::load_workflow(path, step_types) {
        Ok((workflow, _)) => {
            info.name = Some(workflow.name.clone());
            info.description = workflow.description.clone();
            info.steps = u32::try_from(workflow.steps.len()).ok();
            info.inputs = workflow
                .inputs
                .iter()
                .map(|(name, def)| WorkflowInput {
                    name: name.clone(),
                    kind: serde_json::to_value(def.kind)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    default: def.default.clone(),
                    description: def.description.clone(),
                })
                .collect();
        }
        Err(EngineError::Workflow(errors)) => {
            info.errors = errors
                .0
                .iter()
                .map(|e| WorkflowProblem {
                    line: (e.line > 0).then_some(e.line),
                    column: (e.line > 0).then_some(e.column),
                    step: e.step.clone(),
                    message: e.message.clone(),
                })
                .collect();
        }
        Err(other) => info.errors.push(WorkflowProblem {
            line: None,
            column: None,
            step: None,
            message: other.to_string(),
        }),
    }
    info
}

/// Starts a run of `workflow` in `workspace` (default: the app's) with `inputs` as typed in
/// the form (checked against the workflow's declared inputs); with `step_through`, the run
/// waits for a person before each step. The app drives it.
#[tauri::command]
pub async fn start_run(
    state: State<'_, AppState>,
    workflow: String,
    workspace: Option<String>,
    inputs: BTreeMap<String, String>,
    step_through: Option<bool>,
) -> Result<String, AppError> {
    let workspace = workspace
        .filter(|w| !w.trim().is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| state.default_workspace.clone());
    let handle = state
        .engine
        .start_run(StartRun {
            workflow_path: PathBuf::from(workflow),
            workspace,
            inputs,
            trigger: "app".into(),
            max_parallel: None,
            budget_micro_usd: None,
            pauses: StepPauses {
                every_step: step_through.unwrap_or(false),
                breakpoints: Vec::new(),
            },
            cause: None,
        })
        .await?;
    Ok(handle.run_id().to_string())
}
