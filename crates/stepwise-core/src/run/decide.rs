//! Deciding: from the state, the events that follow. Pure and deterministic: steps are taken in
//! workflow order, and every decision is applied before the next one is taken.

use std::sync::Arc;

use serde_json::{Value, json};

use super::ask_reason::ask_reason;
use super::custom_step::manifest_verdict;
use super::proposal::proposal_request;
use super::proposal::{command_request, render_path};
use super::state::{Phase, RunState, StateError, StepStatus};
use crate::event::{ApprovalGranted, DecisionMode, Event, Proposal, Resolution};
use crate::ids::StepId;
use crate::operation::OperationRequest;
use crate::policy::{Effect, GateKind, Subject, Verdict};
use crate::template::Scope;
use crate::workflow::{Action, AfterDef};

impl RunState {
    /// Takes every decision the state allows now, applies them, and returns them in order. The
    /// engine appends them right after the input that led to them.
    pub fn advance(&mut self) -> Result<Vec<Event>, StateError> {
        let mut decided = Vec::new();
        while let Some(index) = self.dirty.pop_first() {
            for event in self.decide_step(index) {
                let event = self.after_round(event);
                let seq = self.last_seq.next();
                // Decisions are built from this very state, so applying one fails only if the
                // core is wrong; then nothing of this advance may be recorded (an event the
                // state cannot apply would make the run unloadable), and the caller reloads.
                self.apply(seq, &event)?;
                decided.push(event);
            }
        }
        if self.finished.is_none()
            && self.terminal == self.steps.len()
            && let Some(event) = self.compensation_to_start()
        {
            // The compensations join the run; what they decide is decided at once.
            let seq = self.last_seq.next();
            self.apply(seq, &event)?;
            decided.push(event);
            decided.extend(self.advance()?);
            return Ok(decided);
        }
        if self.finished.is_none() && self.terminal == self.steps.len() {
            let event = if self.ends_cancelled() {
                Event::RunCancelled {}
            } else {
                // An iteration's failure is its step's to report (or, with
                // `continue_on_error`, to keep in its output).
                let failed: Vec<StepId> = self
                    .steps()
                    .filter(|(d, _)| d.iteration.is_none())
                    .filter(|(_, s)| matches!(s.status, StepStatus::Failed | StepStatus::Rejected))
                    .map(|(d, _)| d.id.clone())
                    .collect();
                if failed.is_empty() {
                    Event::RunSucceeded {}
                } else {
                    Event::RunFailed { steps: failed }
                }
            };
            let seq = self.last_seq.next();
            self.apply(seq, &event)?;
            decided.push(event);
        }
        Ok(decided)
    }

    pub(super) fn scope_for(&self, index: usize) -> Scope {
        let mut scope = self.base_scope.clone();
        for &read in &self.workflow.steps[index].reads {
            scope.add_step(self.workflow.steps[read].id.as_str(), &self.step_view(read));
        }
        self.add_round(index, &mut scope);
        self.add_item(index, &mut scope);
        scope
    }

    fn decide_step(&mut self, index: usize) -> Vec<Event> {
        let step = &self.workflow.steps[index];
        let state = &self.steps[index];
        let id = step.id.clone();
        let attempt = state.attempt;
        if state.status.is_terminal() {
            return Vec::new();
        }
        if self.cancelled(index)
            && !matches!(state.phase, Phase::InFlight { .. } | Phase::Returned { .. })
        {
            return vec![Event::StepCancelled { step: id }];
        }
        match state.phase.clone() {
            Phase::Blocked
            | Phase::AwaitingApproval
            | Phase::InFlight { .. }
            | Phase::RetryWait
            | Phase::Unknown { .. }
            | Phase::Done => Vec::new(),
            Phase::Ready => self.decide_ready(index),
            Phase::RetryNow => {
                if self.paused {
                    return Vec::new();
                }
                vec![Event::StepStarted {
                    step: id,
                    attempt: attempt + 1,
                }]
            }
            Phase::Begin => self.decide_begin(index),
            Phase::AgentNext => self.decide_agent_turn(index),
            Phase::Approved(request) => match request {
                Some(OperationRequest::LlmCall(call)) => self.start_approved_llm(index, call),
                Some(request) => self.start_operation(index, request),
                None => {
                    let output = match &self.steps[index].approved_proposal {
                        Some(Proposal::Plan { steps, .. }) => {
                            let ids: Vec<Value> = steps
                                .as_array()
                                .map(|s| s.iter().filter_map(|s| s.get("id").cloned()).collect())
                                .unwrap_or_default();
                            json!({ "planned": ids })
                        }
                        _ => json!({ "approved": true }),
                    };
                    vec![Event::StepSucceeded {
                        step: id,
                        attempt,
                        output,
                    }]
                }
            },
            Phase::Returned { request, outcome } => self.decide_returned(index, &request, outcome),
            Phase::Rejected { by, reason } => vec![Event::StepRejected {
                step: id,
                by,
                reason,
            }],
            Phase::Resolved {
                resolution,
                by,
                request,
            } => match resolution {
                Resolution::Retry => self.start_operation(index, request),
                // An agent's call: the person's word is its result, and the agent goes on.
                Resolution::Skip | Resolution::MarkDone
                    if self.steps[index].agent.is_some()
                        && !matches!(request, OperationRequest::LlmCall(_)) =>
                {
                    self.decide_agent_turn(index)
                }
                Resolution::Skip => vec![Event::StepSkipped {
                    step: id,
                    reason: format!("skipped by {by} after its outcome was unknown"),
                }],
                Resolution::MarkDone => vec![Event::StepSucceeded {
                    step: id,
                    attempt,
                    output: json!({ "marked_done_by": by }),
                }],
            },
        }
    }

    /// Why the run waits for a person before step `index` starts, if it does: step-through,
    /// or a breakpoint (the workflow's or the run's), until continued past it or `--all`.
    fn pause_before(&self, index: usize) -> Option<String> {
        if self.pauses_cleared || self.steps[index].breakpoint_passed {
            return None;
        }
        let id = &self.workflow.steps[index].id;
        let pauses = &self.started.pauses;
        if pauses.every_step {
            Some("step-through: the run waits before each step (`stepwise continue`)".into())
        } else if pauses.breakpoints.contains(id) || self.workflow.breakpoints.contains(id) {
            Some("a breakpoint: the run waits before this step (`stepwise continue`)".into())
        } else {
            None
        }
    }

    fn decide_ready(&mut self, index: usize) -> Vec<Event> {
        let step = &self.workflow.steps[index];
        let id = step.id.clone();
        if step.after == AfterDef::Succeeded
            && let Some(&need) = step
                .needs
                .iter()
                .find(|&&n| self.steps[n].status != StepStatus::Succeeded)
        {
            let need_state = &self.steps[need];
            return vec![Event::StepSkipped {
                step: id,
                reason: format!(
                    "needs `{}`, which {}",
                    self.workflow.steps[need].id,
                    need_state.status.as_str()
                ),
            }];
        }
        // `when` decides whether the step runs at all: its first round, not each.
        if let Some(when) = step.when.as_ref().filter(|_| self.steps[index].round == 1) {
            match when.eval(&self.scope_for(index)) {
                Ok(Value::Bool(true)) => {}
                Ok(Value::Bool(false)) => {
                    return vec![Event::StepSkipped {
                        step: id,
                        reason: format!("`when` is false: {}", when.source()),
                    }];
                }
                Ok(other) => {
                    return vec![fail(
                        &id,
                        1,
                        format!("`when` must be true or false, got {other}"),
                    )];
                }
                Err(e) => return vec![fail(&id, 1, format!("`when`: {e}"))],
            }
        }
        if self.paused {
            return Vec::new();
        }
        if let Some(reason) = self.pause_before(index) {
            let proposal = Proposal::Breakpoint {
                message: format!(
                    "step `{id}` ({}) is about to start",
                    step.action.type_name()
                ),
            };
            return match proposal.hash() {
                Ok(proposal_hash) => vec![Event::ApprovalRequested {
                    step: id,
                    attempt: 1,
                    proposal,
                    proposal_hash,
                    reason,
                }],
                Err(e) => vec![unrecordable(&id, 1, &e)],
            };
        }
        if let Some(events) = self.decide_for_each(index) {
            return events;
        }
        // `set` is pure: it needs no operation, so it completes as it starts.
        if let Action::Set { values } = &step.action {
            let scope = self.scope_for(index);
            let mut output = serde_json::Map::new();
            for (name, template) in values {
                match template.render(&scope) {
                    Ok(v) => {
                        output.insert(name.clone(), v);
                    }
                    Err(e) => return vec![fail(&id, 1, format!("value `{name}`: {e}"))],
                }
            }
            return vec![Event::StepSucceeded {
                step: id,
                attempt: 1,
                output: Value::Object(output),
            }];
        }
        vec![Event::StepStarted {
            step: id,
            attempt: 1,
        }]
    }

    fn decide_begin(&mut self, index: usize) -> Vec<Event> {
        let step = &self.workflow.steps[index];
        let id = step.id.clone();
        let attempt = self.steps[index].attempt;
        let scope = self.scope_for(index);
        match &step.action {
            Action::ReadFile { path } => match render_path(path, &scope) {
                Ok(path) => {
                    let proposal = Proposal::ReadFile { path };
                    self.gate(index, proposal, GateKind::ReadFile)
                }
                Err(e) => vec![fail(&id, attempt, e)],
            },
            Action::EditFile { path, .. } => match render_path(path, &scope) {
                Ok(path) => {
                    // An edit reads the file before it proposes anything (its snapshot and diff
                    // go into the log): a file policy refuses to have shown is not even read.
                    let verdict = self
                        .policy
                        .evaluate(Subject::file(GateKind::EditFile, &path));
                    if verdict.effect == Effect::Deny {
                        let rule = verdict.rule.unwrap_or_default();
                        return vec![fail(
                            &id,
                            attempt,
                            format!("edit_file refused by policy: {rule}"),
                        )];
                    }
                    self.start_operation(
                        index,
                        OperationRequest::ReadFile {
                            path,
                            missing_ok: true,
                        },
                    )
                }
                Err(e) => vec![fail(&id, attempt, e)],
            },
            Action::RunCommand { .. } => match command_request(step, &scope) {
                Ok(request) => {
                    self.gate(index, Proposal::RunCommand(request), GateKind::RunCommand)
                }
                Err(e) => vec![fail(&id, attempt, e)],
            },
            Action::Approval { message } => match message.render_string(&scope) {
                Ok(message) => {
                    let proposal = Proposal::Gate { message };
                    let proposal_hash = match proposal.hash() {
                        Ok(hash) => hash,
                        Err(e) => return vec![unrecordable(&id, attempt, &e)],
                    };
                    vec![Event::ApprovalRequested {
                        step: id,
                        attempt,
                        proposal,
                        proposal_hash,
                        reason: "manual approval step".into(),
                    }]
                }
                Err(e) => vec![fail(&id, attempt, format!("`message`: {e}"))],
            },
            Action::Set { .. } => Vec::new(),
            Action::Workflow { .. } => self.decide_subworkflow(index),
            Action::Custom(_) => self.decide_custom_step(index),
            Action::WaitSignal { name } => {
                let request = OperationRequest::WaitSignal {
                    name: name.clone(),
                    timeout_ms: step.timeout_ms,
                };
                self.start_operation(index, request)
            }
            Action::Llm(_) => {
                // The step is borrowed from the workflow while the state changes.
                let workflow = Arc::clone(&self.workflow);
                match &workflow.steps[index].action {
                    Action::Llm(llm) => self.decide_llm_begin(index, llm),
                    _ => Vec::new(),
                }
            }
        }
    }

    /// Puts a proposal through policy: refuse it, ask a person, or approve it by rule and go.
    pub(super) fn gate(&mut self, index: usize, proposal: Proposal, kind: GateKind) -> Vec<Event> {
        let step = &self.workflow.steps[index];
        let id = step.id.clone();
        let attempt = self.steps[index].attempt;
        let proposal_hash = match proposal.hash() {
            Ok(hash) => hash,
            Err(e) => return vec![unrecordable(&id, attempt, &e)],
        };
        let path = match &proposal {
            Proposal::EditFile { path, .. } | Proposal::ReadFile { path } => Some(path.as_str()),
            _ => None,
        };
        let verdict = self.policy.evaluate(subject_of(&proposal, kind));
        let (verdict, manifest_asks) = manifest_verdict(&step.action, verdict);
        let request = proposal_request(&proposal);
        let approval_required = step.approval_required;
        if verdict.effect == Effect::Deny {
            let rule = verdict.rule.unwrap_or_default();
            return vec![fail(
                &id,
                attempt,
                format!("{} refused by policy: {rule}", kind.as_str()),
            )];
        }
        // A retry of the same proposal is covered by the approval already given.
        if self.steps[index].approved_hashes.contains(&proposal_hash) {
            return request
                .map(|r| self.start_operation(index, r))
                .unwrap_or_default();
        }
        // Editing the workspace's policy file would loosen every later run: a person decides.
        let edits_policy =
            kind == GateKind::EditFile && path.is_some_and(crate::paths::is_in_policy_dir);
        let effect = if step.approval_required || edits_policy || manifest_asks.is_some() {
            Effect::Ask
        } else {
            verdict.effect
        };
        match (effect, verdict.rule) {
            (Effect::Allow, None) => request
                .map(|r| self.start_operation(index, r))
                .unwrap_or_default(),
            (Effect::Allow, Some(rule)) => {
                let Some(request) = request else {
                    return Vec::new();
                };
                if !self.slot_free(index) {
                    return Vec::new();
                }
                let mut events = vec![granted_by_rule(id, attempt, proposal_hash, rule)];
                events.extend(self.start_operation(index, request));
                events
            }
            (_, rule) => {
                let verdict = Verdict { rule, ..verdict };
                let reason = match manifest_asks {
                    Some(reason) if !approval_required => reason,
                    _ => ask_reason(approval_required, edits_policy, verdict, kind),
                };
                vec![Event::ApprovalRequested {
                    step: id,
                    attempt,
                    proposal,
                    proposal_hash,
                    reason,
                }]
            }
        }
    }

    /// The deny rule that refuses step `step`'s proposal, if one does (used to check edited
    /// proposals). An agent's command is judged as an agent's.
    pub fn refusal(&self, step: &StepId, proposal: &Proposal) -> Option<String> {
        let is_agent = self
            .workflow
            .step(step)
            .is_some_and(|def| matches!(&def.action, Action::Llm(llm) if llm.agent.is_some()));
        if let (true, Proposal::RunCommand(request)) = (is_agent, proposal) {
            let verdict = self.policy.evaluate(Subject::agent_command(request));
            return (verdict.effect == Effect::Deny).then(|| verdict.rule.unwrap_or_default());
        }
        let kind = match proposal {
            Proposal::EditFile { .. } => GateKind::EditFile,
            Proposal::ReadFile { .. } => GateKind::ReadFile,
            Proposal::RunCommand(_) => GateKind::RunCommand,
            Proposal::Gate { .. }
            | Proposal::Breakpoint { .. }
            | Proposal::Question { .. }
            | Proposal::McpCall { .. }
            | Proposal::LlmCall { .. }
            | Proposal::Plan { .. } => {
                return None;
            }
        };
        let verdict = self.policy.evaluate(subject_of(proposal, kind));
        (verdict.effect == Effect::Deny).then(|| verdict.rule.unwrap_or_default())
    }

    fn slot_free(&mut self, index: usize) -> bool {
        if self.paused
            || self.in_flight >= self.started.max_parallel.max(1)
            || !self.iteration_slot_free(index)
        {
            self.held.insert(index);
            return false;
        }
        true
    }

    pub(super) fn start_operation(
        &mut self,
        index: usize,
        request: OperationRequest,
    ) -> Vec<Event> {
        if !self.slot_free(index) {
            return Vec::new();
        }
        vec![Event::OperationStarted {
            step: self.workflow.steps[index].id.clone(),
            attempt: self.steps[index].attempt,
            request,
        }]
    }

    pub(super) fn fail_or_retry(
        &mut self,
        index: usize,
        error: String,
        retryable: bool,
        output: Option<Value>,
    ) -> Vec<Event> {
        let step = &self.workflow.steps[index];
        let attempt = self.steps[index].attempt;
        if retryable && attempt < step.retry.max_attempts && !self.cancelled(index) {
            return vec![Event::StepRetryScheduled {
                step: step.id.clone(),
                attempt: attempt + 1,
                delay_ms: step.retry.delay_ms(attempt),
                error,
            }];
        }
        vec![Event::StepFailed {
            step: step.id.clone(),
            attempt,
            error,
            output,
        }]
    }
}

/// The record that `rule` let a proposal through, as the decision on it.
pub(super) fn granted_by_rule(
    step: StepId,
    attempt: u32,
    proposal_hash: String,
    rule: String,
) -> Event {
    Event::ApprovalGranted(ApprovalGranted {
        step,
        attempt,
        approved_hash: proposal_hash.clone(),
        proposal_hash,
        edited: None,
        by: "policy".into(),
        host: None,
        mode: DecisionMode::Rule { rule },
        comment: None,
        hunks: None,
    })
}

/// What policy judges of a proposal.
fn subject_of(proposal: &Proposal, kind: GateKind) -> Subject<'_> {
    match proposal {
        Proposal::EditFile { path, .. } | Proposal::ReadFile { path } => Subject::file(kind, path),
        Proposal::RunCommand(request) => Subject::command(request),
        Proposal::Gate { .. }
        | Proposal::Breakpoint { .. }
        | Proposal::Question { .. }
        | Proposal::McpCall { .. }
        | Proposal::LlmCall { .. }
        | Proposal::Plan { .. } => Subject::bare(kind),
    }
}

/// A proposal that cannot be serialised cannot be named or recorded: the step fails.
fn unrecordable(step: &StepId, attempt: u32, error: &serde_json::Error) -> Event {
    fail(
        step,
        attempt,
        format!("the proposal cannot be recorded: {error}"),
    )
}

pub(super) fn fail(step: &StepId, attempt: u32, error: impl Into<String>) -> Event {
    Event::StepFailed {
        step: step.clone(),
        attempt: attempt.max(1),
        error: error.into(),
        output: None,
    }
}

pub(super) fn format_ms(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}
