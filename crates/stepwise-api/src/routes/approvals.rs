//! What waits for a person, live or as a list, and answering it: approve (optionally edited,
//! or hunk by hunk), reject with a reason, or let a run past its breakpoints.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stepwise_core::ids::StepId;
use stepwise_core::operation::CommandLine;
use stepwise_core::run::EditedProposal;
use stepwise_engine::{Approval, ApprovalChange, Command};
use utoipa::{IntoParams, ToSchema};

use super::control::{Done, send};
use super::events::open_stream;
use super::{ApiState, Body, Params, Segments};
use crate::error::{ApiError, ErrorBody};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ApprovalsQuery {
    /// Only this run's (its id or a unique prefix).
    run: Option<String>,
}

/// A question waiting for a person.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalItem {
    pub run_id: String,
    pub workflow: String,
    pub step: String,
    /// `edit_file`, `run_command`, `budget`, `plan`, `breakpoint`, `question`, …
    pub kind: String,
    /// Name it when answering: an answer to a question that changed since is refused.
    pub proposal_hash: String,
    /// Why it asks (the rule or gate).
    pub reason: String,
    /// When it was asked, where known.
    pub asked_at_ms: Option<i64>,
    /// What is proposed.
    #[schema(value_type = Object)]
    pub proposal: Value,
    /// For a child run: the run and step that started it.
    #[schema(value_type = Option<Object>)]
    pub parent: Option<Value>,
}

impl ApprovalItem {
    fn new(approval: &Approval, asked_at_ms: Option<i64>) -> ApprovalItem {
        ApprovalItem {
            run_id: approval.run_id.to_string(),
            workflow: approval.workflow.clone(),
            step: approval.step.to_string(),
            kind: approval.approval.proposal.kind_name().to_string(),
            proposal_hash: approval.approval.proposal_hash.clone(),
            reason: approval.approval.reason.clone(),
            asked_at_ms,
            proposal: serde_json::to_value(&approval.approval.proposal).unwrap_or_default(),
            parent: approval
                .parent
                .as_ref()
                .and_then(|p| serde_json::to_value(p).ok()),
        }
    }
}

/// What waits for a person.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalList {
    /// Oldest run first, steps in workflow order.
    pub waiting: Vec<ApprovalItem>,
    /// Runs that could not be read (their questions, if any, are not in the list), and why.
    pub unreadable: Vec<String>,
}

/// What waits for a person, across every unfinished run or in one.
#[utoipa::path(
    get,
    path = "/v1/approvals",
    tag = "approvals",
    params(ApprovalsQuery),
    responses(
        (status = 200, description = "What waits", body = ApprovalList),
        (status = 404, description = "No such run", body = ErrorBody)
    )
)]
pub(crate) async fn list_approvals(
    State(state): State<ApiState>,
    Params(query): Params<ApprovalsQuery>,
) -> Result<Json<ApprovalList>, ApiError> {
    if let Some(run) = &query.run {
        let waiting = state.engine.approvals(Some(run)).await?;
        return Ok(Json(ApprovalList {
            waiting: waiting.iter().map(|a| ApprovalItem::new(a, None)).collect(),
            unreadable: Vec::new(),
        }));
    }
    let inbox = state.engine.approvals_inbox().await?;
    Ok(Json(ApprovalList {
        waiting: inbox
            .waiting
            .iter()
            .map(|asked| ApprovalItem::new(&asked.approval, Some(asked.asked_at_ms)))
            .collect(),
        unreadable: inbox
            .unreadable
            .iter()
            .map(|(run, error)| format!("run {run}: {error}"))
            .collect(),
    }))
}

/// The approvals inbox live, as server-sent events: first a `waiting` for every question
/// waiting now, then `waiting` for each new one as it is asked (by a run in any process),
/// `settled` (data: {run_id, step, proposal_hash, how}) as one is answered, voided or
/// cancelled, and `run_ended` (data: {run_id, status}).
#[utoipa::path(
    get,
    path = "/v1/approvals/stream",
    tag = "approvals",
    responses(
        (status = 200, description = "`text/event-stream` of `waiting` (data: an approval), `settled` and `run_ended`", content_type = "text/event-stream", body = String),
        (status = 503, description = "Too many live streams are open", body = ErrorBody)
    )
)]
pub(crate) async fn approvals_stream(
    State(state): State<ApiState>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let permit = open_stream(&state)?;
    let changes = state.engine.subscribe_approvals().await?;
    let stream = futures_util::stream::unfold(
        (changes, false, permit),
        |(mut changes, failed, permit)| async move {
            if failed {
                return None;
            }
            let (event, failed) = match changes.next().await {
                Ok(ApprovalChange::Waiting(approval)) => (
                    SseEvent::default()
                        .event("waiting")
                        .json_data(ApprovalItem::new(&approval, None)),
                    false,
                ),
                Ok(ApprovalChange::Settled {
                    run_id,
                    step,
                    proposal_hash,
                    how,
                }) => (
                    SseEvent::default().event("settled").json_data(serde_json::json!({
                        "run_id": run_id, "step": step, "proposal_hash": proposal_hash, "how": how,
                    })),
                    false,
                ),
                Ok(ApprovalChange::RunEnded { run_id, status }) => (
                    SseEvent::default().event("run_ended").json_data(
                        serde_json::json!({ "run_id": run_id, "status": status.as_str() }),
                    ),
                    false,
                ),
                Err(error) => (
                    SseEvent::default()
                        .event("error")
                        .json_data(serde_json::json!({ "message": error.to_string() })),
                    true,
                ),
            };
            let event = event.unwrap_or_else(|_| SseEvent::default().event("error"));
            Some((Ok(event), (changes, failed, permit)))
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// An approval: as proposed, or edited (`content` for an edit, `command` for a command,
/// `answer` for an agent's question), or an edit with some hunks left out.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    /// The proposal hash the person looked at (or a prefix); refused if the step now waits on
    /// another proposal.
    pub proposal: Option<String>,
    /// A note recorded with the decision.
    pub comment: Option<String>,
    /// For an edit: the file's new content, approved instead of the one proposed.
    pub content: Option<String>,
    /// For a command: the command to run instead, as argv (a list) or a shell line (text).
    #[schema(value_type = Option<Object>)]
    pub command: Option<Value>,
    /// For an agent's question: the answer.
    pub answer: Option<String>,
    /// For an edit: the hunks (numbered from 1 as its diff shows them) to leave out.
    pub reject_hunks: Option<Vec<u32>>,
    /// Why those hunks were left out.
    pub reason: Option<String>,
}

/// Approves what a step waits on, optionally edited, and the run goes on (driven by whichever
/// process holds it; by this server when none does).
#[utoipa::path(
    post,
    path = "/v1/runs/{run}/steps/{step}/approve",
    tag = "approvals",
    params(
        ("run" = String, Path, description = "The run's id, or a prefix that names one run"),
        ("step" = String, Path, description = "The step's id in the workflow")
    ),
    request_body = ApproveRequest,
    responses(
        (status = 200, description = "Recorded", body = Done),
        (status = 409, description = "Refused: the step does not wait, or waits on another proposal", body = ErrorBody),
        (status = 422, description = "The edit cannot be used", body = ErrorBody)
    )
)]
pub(crate) async fn approve(
    State(state): State<ApiState>,
    Segments((run, step)): Segments<(String, String)>,
    Body(request): Body<ApproveRequest>,
) -> Result<Json<Done>, ApiError> {
    let edited = edited_proposal(&request)?;
    let command = Command::Approve {
        step: step.as_str().into(),
        comment: request.comment,
        edited,
        proposal: request.proposal,
    };
    send(&state, &run, command).await
}

fn edited_proposal(request: &ApproveRequest) -> Result<Option<EditedProposal>, ApiError> {
    let given = [
        request.content.is_some(),
        request.command.is_some(),
        request.answer.is_some(),
        request.reject_hunks.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(ApiError::invalid(
            "give at most one of `content`, `command`, `answer` and `reject_hunks`",
        ));
    }
    if request.reason.is_some() && request.reject_hunks.is_none() {
        return Err(ApiError::invalid(
            "`reason` says why hunks were left out: give it with `reject_hunks` (to reject the whole proposal, use …/reject)",
        ));
    }
    if let Some(content) = &request.content {
        return Ok(Some(EditedProposal::Content(content.clone())));
    }
    if let Some(answer) = &request.answer {
        return Ok(Some(EditedProposal::Answer(answer.clone())));
    }
    if let Some(rejected) = &request.reject_hunks {
        return Ok(Some(EditedProposal::Hunks {
            rejected: rejected.clone(),
            reason: request.reason.clone(),
        }));
    }
    match &request.command {
        None => Ok(None),
        Some(Value::String(line)) if !line.trim().is_empty() => Ok(Some(EditedProposal::Command(
            CommandLine::Shell(line.trim().to_string()),
        ))),
        Some(Value::Array(items)) if !items.is_empty() => {
            let argv = items
                .iter()
                .map(|item| item.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| ApiError::invalid("`command` as a list must hold only text"))?;
            Ok(Some(EditedProposal::Command(CommandLine::Argv(argv))))
        }
        Some(_) => Err(ApiError::invalid(
            "`command` must be a shell line (text) or argv (a list of text), not empty",
        )),
    }
}

/// A rejection.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectRequest {
    /// Why, recorded and passed on to the steps after (and to a model asked again).
    pub reason: String,
    /// As for an approval: refused if the step now waits on another proposal.
    pub proposal: Option<String>,
}

/// Rejects what a step waits on, with a reason: the step fails (or its model is asked again).
#[utoipa::path(
    post,
    path = "/v1/runs/{run}/steps/{step}/reject",
    tag = "approvals",
    params(
        ("run" = String, Path, description = "The run's id, or a prefix that names one run"),
        ("step" = String, Path, description = "The step's id in the workflow")
    ),
    request_body = RejectRequest,
    responses(
        (status = 200, description = "Recorded", body = Done),
        (status = 409, description = "Refused: the step does not wait, or waits on another proposal", body = ErrorBody),
        (status = 422, description = "No reason given", body = ErrorBody)
    )
)]
pub(crate) async fn reject(
    State(state): State<ApiState>,
    Segments((run, step)): Segments<(String, String)>,
    Body(request): Body<RejectRequest>,
) -> Result<Json<Done>, ApiError> {
    let command = Command::Reject {
        step: step.as_str().into(),
        reason: request.reason,
        proposal: request.proposal,
    };
    send(&state, &run, command).await
}

/// Which pauses to let a run past.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContinueRequest {
    /// Only this step (default: every step waiting to start).
    pub step: Option<String>,
    /// Every waiting step starts, and the run pauses before no step from now on.
    #[serde(default)]
    pub all: bool,
}

/// Lets a run stepped through (or stopped at breakpoints) past the pauses before its steps:
/// each is recorded as an approval.
#[utoipa::path(
    post,
    path = "/v1/runs/{run}/continue",
    tag = "approvals",
    params(("run" = String, Path, description = "The run's id, or a prefix that names one run")),
    request_body = ContinueRequest,
    responses(
        (status = 200, description = "Recorded", body = Done),
        (status = 422, description = "No step waits to start", body = ErrorBody)
    )
)]
pub(crate) async fn continue_run(
    State(state): State<ApiState>,
    Segments(run): Segments<String>,
    Body(request): Body<ContinueRequest>,
) -> Result<Json<Done>, ApiError> {
    if request.all {
        if request.step.is_some() {
            return Err(ApiError::invalid("give `step` or `all`, not both"));
        }
        return send(&state, &run, Command::ContinueAll).await;
    }
    let loaded = state.engine.load_run(&run).await?;
    let paused = loaded.state.waiting_to_start(request.step.as_deref());
    if paused.is_empty() {
        return Err(ApiError::invalid(match &request.step {
            Some(step) => format!("step `{step}` of run {run} is not waiting to start"),
            None => format!("run {run} has no step waiting to start"),
        }));
    }
    let run_id = loaded.row.run_id.to_string();
    let mut let_through: Vec<String> = Vec::new();
    let mut last = None;
    for (step, hash) in &paused {
        match send(&state, &run_id, past_pause(step, hash)).await {
            Ok(done) => {
                let_through.push(format!("`{step}`"));
                last = Some(done);
            }
            Err(mut error) if !let_through.is_empty() => {
                error.message = format!(
                    "{} let through already; then step `{step}`: {}",
                    let_through.join(", "),
                    error.message
                );
                return Err(error);
            }
            Err(error) => return Err(error),
        }
    }
    last.ok_or_else(|| ApiError::internal("no step was continued"))
}

fn past_pause(step: &StepId, proposal_hash: &str) -> Command {
    Command::Approve {
        step: step.clone(),
        comment: None,
        edited: None,
        proposal: Some(proposal_hash.to_string()),
    }
}
