//! A run's state, folded from its events. `apply` is the only way it changes.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::{Value, json};
use thiserror::Error;

use crate::event::{DecisionMode, Event, RunStarted};
use crate::operation::{OperationError, OperationRequest, OperationResult};
use crate::policy::{Policy, PolicyError};
use crate::template::Scope;
use crate::workflow::Workflow;

pub use super::status::{RunStatus, StepStatus};
pub use super::step::{PendingApproval, StepState};
pub(crate) use super::step::{Phase, Purpose, proposal_request, purpose_of};

/// A state change that the log does not allow: the log is corrupt or from another workflow.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StateError {
    #[error("event {seq}: expected seq {expected}")]
    OutOfOrder { seq: u64, expected: u64 },
    #[error("event {seq}: the first event of a run must be RunStarted")]
    NotStarted { seq: u64 },
    #[error("event {seq}: unknown step `{step}` (the workflow does not have it)")]
    UnknownStep { seq: u64, step: String },
    #[error("event {seq}: {message}")]
    Unexpected { seq: u64, message: String },
    #[error("policy of the run cannot be used: {0}")]
    Policy(#[from] PolicyError),
}

/// The fold of a run's events.
#[derive(Debug)]
pub struct RunState {
    pub(crate) workflow: Arc<Workflow>,
    pub(crate) started: RunStarted,
    pub(crate) policy: Policy,
    pub(crate) steps: Vec<StepState>,
    pub(crate) last_seq: u64,
    pub(crate) in_flight: usize,
    pub(crate) ops: HashMap<u64, usize>,
    pub(crate) dirty: BTreeSet<usize>,
    /// Steps ready to start an operation but held back by `max_parallel` or a pause.
    pub(crate) held: BTreeSet<usize>,
    pub(crate) paused: bool,
    pub(crate) cancel_requested: bool,
    pub(crate) finished: Option<RunStatus>,
    pub(crate) terminal: usize,
    /// Steps waiting for a retry timer, and for a person (approval or unknown outcome): kept
    /// as counts so that `status` does not walk every step.
    waiting_retry: usize,
    waiting_person: usize,
    pub(crate) base_scope: Scope,
}

impl RunState {
    /// A run's state right after its `RunStarted` event (seq 1).
    pub fn new(workflow: Arc<Workflow>, started: RunStarted) -> Result<RunState, StateError> {
        let rules: Vec<_> = started
            .policy
            .iter()
            .chain(&workflow.policy_rules)
            .cloned()
            .collect();
        let policy = Policy::compile(&rules)?;
        let steps = workflow
            .steps
            .iter()
            .map(|s| StepState {
                status: StepStatus::Pending,
                attempt: 0,
                output: None,
                error: None,
                reason: None,
                pending_approval: None,
                approved_proposal: None,
                base_content: None,
                approved_hashes: BTreeSet::new(),
                waiting_needs: s.needs.len(),
                phase: if s.needs.is_empty() {
                    Phase::Ready
                } else {
                    Phase::Blocked
                },
                purpose: None,
            })
            .collect();
        let dirty = workflow
            .steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.needs.is_empty())
            .map(|(i, _)| i)
            .collect();
        let base_scope = Scope::new(&started.inputs);
        Ok(RunState {
            workflow,
            started,
            policy,
            steps,
            last_seq: 1,
            in_flight: 0,
            ops: HashMap::new(),
            dirty,
            held: BTreeSet::new(),
            paused: false,
            cancel_requested: false,
            finished: None,
            terminal: 0,
            waiting_retry: 0,
            waiting_person: 0,
            base_scope,
        })
    }

    /// Folds a whole log (seq 1 = `RunStarted`) without re-deciding anything.
    pub fn load(workflow: Arc<Workflow>, events: &[(u64, Event)]) -> Result<RunState, StateError> {
        let mut iter = events.iter();
        let started = match iter.next() {
            Some((1, Event::RunStarted(started))) => started.clone(),
            Some((seq, _)) => return Err(StateError::NotStarted { seq: *seq }),
            None => return Err(StateError::NotStarted { seq: 1 }),
        };
        let mut state = RunState::new(workflow, started)?;
        for (seq, event) in iter {
            state.apply(*seq, event)?;
        }
        Ok(state)
    }

    pub fn workflow(&self) -> &Arc<Workflow> {
        &self.workflow
    }

    pub fn started(&self) -> &RunStarted {
        &self.started
    }

    /// Whether someone asked to cancel the run.
    pub fn cancel_requested(&self) -> bool {
        self.cancel_requested
    }

    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    pub fn steps(&self) -> impl Iterator<Item = (&crate::workflow::Step, &StepState)> {
        self.workflow.steps.iter().zip(&self.steps)
    }

    pub fn step_state(&self, id: &str) -> Option<&StepState> {
        self.workflow.step_index(id).map(|i| &self.steps[i])
    }

    pub fn status(&self) -> RunStatus {
        if let Some(done) = self.finished {
            return done;
        }
        if self.paused {
            return RunStatus::Paused;
        }
        let waiting_retry = self.waiting_retry > 0;
        let waiting_person = self.waiting_person > 0;
        if self.in_flight == 0 && !waiting_retry && waiting_person && self.held.is_empty() {
            RunStatus::AwaitingApproval
        } else {
            RunStatus::Running
        }
    }

    /// Operations requested but not answered, oldest first: after a crash, these are the
    /// ones to recover.
    pub fn unanswered_operations(&self) -> Vec<(u64, &str, &OperationRequest)> {
        let mut out: Vec<_> = self
            .steps
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match &s.phase {
                Phase::InFlight { op, request } => {
                    Some((*op, self.workflow.steps[i].id.as_str(), request))
                }
                _ => None,
            })
            .collect();
        out.sort_by_key(|(op, _, _)| *op);
        out
    }

    /// The operation of a step whose outcome is unknown (after a crash), waiting for a person.
    pub fn unknown_operation(&self, step: &str) -> Option<(u64, &OperationRequest)> {
        let i = self.workflow.step_index(step)?;
        match &self.steps[i].phase {
            Phase::Unknown { op, request } => Some((*op, request)),
            _ => None,
        }
    }

    /// Steps waiting for a retry timer: (step id, next attempt).
    pub fn pending_retries(&self) -> Vec<(&str, u32)> {
        self.steps()
            .filter(|(_, s)| matches!(s.phase, Phase::RetryWait))
            .map(|(def, s)| (def.id.as_str(), s.attempt + 1))
            .collect()
    }

    /// Questions waiting for a person, in workflow order.
    pub fn pending_approvals(&self) -> Vec<(&str, &PendingApproval)> {
        self.steps()
            .filter(|(_, s)| s.status == StepStatus::AwaitingApproval)
            .filter_map(|(def, s)| s.pending_approval.as_ref().map(|p| (def.id.as_str(), p)))
            .collect()
    }

    /// What templates see of a step as `steps.<id>`.
    pub fn step_view(&self, index: usize) -> Value {
        let s = &self.steps[index];
        json!({
            "status": s.status.as_str(),
            "output": s.output.clone().unwrap_or(Value::Null),
            "error": s.error.clone(),
            "reason": s.reason.clone(),
            "attempts": s.attempt,
        })
    }

    fn index_of(&self, seq: u64, step: &str) -> Result<usize, StateError> {
        self.workflow
            .step_index(step)
            .ok_or_else(|| StateError::UnknownStep {
                seq,
                step: step.to_string(),
            })
    }

    fn op_step(&self, seq: u64, op: u64) -> Result<usize, StateError> {
        self.ops
            .get(&op)
            .copied()
            .ok_or_else(|| StateError::Unexpected {
                seq,
                message: format!("answers operation {op}, which was never started"),
            })
    }

    fn dirty_all_open(&mut self) {
        for (i, s) in self.steps.iter().enumerate() {
            if !s.status.is_terminal() {
                self.dirty.insert(i);
            }
        }
    }

    fn free_slot(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let held = std::mem::take(&mut self.held);
        self.dirty.extend(held);
    }

    fn finish_step(&mut self, index: usize, status: StepStatus) {
        let step = &mut self.steps[index];
        if step.status.is_terminal() {
            return;
        }
        step.status = status;
        step.phase = Phase::Done;
        step.pending_approval = None;
        self.terminal += 1;
        self.held.remove(&index);
        let dependents = self.workflow.steps[index].dependents.clone();
        for d in dependents {
            let dep = &mut self.steps[d];
            dep.waiting_needs = dep.waiting_needs.saturating_sub(1);
            if dep.waiting_needs == 0 && matches!(dep.phase, Phase::Blocked) {
                dep.phase = Phase::Ready;
                self.dirty.insert(d);
            }
        }
    }

    /// Applies one event. Seqs must follow each other without gaps.
    pub fn apply(&mut self, seq: u64, event: &Event) -> Result<(), StateError> {
        // Everything the event relies on is checked before anything changes: an event that
        // cannot apply leaves the state exactly as it was.
        self.check(seq, event)?;
        self.last_seq = seq;
        // An event changes the status of at most one step: count it out and back in.
        let touched = self.touched_step(event);
        if let Some(i) = touched {
            self.count_status(self.steps[i].status, false);
        }
        let applied = self.apply_event(seq, event);
        if let Some(i) = touched {
            self.count_status(self.steps[i].status, true);
        }
        applied
    }

    /// Whether `event` can be applied as event `seq`: what `apply_event` relies on, checked
    /// without changing anything.
    fn check(&self, seq: u64, event: &Event) -> Result<(), StateError> {
        if seq != self.last_seq + 1 {
            return Err(StateError::OutOfOrder {
                seq,
                expected: self.last_seq + 1,
            });
        }
        let unexpected = |message: String| Err(StateError::Unexpected { seq, message });
        match event {
            Event::RunStarted(_) => unexpected("a second RunStarted".into()),
            Event::ApprovalGranted(granted) => {
                let i = self.index_of(seq, &granted.step)?;
                if !matches!(granted.mode, DecisionMode::Manual) {
                    return Ok(());
                }
                match &self.steps[i].pending_approval {
                    None => unexpected(format!(
                        "approval of step `{}`, which is not awaiting approval",
                        granted.step
                    )),
                    Some(pending)
                        if pending.attempt != granted.attempt
                            || pending.proposal_hash != granted.proposal_hash =>
                    {
                        unexpected(format!(
                            "approval of step `{}` names proposal {} of attempt {}, but it waits on {} of attempt {}",
                            granted.step,
                            granted.proposal_hash,
                            granted.attempt,
                            pending.proposal_hash,
                            pending.attempt
                        ))
                    }
                    Some(_) => Ok(()),
                }
            }
            Event::ProposalVoided {
                step,
                attempt,
                proposal_hash,
                ..
            } => {
                let s = &self.steps[self.index_of(seq, step)?];
                let waits_on_it = s.status == StepStatus::AwaitingApproval
                    && s.pending_approval.as_ref().is_some_and(|p| {
                        p.attempt == *attempt && p.proposal_hash == *proposal_hash
                    });
                if waits_on_it {
                    Ok(())
                } else {
                    unexpected(format!(
                        "voids proposal {proposal_hash} of step `{step}`, which does not wait on it"
                    ))
                }
            }
            Event::OperationSucceeded { op, .. } | Event::OperationFailed { op, .. } => {
                let i = self.op_step(seq, *op)?;
                match &self.steps[i].phase {
                    Phase::InFlight { op: current, .. } if current == op => Ok(()),
                    _ => unexpected(format!("answers operation {op}, which is not in flight")),
                }
            }
            Event::OperationOutcomeUnknown { op } | Event::OperationResolved { op, .. } => {
                self.op_step(seq, *op).map(|_| ())
            }
            other => match other.step() {
                Some(step) => self.index_of(seq, step).map(|_| ()),
                None => Ok(()),
            },
        }
    }

    /// The step whose status an event may change.
    fn touched_step(&self, event: &Event) -> Option<usize> {
        match event {
            Event::OperationSucceeded { op, .. }
            | Event::OperationFailed { op, .. }
            | Event::OperationOutcomeUnknown { op }
            | Event::OperationResolved { op, .. } => self.ops.get(op).copied(),
            other => other.step().and_then(|id| self.workflow.step_index(id)),
        }
    }

    fn count_status(&mut self, status: StepStatus, add: bool) {
        let counter = match status {
            StepStatus::WaitingRetry => &mut self.waiting_retry,
            StepStatus::AwaitingApproval | StepStatus::OutcomeUnknown => &mut self.waiting_person,
            _ => return,
        };
        *counter = if add {
            *counter + 1
        } else {
            counter.saturating_sub(1)
        };
    }

    fn apply_event(&mut self, seq: u64, event: &Event) -> Result<(), StateError> {
        match event {
            Event::RunStarted(_) => {
                return Err(StateError::Unexpected {
                    seq,
                    message: "a second RunStarted".into(),
                });
            }
            Event::StepStarted { step, attempt } => {
                let i = self.index_of(seq, step)?;
                let s = &mut self.steps[i];
                s.status = StepStatus::Running;
                s.attempt = *attempt;
                s.phase = Phase::Begin;
                s.error = None;
                self.dirty.insert(i);
            }
            Event::StepSkipped { step, reason } => {
                let i = self.index_of(seq, step)?;
                self.steps[i].reason = Some(reason.clone());
                self.finish_step(i, StepStatus::Skipped);
            }
            Event::ApprovalRequested {
                step,
                attempt,
                proposal,
                proposal_hash,
                reason,
            } => {
                let i = self.index_of(seq, step)?;
                let s = &mut self.steps[i];
                s.status = StepStatus::AwaitingApproval;
                s.phase = Phase::AwaitingApproval;
                s.pending_approval = Some(PendingApproval {
                    attempt: *attempt,
                    proposal: proposal.clone(),
                    proposal_hash: proposal_hash.clone(),
                    reason: reason.clone(),
                    requested_seq: seq,
                });
            }
            Event::ApprovalGranted(granted) => {
                let i = self.index_of(seq, &granted.step)?;
                let s = &mut self.steps[i];
                if matches!(granted.mode, DecisionMode::Manual) {
                    let pending =
                        s.pending_approval
                            .take()
                            .ok_or_else(|| StateError::Unexpected {
                                seq,
                                message: format!(
                                    "approval of step `{}`, which is not awaiting approval",
                                    granted.step
                                ),
                            })?;
                    if pending.attempt != granted.attempt
                        || pending.proposal_hash != granted.proposal_hash
                    {
                        return Err(StateError::Unexpected {
                            seq,
                            message: format!(
                                "approval of step `{}` names proposal {} of attempt {}, but it waits on {} of attempt {}",
                                granted.step,
                                granted.proposal_hash,
                                granted.attempt,
                                pending.proposal_hash,
                                pending.attempt
                            ),
                        });
                    }
                    let proposal = granted.edited.clone().unwrap_or(pending.proposal);
                    s.approved_hashes.insert(granted.approved_hash.clone());
                    s.status = StepStatus::Running;
                    s.phase = Phase::Approved(proposal_request(&proposal));
                    s.approved_proposal = Some(proposal);
                    self.dirty.insert(i);
                } else {
                    s.approved_hashes.insert(granted.approved_hash.clone());
                }
            }
            Event::ProposalVoided {
                step,
                attempt,
                proposal_hash,
                ..
            } => {
                let i = self.index_of(seq, step)?;
                let s = &mut self.steps[i];
                let waits_on_it = s.status == StepStatus::AwaitingApproval
                    && s.pending_approval.as_ref().is_some_and(|p| {
                        p.attempt == *attempt && p.proposal_hash == *proposal_hash
                    });
                if !waits_on_it {
                    return Err(StateError::Unexpected {
                        seq,
                        message: format!(
                            "voids proposal {proposal_hash} of step `{step}`, which does not wait on it"
                        ),
                    });
                }
                // Back to the attempt's first move: an edit snapshots the file again and
                // proposes against what it finds.
                s.pending_approval = None;
                s.status = StepStatus::Running;
                s.phase = Phase::Begin;
                self.dirty.insert(i);
            }
            Event::ApprovalRejected {
                step, by, reason, ..
            } => {
                let i = self.index_of(seq, step)?;
                let s = &mut self.steps[i];
                s.pending_approval = None;
                s.phase = Phase::Rejected {
                    by: by.clone(),
                    reason: reason.clone(),
                };
                self.dirty.insert(i);
            }
            Event::OperationStarted { step, request, .. } => {
                let i = self.index_of(seq, step)?;
                let s = &mut self.steps[i];
                s.status = StepStatus::Running;
                s.purpose = Some(purpose_of(&self.workflow.steps[i].action, request));
                s.phase = Phase::InFlight {
                    op: seq,
                    request: request.clone(),
                };
                self.ops.insert(seq, i);
                self.in_flight += 1;
                self.held.remove(&i);
            }
            Event::OperationSucceeded { op, result } => {
                self.answer(seq, *op, Ok(result.clone()))?
            }
            Event::OperationFailed { op, error } => self.answer(seq, *op, Err(error.clone()))?,
            Event::OperationOutcomeUnknown { op } => {
                let i = self.op_step(seq, *op)?;
                if let Phase::InFlight { request, .. } = self.steps[i].phase.clone() {
                    self.steps[i].status = StepStatus::OutcomeUnknown;
                    self.steps[i].phase = Phase::Unknown { op: *op, request };
                    // Re-decided: in a run being cancelled, the step is cancelled now.
                    self.dirty.insert(i);
                    self.free_slot();
                }
            }
            Event::OperationResolved { op, resolution, by } => {
                let i = self.op_step(seq, *op)?;
                if let Phase::Unknown { request, .. } = self.steps[i].phase.clone() {
                    self.steps[i].status = StepStatus::Running;
                    self.steps[i].phase = Phase::Resolved {
                        resolution: *resolution,
                        by: by.clone(),
                        request,
                    };
                    self.dirty.insert(i);
                }
            }
            Event::StepRetryScheduled { step, error, .. } => {
                let i = self.index_of(seq, step)?;
                let s = &mut self.steps[i];
                s.status = StepStatus::WaitingRetry;
                s.phase = Phase::RetryWait;
                s.error = Some(error.clone());
            }
            Event::RetryDue { step, .. } => {
                let i = self.index_of(seq, step)?;
                if matches!(self.steps[i].phase, Phase::RetryWait) {
                    self.steps[i].phase = Phase::RetryNow;
                    self.dirty.insert(i);
                }
            }
            Event::StepSucceeded {
                step,
                attempt,
                output,
            } => {
                let i = self.index_of(seq, step)?;
                let s = &mut self.steps[i];
                s.attempt = (*attempt).max(s.attempt);
                s.output = Some(output.clone());
                self.finish_step(i, StepStatus::Succeeded);
            }
            Event::StepFailed {
                step,
                attempt,
                error,
                output,
            } => {
                let i = self.index_of(seq, step)?;
                let s = &mut self.steps[i];
                s.attempt = (*attempt).max(s.attempt);
                s.error = Some(error.clone());
                s.output = output.clone();
                self.finish_step(i, StepStatus::Failed);
            }
            Event::StepRejected { step, reason, .. } => {
                let i = self.index_of(seq, step)?;
                self.steps[i].reason = Some(reason.clone());
                self.finish_step(i, StepStatus::Rejected);
            }
            Event::StepCancelled { step } => {
                let i = self.index_of(seq, step)?;
                self.finish_step(i, StepStatus::Cancelled);
            }
            Event::RunPauseRequested { .. } => self.paused = true,
            Event::RunResumeRequested { .. } => {
                self.paused = false;
                self.dirty_all_open();
            }
            Event::RunCancelRequested { .. } => {
                self.cancel_requested = true;
                self.paused = false;
                self.dirty_all_open();
            }
            Event::RunSucceeded {} => self.finished = Some(RunStatus::Succeeded),
            Event::RunFailed { .. } => self.finished = Some(RunStatus::Failed),
            Event::RunCancelled {} => self.finished = Some(RunStatus::Cancelled),
        }
        Ok(())
    }

    fn answer(
        &mut self,
        seq: u64,
        op: u64,
        outcome: Result<OperationResult, OperationError>,
    ) -> Result<(), StateError> {
        let i = self.op_step(seq, op)?;
        match self.steps[i].phase.clone() {
            Phase::InFlight {
                op: current,
                request,
            } if current == op => {
                if let (
                    Some(Purpose::Snapshot),
                    Ok(OperationResult::FileRead {
                        exists, content, ..
                    }),
                ) = (self.steps[i].purpose, &outcome)
                {
                    self.steps[i].base_content = exists.then(|| content.clone());
                }
                self.steps[i].phase = Phase::Returned { request, outcome };
                self.dirty.insert(i);
                self.free_slot();
                Ok(())
            }
            _ => Err(StateError::Unexpected {
                seq,
                message: format!("answers operation {op}, which is not in flight"),
            }),
        }
    }
}
