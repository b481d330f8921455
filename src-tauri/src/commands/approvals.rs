//! The approvals inbox across runs, and the decisions a person makes in it.

use stepwise_core::ids::StepId;
use stepwise_core::operation::CommandLine;
use stepwise_core::run::EditedProposal;
use stepwise_engine::{Command, Engine};
use tauri::State;

use crate::error::AppError;
use crate::state::AppState;
use crate::view::{ApprovalItem, InboxView, UnreadableRun};

/// Everything waiting for a person, newest question first, and the runs that could not be
/// read to say what of theirs waits.
#[tauri::command]
pub async fn list_approvals(state: State<'_, AppState>) -> Result<InboxView, AppError> {
    inbox(&state.engine).await
}

pub async fn inbox(engine: &Engine) -> Result<InboxView, AppError> {
    let inbox = engine.approvals_inbox().await?;
    let mut items: Vec<ApprovalItem> = inbox
        .waiting
        .into_iter()
        .map(|asked| ApprovalItem {
            run_id: asked.approval.run_id,
            workflow: asked.approval.workflow,
            workspace: asked.workspace,
            step: asked.approval.step,
            attempt: asked.approval.approval.attempt,
            proposal: asked.approval.approval.proposal,
            proposal_hash: asked.approval.approval.proposal_hash,
            reason: asked.approval.approval.reason,
            requested_seq: asked.approval.approval.requested_seq.get(),
            requested_at_ms: asked.asked_at_ms,
            parent: asked.approval.parent.map(|link| *link),
            who_may_answer: asked.approval.who_may_answer,
        })
        .collect();
    items.sort_by_key(|item| std::cmp::Reverse(item.requested_at_ms));
    let unreadable = inbox
        .unreadable
        .into_iter()
        .map(|(run_id, error)| UnreadableRun {
            run_id,
            message: error.to_string(),
        })
        .collect();
    Ok(InboxView { items, unreadable })
}

/// Approves the proposal the person saw (`proposal_hash`), optionally changed: new file
/// content for an edit, another command for a command; an agent's question with its answer;
/// an edit with some of its hunks (`rejected_hunks`, numbered from 1) left out.
// A Tauri command takes its arguments by name from the window's `invoke`, one per field the
// window may send: a struct would only nest them.
#[allow(clippy::too_many_arguments)]
#[tauri::command]
pub async fn approve_step(
    state: State<'_, AppState>,
    run: String,
    step: String,
    proposal_hash: String,
    comment: Option<String>,
    edited_content: Option<String>,
    edited_command: Option<CommandLine>,
    edited_answer: Option<String>,
    rejected_hunks: Option<Vec<u32>>,
    hunk_reason: Option<String>,
) -> Result<(), AppError> {
    let hunks = rejected_hunks.map(|rejected| EditedProposal::Hunks {
        rejected,
        reason: hunk_reason,
    });
    let edited = match (edited_content, edited_command, edited_answer, hunks) {
        (Some(content), None, None, None) => Some(EditedProposal::Content(content)),
        (None, Some(command), None, None) => Some(EditedProposal::Command(command)),
        (None, None, Some(answer), None) => Some(EditedProposal::Answer(answer)),
        (None, None, None, hunks) => hunks,
        _ => {
            return Err(AppError::invalid(
                "an approval changes one thing: the content, the command, the answer, or which hunks apply",
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
