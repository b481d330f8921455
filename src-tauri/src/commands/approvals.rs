//! The approvals inbox across runs, and the decisions a person makes in it.

use std::collections::HashMap;

use stepwise_core::ids::{RunId, StepId};
use stepwise_core::operation::CommandLine;
use stepwise_core::run::EditedProposal;
use stepwise_engine::Command;
use tauri::State;

use crate::error::AppError;
use crate::state::AppState;
use crate::view::ApprovalItem;

/// Everything waiting for a person, newest question first.
#[tauri::command]
pub async fn list_approvals(state: State<'_, AppState>) -> Result<Vec<ApprovalItem>, AppError> {
    let approvals = state.engine.approvals(None).await?;
    // When each was asked (its `ApprovalRequested`'s time) and the run's workspace: one read
    // of each run that has questions.
    let mut runs: HashMap<RunId, (HashMap<u64, i64>, String)> = HashMap::new();
    let mut items = Vec::with_capacity(approvals.len());
    for approval in approvals {
        if !runs.contains_key(&approval.run_id) {
            let read = match state.engine.load_run(approval.run_id.as_str()).await {
                Ok(loaded) => (
                    loaded
                        .events
                        .iter()
                        .map(|(s, _)| (s.seq.get(), s.recorded_at_ms))
                        .collect(),
                    loaded.row.workspace,
                ),
                Err(_) => (HashMap::new(), String::new()),
            };
            runs.insert(approval.run_id.clone(), read);
        }
        let seq = approval.approval.requested_seq.get();
        let (asked_at, workspace) = runs
            .get(&approval.run_id)
            .map(|(times, ws)| (times.get(&seq).copied().unwrap_or(0), ws.clone()))
            .unwrap_or_default();
        items.push(ApprovalItem {
            run_id: approval.run_id,
            workflow: approval.workflow,
            workspace,
            step: approval.step,
            attempt: approval.approval.attempt,
            proposal: approval.approval.proposal,
            proposal_hash: approval.approval.proposal_hash,
            reason: approval.approval.reason,
            requested_seq: seq,
            requested_at_ms: asked_at,
        });
    }
    items.sort_by_key(|item| std::cmp::Reverse(item.requested_at_ms));
    Ok(items)
}

/// Approves the proposal the person saw (`proposal_hash`), optionally changed: new file
/// content for an edit, another command for a command.
#[tauri::command]
pub async fn approve_step(
    state: State<'_, AppState>,
    run: String,
    step: String,
    proposal_hash: String,
    comment: Option<String>,
    edited_content: Option<String>,
    edited_command: Option<CommandLine>,
) -> Result<(), AppError> {
    let edited = match (edited_content, edited_command) {
        (Some(content), None) => Some(EditedProposal::Content(content)),
        (None, Some(command)) => Some(EditedProposal::Command(command)),
        (None, None) => None,
        (Some(_), Some(_)) => {
            return Err(AppError::invalid(
                "an approval changes either the content or the command, not both",
            ));
        }
    };
    let comment = comment.filter(|c| !c.trim().is_empty());
    let command = Command::Approve {
        step: StepId::from(step.as_str()),
        comment,
        edited,
        proposal: Some(proposal_hash),
    };
    state.engine.send(&run, command).await?;
    Ok(())
}

/// Rejects the proposal the person saw, with their reason.
#[tauri::command]
pub async fn reject_step(
    state: State<'_, AppState>,
    run: String,
    step: String,
    proposal_hash: String,
    reason: String,
) -> Result<(), AppError> {
    if reason.trim().is_empty() {
        return Err(AppError::invalid("a rejection needs a reason"));
    }
    let command = Command::Reject {
        step: StepId::from(step.as_str()),
        reason,
        proposal: Some(proposal_hash),
    };
    state.engine.send(&run, command).await?;
    Ok(())
}
