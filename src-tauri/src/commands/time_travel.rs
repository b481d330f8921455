//! Time travel: rewind a run's files to a step's start, fork a run from a step, list a run's
//! forks, and compare two runs. Thin adapters over the engine's.

use std::collections::BTreeMap;
use std::path::PathBuf;

use stepwise_core::event::Event;
use stepwise_core::ids::EventSeq;
use stepwise_core::run::compare_runs;
use stepwise_engine::{ForkRun, Forked, LoadedRun};
use tauri::State;

use crate::error::AppError;
use crate::state::AppState;
use crate::view::{ComparisonView, ForkResult, RewindView, RunListItem, run_list_item};

/// What rewinding `run` to the start of `step` would put back, with the conflicts in
/// `include` put back too.
#[tauri::command]
pub async fn propose_rewind(
    state: State<'_, AppState>,
    run: String,
    step: String,
    include: Vec<String>,
) -> Result<RewindView, AppError> {
    let proposal = state.engine.propose_rewind(&run, &step, &include).await?;
    Ok(proposal.into())
}

/// Rewinds `run` to the start of `step` as the person saw it (`proposal_hash`).
#[tauri::command]
pub async fn rewind_run(
    state: State<'_, AppState>,
    run: String,
    step: String,
    include: Vec<String>,
    proposal_hash: String,
) -> Result<(), AppError> {
    state
        .engine
        .rewind(&run, &step, &include, Some(&proposal_hash))
        .await?;
    Ok(())
}

/// Forks `run` from `step` with `inputs` changed, in the run's workspace put back as it was
/// (approved by `proposal_hash`, once shown) or in a copy of it in `workspace`. The app
/// drives the new run.
#[tauri::command]
pub async fn fork_run(
    state: State<'_, AppState>,
    run: String,
    step: String,
    inputs: BTreeMap<String, String>,
    workspace: Option<String>,
    proposal_hash: Option<String>,
) -> Result<ForkResult, AppError> {
    let fork = ForkRun {
        parent: run,
        from: step,
        inputs,
        workflow_path: None,
        workspace: workspace
            .filter(|w| !w.trim().is_empty())
            .map(PathBuf::from),
        approved: proposal_hash,
        approve_any: false,
        trigger: "app".into(),
    };
    Ok(match state.engine.fork(fork).await? {
        Forked::NeedsRestore(proposal) => ForkResult {
            run_id: None,
            restore: Some(proposal.into()),
        },
        Forked::Started(handle) => ForkResult {
            run_id: Some(handle.run_id().clone()),
            restore: None,
        },
    })
}

/// The runs forked from `run`, oldest first.
#[tauri::command]
pub async fn list_forks(
    state: State<'_, AppState>,
    run: String,
) -> Result<Vec<RunListItem>, AppError> {
    let row = state.engine.find_run(&run).await?;
    let forks = state.engine.forks_of(&row.run_id).await?;
    Ok(forks.iter().map(|row| run_list_item(row, None)).collect())
}

/// Two runs compared step by step.
#[tauri::command]
pub async fn compare_two_runs(
    state: State<'_, AppState>,
    first: String,
    second: String,
) -> Result<ComparisonView, AppError> {
    let a = state.engine.load_run(&first).await?;
    let b = state.engine.load_run(&second).await?;
    let comparison = compare_runs(&seq_events(&a), &seq_events(&b));
    Ok(ComparisonView::new(
        a.row.run_id.clone(),
        b.row.run_id.clone(),
        &comparison,
    ))
}

fn seq_events(loaded: &LoadedRun) -> Vec<(EventSeq, &Event)> {
    loaded.events.iter().map(|(s, e)| (s.seq, e)).collect()
}
