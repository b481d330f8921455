//! Commands: what a person (or a client acting for one) asks of a run, and turning one into
//! the input event it records, after checking that it fits the run as it is now.
//!
//! Commands travel through the database (the run's inbox), so they are serialisable; the
//! process that holds the run applies them and records a [`Refusal`] for those that do not fit.

use serde::{Deserialize, Serialize};
use stepwise_core::event::{ApprovalGranted, DecisionMode, Event, Proposal, Resolution};
use stepwise_core::ids::{EventSeq, RunId, StepId};
use stepwise_core::run::{
    EditedProposal, HunkOutcome, PendingApproval, RunState, StepState, StepStatus, edited_proposal,
    review_hunks,
};

use crate::error::EngineError;

/// Something a person (or a client acting for one) asks of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Approve what a step waits on, optionally edited.
    Approve {
        /// The step waiting.
        step: StepId,
        /// Recorded with the approval.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
        /// The proposal as the person edited it, approved instead of the one proposed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        edited: Option<EditedProposal>,
        /// The hash (or a prefix of it) of the proposal the person saw; when given, the
        /// approval is refused if the step now waits on a different proposal.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        proposal: Option<String>,
    },
    /// Reject what a step waits on: the step fails with the reason.
    Reject {
        /// The step waiting.
        step: StepId,
        /// Why, recorded and passed on to the steps after (and to a model asked again).
        reason: String,
        /// As for `Approve`: refused if the step now waits on another proposal.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        proposal: Option<String>,
    },
    /// Settle an operation whose outcome a crash made unknown.
    Resolve {
        /// The step whose operation it is.
        step: StepId,
        /// What the person found.
        resolution: Resolution,
    },
    /// Running operations finish; nothing new starts until `Resume`.
    Pause,
    /// Go on after a `Pause`.
    Resume,
    /// Running commands are killed; nothing new starts; the run ends cancelled.
    Cancel,
    /// Every step waiting at a breakpoint starts, and the run pauses before no step from now
    /// on (`stepwise continue --all`).
    ContinueAll,
}

impl Command {
    /// Whether the command holds back what would otherwise start (pause, cancel): a driver
    /// applies these before anything else when it starts.
    pub(crate) fn holds_back(&self) -> bool {
        matches!(self, Command::Pause | Command::Cancel)
    }

    /// The command as people type it.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Approve { .. } => "approve",
            Command::Reject { .. } => "reject",
            Command::Resolve { .. } => "resolve",
            Command::Pause => "pause",
            Command::Resume => "resume",
            Command::Cancel => "cancel",
            Command::ContinueAll => "continue --all",
        }
    }
}

/// Why a command was not applied, as recorded in the inbox and reported to whoever sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    /// What kind of refusal, for a client to branch on.
    pub kind: RefusalKind,
    /// Why, in words.
    pub message: String,
}

/// The kinds of refusal a client may want to tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalKind {
    /// The step's edit targets a file that changed since the proposal; a fresh proposal was
    /// made against the file as it is now.
    StaleProposal,
    /// The step waits on another proposal than the one named.
    ProposalChanged,
    /// The run has no such step.
    UnknownStep,
    /// The step is not in a state the command applies to (e.g. not awaiting approval).
    WrongState,
    /// The run has ended.
    RunFinished,
    /// A rejection without a reason.
    MissingReason,
    /// The edited proposal cannot be used.
    InvalidEdit,
    /// The proposal hash given is too short (or not hex) to name one proposal.
    InvalidProposalHash,
    /// The stored command could not be read (written by a newer stepwise?).
    Unreadable,
    /// The person may not answer this question (`approvers`, `self_approval: false`).
    NotAnApprover,
}

impl Refusal {
    /// The refusal for a command that `command_event` turned down.
    pub(crate) fn from_error(error: &EngineError) -> Refusal {
        let kind = match error {
            EngineError::ProposalChanged { .. } => RefusalKind::ProposalChanged,
            EngineError::UnknownStep { .. } => RefusalKind::UnknownStep,
            EngineError::RunFinished { .. } => RefusalKind::RunFinished,
            EngineError::MissingReason { .. } => RefusalKind::MissingReason,
            EngineError::InvalidEdit(_) => RefusalKind::InvalidEdit,
            EngineError::InvalidProposalHash { .. } => RefusalKind::InvalidProposalHash,
            EngineError::Refused(refusal) => refusal.kind,
            _ => RefusalKind::WrongState,
        };
        Refusal {
            kind,
            message: error.to_string(),
        }
    }
}

/// The event a command records, or `None` when it changes nothing (resuming a run that is not
/// paused just drives it). `user` sent it, from the machine `host` (when recorded).
pub(crate) fn command_event(
    state: &RunState,
    run_id: &RunId,
    user: &str,
    host: Option<&str>,
    command: Command,
) -> Result<Option<Event>, EngineError> {
    let status = state.status();
    // Resuming a finished run is asking how it ended, not an error.
    if matches!(command, Command::Resume) && status.is_finished() {
        return Ok(None);
    }
    if status.is_finished() {
        return Err(EngineError::RunFinished {
            run_id: run_id.clone(),
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
            check_answerer(state, &step, user, false)?;
            check_answer(&step, &pending.proposal, edited.as_ref())?;
            let mut hunks = None;
            let edited = match edited {
                Some(EditedProposal::Hunks { rejected, .. }) if rejected.is_empty() => None,
                Some(EditedProposal::Hunks { rejected, reason }) => {
                    let base = step_state.base_content.as_deref();
                    match review_hunks(&pending.proposal, base, &rejected, reason.as_deref())
                        .map_err(EngineError::InvalidEdit)?
                    {
                        HunkOutcome::RejectAll { reason } => {
                            return Ok(Some(Event::ApprovalRejected {
                                step,
                                attempt: pending.attempt,
                                proposal_hash: pending.proposal_hash.clone(),
                                by,
                                host: host.map(str::to_owned),
                                reason,
                            }));
                        }
                        HunkOutcome::Apply { proposal, review } => {
                            hunks = Some(review);
                            Some(*proposal)
                        }
                    }
                }
                Some(edit) => {
                    let proposal = edited_proposal(
                        &pending.proposal,
                        step_state.base_content.as_deref(),
                        edit,
                    )
                    .map_err(EngineError::InvalidEdit)?;
                    if let Some(rule) = state.refusal(&step, &proposal) {
                        return Err(EngineError::InvalidEdit(format!(
                            "policy refuses it: {rule}"
                        )));
                    }
                    Some(proposal)
                }
                None => None,
            };
            check_answerer(state, &step, user, true)?;
            let approved_hash = edited
                .as_ref()
                .map_or_else(|| Ok(pending.proposal_hash.clone()), |p| p.hash())
                .map_err(|e| EngineError::InvalidEdit(format!("it cannot be recorded: {e}")))?;
            Event::ApprovalGranted(ApprovalGranted {
                step,
                attempt: pending.attempt,
                proposal_hash: pending.proposal_hash.clone(),
                approved_hash,
                edited,
                by,
                host: host.map(str::to_owned),
                mode: DecisionMode::Manual,
                comment: comment.filter(|c| !c.trim().is_empty()),
                hunks,
            })
        }
        Command::Reject {
            step,
            reason,
            proposal,
        } => {
            let (_, pending) = awaiting(state, run_id, &step, proposal.as_deref())?;
            check_answerer(state, &step, user, false)?;
            if reason.trim().is_empty() {
                return Err(EngineError::MissingReason { step });
            }
            Event::ApprovalRejected {
                step,
                attempt: pending.attempt,
                proposal_hash: pending.proposal_hash.clone(),
                by,
                host: host.map(str::to_owned),
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
        // Passing every breakpoint (and any later one) answers breakpoints: their approvers'.
        Command::ContinueAll => {
            check_breakpoint_answerer(state, user)?;
            Event::BreakpointsCleared { by }
        }
    }))
}

/// Refuses a person the run's `approvers` (or `self_approval: false`, when `approving`) do not
/// let answer what `step` waits on.
pub(crate) fn check_answerer(
    state: &RunState,
    step: &StepId,
    user: &str,
    approving: bool,
) -> Result<(), EngineError> {
    state
        .may_answer(step, user, approving)
        .map_err(not_an_approver)
}

/// Refuses `continue --all` to a person the run's approvers of breakpoints leave out (or its
/// starter, with `self_approval: false`).
pub(crate) fn check_breakpoint_answerer(state: &RunState, user: &str) -> Result<(), EngineError> {
    state
        .approvers()
        .check(
            stepwise_core::approvers::QuestionKind::Breakpoint,
            user,
            &state.started().started_by,
            true,
        )
        .map_err(not_an_approver)
}

fn not_an_approver(message: String) -> EngineError {
    EngineError::Refused(Refusal {
        kind: RefusalKind::NotAnApprover,
        message,
    })
}

fn step_in<'s>(
    state: &'s RunState,
    run_id: &RunId,
    step: &StepId,
) -> Result<&'s StepState, EngineError> {
    state
        .step_state(step)
        .ok_or_else(|| EngineError::UnknownStep {
            run_id: run_id.clone(),
            step: step.clone(),
        })
}

fn wrong_state(step: &StepId, status: StepStatus, expected: &'static str) -> EngineError {
    EngineError::WrongStepState {
        step: step.clone(),
        status: status.as_str().to_string(),
        expected,
    }
}

/// The step and the question it waits on, checked to be the proposal the person saw.
fn awaiting<'s>(
    state: &'s RunState,
    run_id: &RunId,
    step: &StepId,
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

/// The fewest hex digits of a proposal hash that name one: shorter prefixes (`sha`,
/// `sha256:`, `1a`) would match whatever the step waits on.
pub const MIN_PROPOSAL_DIGITS: usize = 8;

/// The hex digits of a proposal hash as a person gives it (`sha256:1a2b3c4d…` or `1a2b3c4d…`,
/// any case), refused when too short or not hex.
pub(crate) fn proposal_digits(given: &str) -> Result<String, EngineError> {
    let trimmed = given.trim();
    let digits = trimmed
        .strip_prefix("sha256:")
        .or_else(|| trimmed.strip_prefix("SHA256:"))
        .unwrap_or(trimmed);
    if digits.len() < MIN_PROPOSAL_DIGITS || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(EngineError::InvalidProposalHash {
            given: given.to_string(),
        });
    }
    Ok(digits.to_ascii_lowercase())
}

/// Refuses a decision about a proposal other than the one the person saw.
fn check_proposal(step: &StepId, current: &str, seen: Option<&str>) -> Result<(), EngineError> {
    let Some(seen) = seen else {
        return Ok(());
    };
    let seen_digits = proposal_digits(seen)?;
    let current_digits = current.strip_prefix("sha256:").unwrap_or(current);
    if current_digits.starts_with(&seen_digits) {
        return Ok(());
    }
    Err(EngineError::ProposalChanged {
        step: step.clone(),
        expected: seen.to_string(),
        current: current.to_string(),
    })
}

/// A command that was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// The command's id in the run's inbox.
    pub command_id: i64,
    /// The seq of the event it recorded; `None` for a command that changed nothing (resuming
    /// a run that was not paused).
    pub seq: Option<EventSeq>,
}

/// The longest answer a person may give an agent.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// A question is approved only with an answer, and an answer is only for a question.
fn check_answer(
    step: &StepId,
    proposal: &Proposal,
    edited: Option<&EditedProposal>,
) -> Result<(), EngineError> {
    match (proposal, edited) {
        (Proposal::Question { .. }, Some(EditedProposal::Answer(answer))) => {
            if answer.trim().is_empty() {
                return Err(EngineError::InvalidEdit(
                    "the answer is empty; write one, or reject the question with a reason".into(),
                ));
            }
            if answer.len() > MAX_ANSWER_BYTES {
                return Err(EngineError::InvalidEdit(format!(
                    "the answer is longer than {} KiB",
                    MAX_ANSWER_BYTES / 1024
                )));
            }
            Ok(())
        }
        (Proposal::Question { .. }, _) => Err(EngineError::InvalidEdit(format!(
            "step `{step}` asks a question: answer it (`stepwise answer`), or reject it with a reason"
        ))),
        (_, Some(EditedProposal::Answer(_))) => Err(EngineError::InvalidEdit(format!(
            "step `{step}` does not ask a question; approve or reject its proposal"
        ))),
        _ => Ok(()),
    }
}
