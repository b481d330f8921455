//! Starting runs, listing them, and a run's status, results and cost.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stepwise_core::event::StepPauses;
use stepwise_core::run::{CostLine, cost_report};
use stepwise_engine::{EngineError, RunsQuery, StartRun};
use utoipa::{IntoParams, ToSchema};

use super::source::{Inline, WorkflowSource, resolve};
use super::{ApiState, Body, Params, Segments};
use crate::error::{ApiError, ErrorBody};
use crate::views::RunItem;

/// The most runs one page of the list holds.
const RUNS_PAGE_MAX: usize = 500;

/// A run to start: its workflow (`path` or `yaml`), workspace and inputs.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    #[serde(flatten)]
    pub workflow: WorkflowSource,
    /// The workflow's inputs by name: text, or JSON values (numbers, booleans, lists,
    /// objects), each checked against its declared type.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub inputs: BTreeMap<String, Value>,
    /// Wait for a person before every step (as `stepwise run --step`).
    #[serde(default)]
    pub step_through: bool,
    /// Wait for a person before these steps (as `--break STEP`).
    #[serde(default)]
    pub breakpoints: Vec<String>,
    /// Overrides the workflow's budget, in micro-dollars.
    pub budget_micro_usd: Option<u64>,
    /// Overrides the workflow's `max_parallel` (at least 1).
    pub max_parallel: Option<usize>,
}

/// A run just started: this server drives it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Started {
    pub run_id: String,
}

/// Starts a run; this server drives it (it is in the app's window, and in `stepwise runs`, at
/// once). Answers as soon as the run is recorded; follow it with its events.
#[utoipa::path(
    post,
    path = "/v1/runs",
    tag = "runs",
    request_body = StartRequest,
    responses(
        (status = 201, description = "The run is recorded and driven", body = Started),
        (status = 422, description = "The workflow, its inputs or the workspace are wrong; `message` names each problem", body = ErrorBody)
    )
)]
pub(crate) async fn start_run(
    State(state): State<ApiState>,
    Body(request): Body<StartRequest>,
) -> Result<(StatusCode, Json<Started>), ApiError> {
    if request.max_parallel == Some(0) {
        return Err(ApiError::invalid(
            "max_parallel must be at least 1 (0 would never run a step)",
        ));
    }
    let named = resolve(&state, &request.workflow, Inline::Keep)?;
    // Problems of YAML sent inline name it so, not by the file it is kept in.
    let kept_as = named.inline.then(|| named.file.display().to_string());
    let inline = |error: EngineError| {
        let mut error = ApiError::from(error);
        if let Some(file) = &kept_as {
            error.message = error.message.replace(file.as_str(), "inline");
        }
        error
    };
    let inputs = request
        .inputs
        .into_iter()
        .map(|(name, value)| {
            let text = match value {
                Value::String(text) => text,
                other => other.to_string(),
            };
            (name, text)
        })
        .collect();
    let handle = state
        .engine
        .start_run(StartRun {
            workflow_path: named.file.clone(),
            workspace: named.workspace.clone(),
            inputs,
            trigger: "api".into(),
            max_parallel: request.max_parallel,
            budget_micro_usd: request.budget_micro_usd,
            pauses: StepPauses {
                every_step: request.step_through,
                breakpoints: request
                    .breakpoints
                    .iter()
                    .map(|s| s.as_str().into())
                    .collect(),
            },
            cause: None,
        })
        .await
        .map_err(inline)?;
    Ok((
        StatusCode::CREATED,
        Json(Started {
            run_id: handle.run_id().to_string(),
        }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsListQuery {
    /// Only runs with this recorded status (`running`, `awaiting_approval`, `paused`,
    /// `succeeded`, `failed`, `cancelled`).
    status: Option<String>,
    /// Only runs whose workflow, path, id or trigger contain every word of this.
    query: Option<String>,
    /// How many matching runs to skip (default 0).
    offset: Option<usize>,
    /// The most runs to answer (default 50, at most 500).
    limit: Option<usize>,
}

/// A page of the runs list.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunList {
    /// Newest first.
    pub runs: Vec<RunItem>,
    /// How many runs match, in all.
    pub total: u64,
}

/// The runs, newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/runs",
    tag = "runs",
    params(RunsListQuery),
    responses((status = 200, description = "A page of runs", body = RunList))
)]
pub(crate) async fn list_runs(
    State(state): State<ApiState>,
    Params(query): Params<RunsListQuery>,
) -> Result<Json<RunList>, ApiError> {
    let page = state
        .engine
        .runs_page(RunsQuery {
            status: query.status.filter(|s| !s.is_empty() && s != "all"),
            only: None,
            except: Vec::new(),
            words: query
                .query
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            offset: query.offset.unwrap_or(0),
            limit: query.limit.unwrap_or(50).min(RUNS_PAGE_MAX),
        })
        .await?;
    let mut runs = Vec::with_capacity(page.runs.len());
    for row in page.runs {
        let held_by = if row.status.is_finished() {
            None
        } else {
            state.engine.holder(&row.run_id).await?
        };
        runs.push(RunItem::new(row, held_by));
    }
    Ok(Json(RunList {
        runs,
        total: page.total,
    }))
}

/// A run: its row, inputs, every step's status and output, and what it gives back.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunDetail {
    pub run: RunItem,
    #[schema(value_type = Object)]
    pub inputs: Value,
    /// Who started it.
    pub started_by: String,
    /// Why the engine could not go on, when it stopped so.
    pub aborted: Option<String>,
    pub steps: Vec<StepItem>,
    /// What it gives back once it succeeded: its workflow's `outputs`, else each step's
    /// output by id.
    #[schema(value_type = Option<Object>)]
    pub outputs: Option<Value>,
}

/// One step of a run.
#[derive(Debug, Serialize, ToSchema)]
pub struct StepItem {
    pub id: String,
    #[serde(rename = "type")]
    pub step_type: String,
    /// `pending`, `running`, `awaiting_approval`, `succeeded`, `failed`, `skipped`, …
    pub status: String,
    /// Attempts so far.
    pub attempts: u32,
    #[schema(value_type = Option<Object>)]
    pub output: Option<Value>,
    pub error: Option<String>,
    /// Why it was skipped or rejected.
    pub reason: Option<String>,
    /// What it waits on, when it waits for a person: answer it at
    /// `/v1/runs/{run}/steps/{step}/approve` or `…/reject`.
    pub waiting_for: Option<Waiting>,
    /// For a compensation: the step it undoes.
    pub compensates: Option<String>,
}

/// A question a step waits on.
#[derive(Debug, Serialize, ToSchema)]
pub struct Waiting {
    /// `edit_file`, `run_command`, `budget`, `plan`, `breakpoint`, `question`, …
    pub kind: String,
    /// Name it when answering, so that an answer to a question that changed is refused.
    pub proposal_hash: String,
    /// Why it asks (the rule or gate).
    pub reason: String,
    /// What is proposed.
    #[schema(value_type = Object)]
    pub proposal: Value,
}

/// A run's status and results.
#[utoipa::path(
    get,
    path = "/v1/runs/{run}",
    tag = "runs",
    params(("run" = String, Path, description = "The run's id, or a prefix that names one run")),
    responses(
        (status = 200, description = "The run", body = RunDetail),
        (status = 404, description = "No such run", body = ErrorBody)
    )
)]
pub(crate) async fn run_status(
    State(state): State<ApiState>,
    Segments(run): Segments<String>,
) -> Result<Json<RunDetail>, ApiError> {
    let loaded = state.engine.load_run(&run).await?;
    let status = loaded.state.status();
    let held_by = if status.is_finished() {
        None
    } else {
        state.engine.holder(&loaded.row.run_id).await?
    };
    let steps = loaded
        .state
        .steps()
        .map(|(def, step)| StepItem {
            id: def.id.to_string(),
            step_type: def.action.type_name().to_string(),
            status: step.status.as_str().to_string(),
            attempts: step.attempt,
            output: step.output.clone(),
            error: step.error.clone(),
            reason: step.reason.clone(),
            waiting_for: step.pending_approval.as_ref().map(|pending| Waiting {
                kind: pending.proposal.kind_name().to_string(),
                proposal_hash: pending.proposal_hash.clone(),
                reason: pending.reason.clone(),
                proposal: serde_json::to_value(&pending.proposal).unwrap_or_default(),
            }),
            compensates: def.compensates.as_ref().map(|s| s.to_string()),
        })
        .collect();
    let started = loaded.state.started();
    let outputs = (status == stepwise_core::run::RunStatus::Succeeded)
        .then(|| loaded.state.workflow_outputs().ok())
        .flatten();
    Ok(Json(RunDetail {
        inputs: started.inputs.clone(),
        started_by: started.started_by.clone(),
        aborted: loaded.state.aborted().map(str::to_string),
        steps,
        outputs,
        run: RunItem::new(loaded.row, held_by),
    }))
}

/// What a run's model calls cost.
#[derive(Debug, Serialize, ToSchema)]
pub struct Cost {
    pub run_id: String,
    pub total_micro_usd: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub calls: u64,
    /// The run's budget (micro-dollars and tokens), when it has one.
    #[schema(value_type = Option<Object>)]
    pub budget: Option<Value>,
    /// By step id.
    #[schema(value_type = Object)]
    pub by_step: BTreeMap<String, Value>,
    /// By model.
    #[schema(value_type = Object)]
    pub by_model: BTreeMap<String, Value>,
}

/// What a run's model calls cost, in micro-dollars and tokens, in all, by step and by model.
#[utoipa::path(
    get,
    path = "/v1/runs/{run}/cost",
    tag = "runs",
    params(("run" = String, Path, description = "The run's id, or a prefix that names one run")),
    responses(
        (status = 200, description = "The run's cost", body = Cost),
        (status = 404, description = "No such run", body = ErrorBody)
    )
)]
pub(crate) async fn run_cost(
    State(state): State<ApiState>,
    Segments(run): Segments<String>,
) -> Result<Json<Cost>, ApiError> {
    let loaded = state.engine.load_run(&run).await?;
    let report = cost_report(
        loaded
            .events
            .iter()
            .map(|(stored, event)| (stored.seq, stored.recorded_at_ms, event)),
    );
    let line = |line: &CostLine| serde_json::to_value(line).unwrap_or_default();
    Ok(Json(Cost {
        run_id: loaded.row.run_id.to_string(),
        total_micro_usd: report.total.micro_usd,
        input_tokens: report.total.input_tokens,
        output_tokens: report.total.output_tokens,
        calls: report.total.calls,
        budget: loaded
            .state
            .budget()
            .map(|b| serde_json::to_value(b).unwrap_or_default()),
        by_step: report
            .by_step
            .iter()
            .map(|(step, l)| (step.to_string(), line(l)))
            .collect(),
        by_model: report
            .by_model
            .iter()
            .map(|(m, l)| (m.clone(), line(l)))
            .collect(),
    }))
}
