//! Applying an event to a run's state: checked in full first (`check`), so that an event that
//! cannot apply leaves the state exactly as it was, then folded in (`apply_event`).

use super::proposal::proposal_request;
use super::state::{Phase, Purpose, RunState, RunStatus, StateError, StepStatus};
use super::step::{PendingApproval, purpose_of};
use crate::event::{DecisionMode, Event, Proposal};
use crate::ids::EventSeq;
use crate::llm::{CostEstimate, add_micro_usd};
use crate::operation::{OperationError, OperationRequest, OperationResult};

impl RunState {
    /// Applies one event. Seqs must follow each other without gaps.
    pub fn apply(&mut self, seq: EventSeq, event: &Event) -> Result<(), StateError> {
        // Everything the event relies on is checked before anything changes: an event that
        // cannot apply leaves the state exactly as it was.
        self.check(seq, event)?;
        self.last_seq = seq;
        // An event changes the status of at most one step: count it out and back in.
        let touched = self.touched_step(event);
        if let Some(i) = touched {
            self.count_status(self.steps[i].status, false);
        }
        let at = touched
            .and_then(|i| self.steps[i].agent.as_ref())
            .and_then(|turn| turn.current());
        let applied = self.apply_event(seq, event);
        if let Some(i) = touched {
            self.count_status(self.steps[i].status, true);
            if applied.is_ok() {
                self.follow_conversation(i, seq, event, at);
            }
        }
        applied
    }

    /// Whether `event` can be applied as event `seq`: what `apply_event` relies on, checked
    /// without changing anything.
    fn check(&self, seq: EventSeq, event: &Event) -> Result<(), StateError> {
        if seq != self.last_seq.next() {
            return Err(StateError::OutOfOrder {
                seq,
                expected: self.last_seq.next(),
            });
        }
        let unexpected = |message: String| Err(StateError::Unexpected { seq, message });
        match event {
            Event::RunStarted(_) => unexpected("a second RunStarted".into()),
            Event::RunAborted { .. } if self.finished.is_some() => {
                unexpected("RunAborted of a run that has ended".into())
            }
            // What the workflow (a fork's may be another) and the step allow, or the state
            // would not add up.
            Event::StepExpanded { step, items } => self.check_expansion(seq, step, items.len()),
            Event::StepRoundEnded { step, round, .. } => self.check_round_end(seq, step, *round),
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
                    Some(pending) => {
                        // An approved plan must join the run: checked here, so that applying
                        // it cannot fail half-way.
                        let proposal = granted.edited.as_ref().unwrap_or(&pending.proposal);
                        if let Proposal::Plan { steps, .. } = proposal
                            && let Err(problem) = super::plan_step::joined(&self.workflow, i, steps)
                        {
                            return unexpected(format!(
                                "the plan of step `{}` cannot join the run: {problem}",
                                granted.step
                            ));
                        }
                        Ok(())
                    }
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
            Event::OperationStarted { step, request, .. } => {
                let i = self.index_of(seq, step)?;
                self.check_tool_operation(seq, i, request)
            }
            Event::CompensationStarted { steps } => self.check_compensation_started(seq, steps),
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

    /// Step `i` goes on past the pause before it: ready to start.
    fn pass_breakpoint(&mut self, i: usize) {
        let s = &mut self.steps[i];
        s.breakpoint_passed = true;
        s.status = StepStatus::Pending;
        s.phase = Phase::Ready;
        self.dirty.insert(i);
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

    fn apply_event(&mut self, seq: EventSeq, event: &Event) -> Result<(), StateError> {
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
                s.llm_calls = 0;
                s.agent = None;
                s.tool_turns = 0;
                s.mcp_listed = 0;
                s.mcp_tools.clear();
                s.mcp_unavailable.clear();
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
                    if matches!(pending.proposal, Proposal::Breakpoint { .. }) {
                        s.approved_hashes.insert(granted.approved_hash.clone());
                        self.pass_breakpoint(i);
                        return Ok(());
                    }
                    let changed = granted.edited.is_some();
                    let proposal = granted.edited.clone().unwrap_or(pending.proposal);
                    // A call let past the budget: the budget is raised when the call starts,
                    // by what it lacks then (after every reservation), never here against a
                    // remainder another approval may raise against too.
                    if let Proposal::LlmCall { raise, .. } = &proposal {
                        s.over_budget_approved =
                            raise.micro_usd.is_some() || raise.tokens.is_some();
                    }
                    s.approved_hashes.insert(granted.approved_hash.clone());
                    s.status = StepStatus::Running;
                    s.phase = Phase::Approved(proposal_request(&proposal));
                    // An agent's call: it goes on as the agent's next move.
                    if let Some(turn) = s.agent.as_mut().filter(|turn| turn.gated()) {
                        turn.cleared(Some(&proposal), changed, granted.hunks.as_ref());
                        s.phase = Phase::AgentNext;
                    }
                    let plan = match &proposal {
                        Proposal::Plan { steps, .. } => Some(steps.clone()),
                        _ => None,
                    };
                    s.approved_proposal = Some(proposal);
                    s.approved_hunks = granted.hunks.clone();
                    self.dirty.insert(i);
                    if let Some(steps) = plan {
                        self.join_plan(i, &steps);
                    }
                } else {
                    s.approved_hashes.insert(granted.approved_hash.clone());
                    if let Some(turn) = s.agent.as_mut().filter(|turn| turn.gated()) {
                        turn.cleared(None, false, None);
                    }
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
                // proposes against what it finds (an agent's edit likewise, as its next move).
                s.pending_approval = None;
                s.status = StepStatus::Running;
                s.phase = Phase::Begin;
                if s.agent.as_ref().is_some_and(|turn| turn.gated()) {
                    s.phase = Phase::AgentNext;
                    let step = &mut self.steps[i];
                    let judge = super::agent_turn::Judge {
                        policy: &self.policy,
                        approval_required: self.workflow.steps[i].approval_required,
                        mcp: &step.mcp_tools,
                        memory: super::agent_step::agent_memory(&self.workflow.steps[i].action),
                    };
                    if let Some(turn) = step.agent.as_mut() {
                        turn.voided(judge);
                    }
                }
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
                // An agent's call: the model is told why, and goes on.
                if let Some(turn) = s.agent.as_mut().filter(|turn| turn.gated()) {
                    turn.rejected(reason);
                    s.status = StepStatus::Running;
                    s.phase = Phase::AgentNext;
                }
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
                if let OperationRequest::LlmCall(call) = request {
                    s.llm_calls += 1;
                    self.reserve(i, &crate::llm::estimate(call));
                }
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
                    // A tool call's: the person's word is its result.
                    if !matches!(request, OperationRequest::LlmCall(_)) {
                        self.follow_agent_resolution(i, *resolution);
                    }
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
            Event::AlertRaised { step, .. } => {
                self.alerts_raised.insert(step.clone());
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
                s.succeeded_at = Some(seq);
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
            Event::StepExpanded { step, items } => {
                let i = self.index_of(seq, step)?;
                self.expand(i, items);
            }
            Event::StepRoundEnded {
                step,
                round,
                output,
            } => {
                let i = self.index_of(seq, step)?;
                let s = &mut self.steps[i];
                // The next round starts as the step first did, with the last round's output.
                s.round = round + 1;
                s.previous = Some(output.clone());
                s.status = StepStatus::Pending;
                s.phase = Phase::Ready;
                s.attempt = 0;
                s.pending_approval = None;
                // A round is asked about anew: what a person approved was the last round's.
                s.approved_hashes.clear();
                s.approved_proposal = None;
                s.approved_hunks = None;
                s.base_content = None;
                self.dirty.insert(i);
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
            Event::RunPauseRequested { by } => {
                // A second pause does not change whose pause it is.
                if !self.paused {
                    self.paused_by = Some(by.clone());
                }
                self.paused = true;
            }
            Event::RunResumeRequested { by } => {
                self.paused = false;
                self.paused_by = None;
                self.resumed_by = Some(by.clone());
                self.dirty_all_open();
            }
            Event::RunCancelRequested { .. } => {
                self.cancel_requested = true;
                self.paused = false;
                self.dirty_all_open();
            }
            Event::RunAborted { message } => {
                self.finished = Some(RunStatus::Failed);
                self.aborted = Some(message.clone());
                // Nothing is decided after it.
                self.dirty.clear();
            }
            Event::CompensationStarted { steps } => self.join_compensations(seq, steps)?,
            Event::RunSucceeded {} => self.finished = Some(RunStatus::Succeeded),
            Event::RunFailed { .. } => self.finished = Some(RunStatus::Failed),
            Event::RunCancelled {} => self.finished = Some(RunStatus::Cancelled),
            // The files changed, not the steps: a pending edit whose file a rewind changed is
            // voided by the engine, as for any change on disk.
            Event::RewindApproved(_) | Event::RewindFinished { .. } => {}
            Event::BreakpointsCleared { .. } => {
                self.pauses_cleared = true;
                let waiting: Vec<usize> = (0..self.steps.len())
                    .filter(|&i| {
                        self.steps[i]
                            .pending_approval
                            .as_ref()
                            .is_some_and(|p| matches!(p.proposal, Proposal::Breakpoint { .. }))
                    })
                    .collect();
                for i in waiting {
                    // Only the event's own step is counted by `apply`: these are counted here.
                    self.count_status(self.steps[i].status, false);
                    self.steps[i].pending_approval = None;
                    self.pass_breakpoint(i);
                    self.count_status(self.steps[i].status, true);
                }
            }
        }
        Ok(())
    }

    fn answer(
        &mut self,
        seq: EventSeq,
        op: EventSeq,
        outcome: Result<OperationResult, OperationError>,
    ) -> Result<(), StateError> {
        let i = self.op_step(seq, op)?;
        match self.steps[i].phase.clone() {
            Phase::InFlight {
                op: current,
                request,
            } if current == op => {
                self.release(i);
                if let Ok(OperationResult::LlmReplied(reply)) = &outcome {
                    self.spent.micro_usd =
                        add_micro_usd(self.spent.micro_usd, reply.cost_micro_usd);
                    self.spent.tokens = self.spent.tokens.saturating_add(reply.usage.total());
                }
                // The file an edit was proposed against (an agent's edit reads it with
                // `missing_ok`, its reads without): a person's edit of the proposal is diffed
                // against it.
                let snapshot = match (self.steps[i].purpose, &request) {
                    (Some(Purpose::Snapshot), _) => true,
                    (Some(Purpose::Tool), OperationRequest::ReadFile { missing_ok, .. }) => {
                        *missing_ok
                    }
                    _ => false,
                };
                if let (
                    true,
                    Ok(OperationResult::FileRead {
                        exists, content, ..
                    }),
                ) = (snapshot, &outcome)
                {
                    self.steps[i].base_content = exists.then(|| content.clone());
                }
                self.follow_agent(i, &request, &outcome);
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

    /// Step `i`'s call starts: it holds its estimate of the budget until it replies. A call a
    /// person let past the budget first raises the budget by exactly what it lacks now.
    fn reserve(&mut self, i: usize, estimate: &CostEstimate) {
        let approved = std::mem::take(&mut self.steps[i].over_budget_approved);
        if approved {
            let (_, raise) = self.budget_check(estimate);
            if let Some(budget) = self.budget.as_mut() {
                if let (Some(limit), Some(more)) = (budget.micro_usd.as_mut(), raise.micro_usd) {
                    *limit = add_micro_usd(*limit, more);
                }
                if let (Some(limit), Some(more)) = (budget.tokens.as_mut(), raise.tokens) {
                    *limit = limit.saturating_add(more);
                }
            }
        }
        self.reserved.micro_usd = add_micro_usd(self.reserved.micro_usd, estimate.micro_usd);
        self.reserved.tokens = self.reserved.tokens.saturating_add(estimate.tokens());
        self.steps[i].reserved = Some(*estimate);
    }

    /// Step `i`'s call replied (or failed): what it held goes back.
    fn release(&mut self, i: usize) {
        if let Some(estimate) = self.steps[i].reserved.take() {
            self.reserved.micro_usd = self.reserved.micro_usd.saturating_sub(estimate.micro_usd);
            self.reserved.tokens = self.reserved.tokens.saturating_sub(estimate.tokens());
        }
    }

    /// Adds an approved plan's steps to the run, after its plan step (checked in `check`).
    fn join_plan(&mut self, plan_step: usize, steps: &serde_json::Value) {
        let Ok((_, joined)) = super::plan_step::joined(&self.workflow, plan_step, steps) else {
            return;
        };
        for step in &joined.steps[self.steps.len()..] {
            self.steps
                .push(super::step::StepState::new_blocked(step.needs.len()));
        }
        self.workflow = std::sync::Arc::new(joined);
    }
}
