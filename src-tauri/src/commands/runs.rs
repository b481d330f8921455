//! Runs: the list, one run in full, its raw log, pause/resume/cancel, and replay.

use std::path::PathBuf;
use std::sync::Arc;

use stepwise_core::event::Event;
use stepwise_core::ids::EventSeq;
use stepwise_core::run::{ReplayError, replay};
use stepwise_engine::{Command, Engine, recorded_workflow};
use tauri::State;

use crate::error::AppError;
use crate::state::AppState;
use crate::view::{
    AppInfo, EventView, ReplayVerdict, RunDetail, RunListItem, event_view, run_detail,
    run_list_item,
};

/// The most runs the list holds.
const RUNS_SHOWN: usize = 10_000;
/// The most events one page of the raw log holds.
const EVENTS_PAGE: usize = 5_000;

#[tauri::command]
pub fn app_info(state: State<'_, AppState>) -> AppInfo {
    let config = state.engine.config();
    AppInfo {
        db_path: config.db_path.display().to_string(),
        user: config.user.clone(),
        default_workspace: state.default_workspace.display().to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

#[tauri::command]
pub async fn list_runs(state: State<'_, AppState>) -> Result<Vec<RunListItem>, AppError> {
    let runs = state.engine.list_runs(RUNS_SHOWN).await?;
    Ok(runs.iter().map(run_list_item).collect())
}

#[tauri::command]
pub async fn get_run(state: State<'_, AppState>, run: String) -> Result<RunDetail, AppError> {
    let loaded = state.engine.load_run(&run).await?;
    let held_by = state.engine.holder(&loaded.row.run_id).await?;
    let summary = stepwise_engine::RunSummary {
        row: loaded.row.clone(),
        held_by,
    };
    Ok(run_detail(&summary, &loaded, super::now_ms()))
}

/// The run's raw log after `after_seq`, a page at a time.
#[tauri::command]
pub async fn get_events(
    state: State<'_, AppState>,
    run: String,
    after_seq: u64,
) -> Result<Vec<EventView>, AppError> {
    let loaded = state.engine.load_run(&run).await?;
    Ok(loaded
        .events
        .iter()
        .filter(|(stored, _)| stored.seq > EventSeq::new(after_seq))
        .take(EVENTS_PAGE)
        .map(|(stored, event)| event_view(stored, event))
        .collect())
}

#[tauri::command]
pub async fn pause_run(state: State<'_, AppState>, run: String) -> Result<(), AppError> {
    state.engine.send(&run, Command::Pause).await?;
    Ok(())
}

#[tauri::command]
pub async fn resume_run(state: State<'_, AppState>, run: String) -> Result<(), AppError> {
    resume(&state.engine, &run).await
}

/// Resumes a paused run, or takes over one that nobody drives (interrupted).
async fn resume(engine: &Engine, run: &str) -> Result<(), AppError> {
    let row = engine.find_run(run).await?;
    if row.status == "paused" {
        engine.send(run, Command::Resume).await?;
    } else if engine.holder(&row.run_id).await?.is_none() {
        engine.drive(run).await?;
    }
    Ok(())
}

#[tauri::command]
pub async fn cancel_run(state: State<'_, AppState>, run: String) -> Result<(), AppError> {
    state.engine.send(&run, Command::Cancel).await?;
    Ok(())
}

/// Re-drives the run over its log with no side effects: against the workflow recorded when
/// it started (`recorded`), or its file as it is now (`current`).
#[tauri::command]
pub async fn replay_run(
    state: State<'_, AppState>,
    run: String,
    against: String,
) -> Result<ReplayVerdict, AppError> {
    let loaded = state.engine.load_run(&run).await?;
    let (workflow, against) = match against.as_str() {
        "recorded" => (
            recorded_workflow(&loaded.row.run_id, &loaded.events)?,
            "the workflow recorded when the run started".to_string(),
        ),
        "current" => {
            let path = PathBuf::from(&loaded.row.workflow_path);
            let (workflow, _) = Engine::load_workflow(&path)?;
            (workflow, path.display().to_string())
        }
        other => {
            return Err(AppError::invalid(format!(
                "replay against `{other}`: use `recorded` or `current`"
            )));
        }
    };
    let events: Vec<(EventSeq, Event)> = loaded
        .events
        .iter()
        .map(|(s, e)| (s.seq, e.clone()))
        .collect();
    Ok(match replay(Arc::clone(&workflow), &events) {
        Ok(report) => ReplayVerdict {
            matches: true,
            message: format!(
                "all {} decisions match over {} events; nothing was performed",
                report.decisions, report.events
            ),
            against,
            events: report.events as u64,
            decisions: report.decisions as u64,
            diverged_at: None,
            expected: None,
            recorded: None,
        },
        Err(ReplayError::Diverged(divergence)) => ReplayVerdict {
            matches: false,
            message: format!("diverged at event {}", divergence.seq),
            against,
            events: events.len() as u64,
            decisions: 0,
            diverged_at: Some(divergence.seq.get()),
            expected: divergence
                .expected
                .as_ref()
                .and_then(|e| serde_json::to_value(e).ok()),
            recorded: divergence
                .recorded
                .as_ref()
                .and_then(|e| serde_json::to_value(e).ok()),
        },
        Err(error) => return Err(AppError::invalid(error.to_string())),
    })
}
