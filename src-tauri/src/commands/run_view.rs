//! The Run view's reads: the run's header and timeline bars, a page of its steps, one step in
//! full, its decisions, and a page of its raw log. Each answers from the run's model (folded
//! once, caught up with what was recorded since), and reads the log only by seq.

use serde::Deserialize;
use stepwise_core::event::Event;
use stepwise_core::ids::{EventSeq, StepId};
use stepwise_engine::{Engine, LoggedEvent};
use tauri::State;

use crate::error::{AppError, ErrorCode};
use crate::holders::Holders;
use crate::model::{RunModels, lock};
use crate::state::AppState;
use crate::view::{
    DecisionView, EventPage, FileChangeView, RunOverview, StepDetail, StepPage, event_view,
};

/// The most rows one page of the steps table holds.
const STEPS_PAGE_MAX: usize = 500;
/// The most events one page of the raw log holds.
const EVENTS_PAGE_MAX: usize = 1_000;
/// The most events one filtered page looks through before it answers with what it found.
const EVENTS_SCANNED_MAX: usize = 10_000;

#[tauri::command]
pub async fn get_run(state: State<'_, AppState>, run: String) -> Result<RunOverview, AppError> {
    run_overview(&state.engine, &state.models, &state.holders, &run).await
}

pub async fn run_overview(
    engine: &Engine,
    models: &RunModels,
    holders: &Holders,
    run: &str,
) -> Result<RunOverview, AppError> {
    let model = models.current(engine, run).await?;
    let row = lock(&model).row().clone();
    let held_by = holders.held_by(engine, &row).await;
    let mut overview = lock(&model).overview(held_by);
    overview.elsewhere = overview
        .host
        .as_ref()
        .is_some_and(|host| *host != engine.config().host);
    Ok(overview)
}

/// A page of the steps table: the rows matching `filter` (words in the id, type or status),
/// from `offset`.
#[tauri::command]
pub async fn get_steps(
    state: State<'_, AppState>,
    run: String,
    filter: String,
    offset: u32,
    limit: u32,
) -> Result<StepPage, AppError> {
    let model = state.models.current(&state.engine, &run).await?;
    let limit = (limit as usize).min(STEPS_PAGE_MAX);
    let page = lock(&model).rows(&filter, offset as usize, limit, crate::model::now_ms());
    Ok(page)
}

/// One step in full: its operations' exact requests and results (read from the log by seq),
/// output, error and decisions.
#[tauri::command]
pub async fn get_step(
    state: State<'_, AppState>,
    run: String,
    step: String,
) -> Result<StepDetail, AppError> {
    step_detail(
        &state.engine,
        &state.models,
        &run,
        &StepId::from(step.as_str()),
    )
    .await
}

pub async fn step_detail(
    engine: &Engine,
    models: &RunModels,
    run: &str,
    step: &StepId,
) -> Result<StepDetail, AppError> {
    let model = models.current(engine, run).await?;
    let (run_id, seqs) = {
        let model = lock(&model);
        (model.row().run_id.clone(), model.operation_seqs(step))
    };
    let events = engine.read_events_at(&run_id, seqs).await?;
    let detail = lock(&model).detail(step, &events, crate::model::now_ms());
    let mut detail = detail.ok_or_else(|| {
        AppError::new(
            ErrorCode::NotFound,
            format!("run {run_id} has no step `{step}`"),
        )
    })?;
    // What its operations changed in the files: the changes are in the results read here;
    // their diffs need the versions' contents, which the engine reads.
    let changes = events
        .iter()
        .filter_map(|logged| match &logged.event {
            Event::OperationSucceeded { result, .. } => Some(result.file_changes().to_vec()),
            _ => None,
        })
        .flatten()
        .collect();
    detail.file_changes = engine
        .show_changes(changes)
        .await?
        .into_iter()
        .map(|shown| FileChangeView {
            change: shown.change,
            diff: shown.diff,
        })
        .collect();
    Ok(detail)
}

/// Every decision on the run's proposals, oldest first.
#[tauri::command]
pub async fn get_decisions(
    state: State<'_, AppState>,
    run: String,
) -> Result<Vec<DecisionView>, AppError> {
    let model = state.models.current(&state.engine, &run).await?;
    let decisions = lock(&model).decisions().to_vec();
    Ok(decisions)
}

/// Which events a page of the raw log holds.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EventFilter {
    /// Words that must each appear in the event's type, its step or its seq.
    #[serde(default)]
    pub text: String,
}

/// A page of the run's raw log after `after_seq`, read from the store by seq: at most `limit`
/// events matching `filter`. A filtered page looks through a bounded stretch of the log and
/// says how far it read, so the next page goes on from there.
#[tauri::command]
pub async fn get_events(
    state: State<'_, AppState>,
    run: String,
    after_seq: u64,
    limit: u32,
    filter: Option<EventFilter>,
) -> Result<EventPage, AppError> {
    events_page(
        &state.engine,
        &run,
        after_seq,
        limit as usize,
        &filter.unwrap_or_default(),
    )
    .await
}

pub async fn events_page(
    engine: &Engine,
    run: &str,
    after_seq: u64,
    limit: usize,
    filter: &EventFilter,
) -> Result<EventPage, AppError> {
    let limit = limit.clamp(1, EVENTS_PAGE_MAX);
    let words: Vec<String> = filter
        .text
        .split_whitespace()
        .map(str::to_lowercase)
        .collect();
    // Unfiltered, a page is exactly the events asked for; filtered, the log is read a chunk at
    // a time until enough match.
    let chunk = if words.is_empty() {
        limit
    } else {
        EVENTS_PAGE_MAX
    };
    let mut events = Vec::new();
    let mut read_to = after_seq;
    let mut scanned = 0;
    loop {
        let page = engine.read_log(run, EventSeq::new(read_to), chunk).await?;
        let end = page.events.len() < chunk;
        for logged in &page.events {
            scanned += 1;
            read_to = logged.seq.get();
            // Matched on its kind, step and seq first: only a match is turned into JSON.
            if words.iter().all(|w| event_matches(logged, w)) {
                events.push(event_view(logged));
                if events.len() == limit {
                    let end = read_to >= page.run.last_seq.get();
                    return Ok(EventPage {
                        events,
                        read_to,
                        end,
                    });
                }
            }
        }
        if end || scanned >= EVENTS_SCANNED_MAX {
            return Ok(EventPage {
                events,
                read_to,
                end,
            });
        }
    }
}

fn event_matches(logged: &LoggedEvent, word: &str) -> bool {
    logged.event.type_name().to_lowercase().contains(word)
        || logged
            .event
            .step()
            .is_some_and(|s| s.as_str().to_lowercase().contains(word))
        || logged.seq.get().to_string() == word
}
