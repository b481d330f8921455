//! Runs: a page of the list, pause/resume/cancel, resolving an unknown outcome, and replay.

use stepwise_core::event::Resolution;
use stepwise_core::ids::StepId;
use stepwise_core::run::RunStatus;
use stepwise_engine::{Command, Engine, ReplayAgainst, RunsQuery};
use tauri::State;

use crate::error::AppError;
use crate::holders::Holders;
use crate::state::AppState;
use crate::view::{AppInfo, ReplayVerdict, RunsPage, StatusCount, run_list_item};

/// The most rows one page of the runs list holds.
const RUNS_PAGE_MAX: u64 = 500;

#[tauri::command]
pub fn app_info(state: State<'_, AppState>) -> AppInfo {
    let config = state.engine.config();
    AppInfo {
        db_path: state.engine.database_name(),
        user: config.user.clone(),
        host: config.host.clone(),
        default_workspace: state.default_workspace.display().to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// A page of the runs list, newest first: the runs with `status` (`all`, a recorded status, or
/// `interrupted`) whose workflow, path, id or trigger contain every word of `query`, from
/// `offset`. The database filters, counts and pages; who drives each run comes from the runs
/// feed, not from asking each run's lock.
#[tauri::command]
pub async fn list_runs(
    state: State<'_, AppState>,
    status: Option<String>,
    query: Option<String>,
    offset: u64,
    limit: u64,
) -> Result<RunsPage, AppError> {
    runs_page(
        &state.engine,
        &state.holders,
        status.as_deref(),
        query.as_deref().unwrap_or(""),
        offset,
        limit,
    )
    .await
}

pub async fn runs_page(
    engine: &Engine,
    holders: &Holders,
    status: Option<&str>,
    query: &str,
    offset: u64,
    limit: u64,
) -> Result<RunsPage, AppError> {
    let interrupted = holders.interrupted(engine);
    let (status_filter, only, except) = match status.filter(|s| *s != "all") {
        None => (None, None, Vec::new()),
        Some("interrupted") => (
            Some("running".to_string()),
            Some(interrupted.clone()),
            Vec::new(),
        ),
        Some("running") => (Some("running".to_string()), None, interrupted.clone()),
        Some(other) => (Some(other.to_string()), None, Vec::new()),
    };
    let page = engine
        .runs_page(RunsQuery {
            status: status_filter,
            only,
            except,
            words: query.split_whitespace().map(str::to_string).collect(),
            offset: usize::try_from(offset).unwrap_or(usize::MAX),
            limit: usize::try_from(limit.min(RUNS_PAGE_MAX)).unwrap_or(0),
        })
        .await?;
    let mut runs = Vec::with_capacity(page.runs.len());
    for row in &page.runs {
        let held_by = holders.held_by(engine, row).await;
        runs.push(run_list_item(row, held_by));
    }
    // Interrupted runs are recorded as running: counted apart.
    let stopped = interrupted.len() as u64;
    let mut by_status: Vec<StatusCount> = page
        .by_status
        .into_iter()
        .map(|(status, count)| StatusCount {
            count: if status == "running" {
                count.saturating_sub(stopped)
            } else {
                count
            },
            status,
        })
        .filter(|c| c.count > 0)
        .collect();
    if stopped > 0 {
        by_status.push(StatusCount {
            status: "interrupted".into(),
            count: stopped,
        });
    }
    Ok(RunsPage {
        offset,
        total: page.total,
        runs,
        by_status,
    })
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
    if row.status == RunStatus::Paused {
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

/// Says what became of an operation cut off by a crash: run it again (`retry`), give the step
/// up (`skip`), or take it as done (`mark_done`). The engine checks the step still waits so.
#[tauri::command]
pub async fn resolve_step(
    state: State<'_, AppState>,
    run: String,
    step: String,
    resolution: Resolution,
) -> Result<(), AppError> {
    let command = Command::Resolve {
        step: StepId::from(step.as_str()),
        resolution,
    };
    state.engine.send(&run, command).await?;
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
    let recorded = against == "recorded";
    let against = match against.as_str() {
        "recorded" => ReplayAgainst::Recorded,
        "current" => ReplayAgainst::CurrentFile,
        other => {
            return Err(AppError::invalid(format!(
                "replay against `{other}`: use `recorded` or `current`"
            )));
        }
    };
    // The engine's one replay, as the CLI's.
    let replayed = state.engine.replay(&run, against).await?;
    // What it was replayed against, in the window's words: the engine names the file.
    let against = if recorded {
        "the workflow recorded when the run started".to_string()
    } else {
        replayed.against
    };
    Ok(match replayed.verdict {
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
        Err(divergence) => ReplayVerdict {
            matches: false,
            message: format!("diverged at event {}", divergence.seq),
            against,
            events: replayed.events as u64,
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
    })
}
