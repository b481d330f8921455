//! Turning a person's command into the input event it records, after checking that it fits
//! the run as it is now.

use stepwise_core::event::{ApprovalGranted, DecisionMode, Event};
use stepwise_core::run::{PendingApproval, RunState, StepState, StepStatus, edited_proposal};

use crate::engine::Command;
use crate::error::EngineError;

/// The event a command records, or `None` when it changes nothing (resuming a run that is not
/// paused just drives it).
pub(crate) fn command_event(
    state: &RunState,
    run_id: &str,
    user: &str,
    command: Command,
) -> Result<Option<Event>, EngineError> {
    let status = state.status();
    // Resuming a finished run is asking how it ended, not an error.
    if matches!(command, Command::Resume) && status.is_finished() {
        return Ok(None);
    }
    if status.is_finished() {
        return Err(EngineError::RunFinished {
            run_id: run_id.to_string(),
            status: status.as_str().to_string(),
        });
    }
    let by = user.to_string();
    Ok(Some(match command {
        Command::Approve {
            step,
            comment,
            edited,
            proposal,
        } => {
            let (step_state, pending) = awaiting(state, run_id, &step, proposal.as_deref())?;
            let edited = match edited {
                Some(edit) => {
                    let proposal = edited_proposal(
                        &pending.proposal,
                        step_state.base_content.as_deref(),
                        edit,
                    )
                    .map_err(EngineError::InvalidEdit)?;
                    if let Some(rule) = state.refusal(&proposal) {
                        return Err(EngineError::InvalidEdit(format!(
                            "policy refuses it: {rule}"
                        )));
                    }
                    Some(proposal)
                }
                None => None,
            };
            let approved_hash = edited
                .as_ref()
                .map_or_else(|| pending.proposal_hash.clone(), |p| p.hash());
            Event::ApprovalGranted(ApprovalGranted {
                step,
                attempt: pending.attempt,
                proposal_hash: pending.proposal_hash.clone(),
                approved_hash,
                edited,
                by,
                mode: DecisionMode::Manual,
                comment: comment.filter(|c| !c.trim().is_empty()),
            })
        }
        Command::Reject {
            step,
            reason,
            proposal,
        } => {
            let (_, pending) = awaiting(state, run_id, &step, proposal.as_deref())?;
            if reason.trim().is_empty() {
                return Err(EngineError::MissingReason { step });
            }
            Event::ApprovalRejected {
                step,
                attempt: pending.attempt,
                proposal_hash: pending.proposal_hash.clone(),
                by,
                reason,
            }
        }
        Command::Resolve { step, resolution } => {
            let step_state = step_in(state, run_id, &step)?;
            let Some((op, _)) = state.unknown_operation(&step) else {
                return Err(wrong_state(
                    &step,
                    step_state.status,
                    "waiting with an unknown outcome",
                ));
            };
            Event::OperationResolved { op, resolution, by }
        }
        Command::Pause => Event::RunPauseRequested { by },
        Command::Resume if status == stepwise_core::run::RunStatus::Paused => {
            Event::RunResumeRequested { by }
        }
        Command::Resume => return Ok(None),
        Command::Cancel => Event::RunCancelRequested { by },
    }))
}

fn step_in<'s>(
    state: &'s RunState,
    run_id: &str,
    step: &str,
) -> Result<&'s StepState, EngineError> {
    state
        .step_state(step)
        .ok_or_else(|| EngineError::UnknownStep {
            run_id: run_id.to_string(),
            step: step.to_string(),
        })
}

fn wrong_state(step: &str, status: StepStatus, expected: &'static str) -> EngineError {
    EngineError::WrongStepState {
        step: step.to_string(),
        status: status.as_str().to_string(),
        expected,
    }
}

/// The step and the question it waits on, checked to be the proposal the person saw.
fn awaiting<'s>(
    state: &'s RunState,
    run_id: &str,
    step: &str,
    seen: Option<&str>,
) -> Result<(&'s StepState, &'s PendingApproval), EngineError> {
    let step_state = step_in(state, run_id, step)?;
    let Some(pending) = step_state
        .pending_approval
        .as_ref()
        .filter(|_| step_state.status == StepStatus::AwaitingApproval)
    else {
        return Err(wrong_state(step, step_state.status, "awaiting approval"));
    };
    check_proposal(step, &pending.proposal_hash, seen)?;
    Ok((step_state, pending))
}

/// Refuses a decision about a proposal other than the one the person saw.
fn check_proposal(step: &str, current: &str, seen: Option<&str>) -> Result<(), EngineError> {
    let Some(seen) = seen.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(());
    };
    let bare = current.strip_prefix("sha256:").unwrap_or(current);
    if current.starts_with(seen) || bare.starts_with(seen) {
        return Ok(());
    }
    Err(EngineError::ProposalChanged {
        step: step.to_string(),
        expected: seen.to_string(),
        current: current.to_string(),
    })
}
