//! A run's state, folded from its events. `apply` is the only way it changes.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::{Value, json};
use thiserror::Error;

use crate::event::{Event, Proposal, RunStarted};
use crate::ids::{EventSeq, StepId};
use crate::llm::Budget;
use crate::operation::OperationRequest;
use crate::policy::{Policy, PolicyError};
use crate::template::Scope;
use crate::workflow::Workflow;

pub use super::status::{RunStatus, StepStatus};
pub use super::step::{PendingApproval, StepState};
pub(crate) use super::step::{Phase, Purpose};

/// A state change that the log does not allow: the log is corrupt or from another workflow.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StateError {
    #[error("event {seq}: expected seq {expected}")]
    OutOfOrder { seq: EventSeq, expected: EventSeq },
    #[error("event {seq}: the first event of a run must be RunStarted")]
    NotStarted { seq: EventSeq },
    #[error("event {seq}: unknown step `{step}` (the workflow does not have it)")]
    UnknownStep { seq: EventSeq, step: StepId },
    #[error("event {seq}: {message}")]
    Unexpected { seq: EventSeq, message: String },
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
    pub(crate) last_seq: EventSeq,
    pub(crate) in_flight: usize,
    /// Operations started, by the seq of their `OperationStarted`: the step of each.
    pub(crate) ops: HashMap<EventSeq, usize>,
    pub(crate) dirty: BTreeSet<usize>,
    /// Steps ready to start an operation but held back by `max_parallel` or a pause.
    pub(crate) held: BTreeSet<usize>,
    pub(crate) paused: bool,
    /// Who asked for the pause in force (the first who did), as recorded.
    pub(crate) paused_by: Option<String>,
    /// Who last resumed the run, as recorded.
    pub(crate) resumed_by: Option<String>,
    /// `stepwise continue --all`: no pause before a step any more.
    pub(crate) pauses_cleared: bool,
    pub(crate) cancel_requested: bool,
    /// The run's compensations joined it (`CompensationStarted`).
    pub(crate) compensating: bool,
    /// A cancel had been asked when they joined: the run ends cancelled.
    pub(crate) cancelled_when_compensating: bool,
    pub(crate) finished: Option<RunStatus>,
    /// Why the engine could not go on with the run (`RunAborted`), if it could not.
    pub(crate) aborted: Option<String>,
    /// The alerts raised so far: the run's (`None`) and each step's, once each.
    pub(crate) alerts_raised: BTreeSet<Option<StepId>>,
    pub(crate) terminal: usize,
    /// Steps waiting for a retry timer, and for a person (approval or unknown outcome): kept
    /// as counts so that `status` does not walk every step.
    pub(super) waiting_retry: usize,
    pub(super) waiting_person: usize,
    pub(crate) base_scope: Scope,
    /// What the run may spend on models now (raised by approvals of calls that would cross
    /// it).
    pub(crate) budget: Option<Budget>,
    /// What model calls have cost so far.
    pub(crate) spent: Spent,
    /// What the model calls in flight may still cost: each holds its estimate from the moment
    /// it is started until it replies, so that calls made side by side cannot together cross
    /// a budget each fits alone. Folded from the log like everything else, so a resumed or
    /// replayed run reserves exactly what it did.
    pub(crate) reserved: Spent,
}

/// What a run's model calls have cost so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Spent {
    pub micro_usd: u64,
    pub tokens: u64,
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
            .map(|s| StepState::new_blocked(s.needs.len()))
            .collect();
        let dirty = workflow
            .steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.needs.is_empty())
            .map(|(i, _)| i)
            .collect();
        let base_scope = Scope::new(&started.inputs);
        let budget = started.budget;
        Ok(RunState {
            budget,
            spent: Spent::default(),
            reserved: Spent::default(),
            workflow,
            started,
            policy,
            steps,
            last_seq: EventSeq::FIRST,
            in_flight: 0,
            ops: HashMap::new(),
            dirty,
            held: BTreeSet::new(),
            paused: false,
            paused_by: None,
            resumed_by: None,
            pauses_cleared: false,
            cancel_requested: false,
            compensating: false,
            cancelled_when_compensating: false,
            finished: None,
            aborted: None,
            alerts_raised: BTreeSet::new(),
            terminal: 0,
            waiting_retry: 0,
            waiting_person: 0,
            base_scope,
        })
    }

    /// Folds a whole log (seq 1 = `RunStarted`) without re-deciding anything.
    pub fn load(
        workflow: Arc<Workflow>,
        events: &[(EventSeq, Event)],
    ) -> Result<RunState, StateError> {
        let mut iter = events.iter();
        let started = match iter.next() {
            Some((EventSeq::FIRST, Event::RunStarted(started))) => started.clone(),
            other => {
                let seq = other.map_or(EventSeq::FIRST, |(seq, _)| *seq);
                return Err(StateError::NotStarted { seq });
            }
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

    /// Who asked for the pause in force (`None` when the run is not paused).
    pub fn paused_by(&self) -> Option<&str> {
        self.paused.then(|| self.paused_by.as_deref().unwrap_or(""))
    }

    /// Who last resumed the run, if anyone did.
    pub fn resumed_by(&self) -> Option<&str> {
        self.resumed_by.as_deref()
    }

    /// Whether someone asked to cancel the run.
    pub fn cancel_requested(&self) -> bool {
        self.cancel_requested
    }

    /// What the run may spend on models now, if it is limited.
    pub fn budget(&self) -> Option<Budget> {
        self.budget
    }

    /// What model calls have cost so far.
    pub fn spent(&self) -> Spent {
        self.spent
    }

    /// What the model calls in flight hold of the budget.
    pub fn reserved(&self) -> Spent {
        self.reserved
    }

    pub fn last_seq(&self) -> EventSeq {
        self.last_seq
    }

    pub fn steps(&self) -> impl Iterator<Item = (&crate::workflow::Step, &StepState)> {
        self.workflow.steps.iter().zip(&self.steps)
    }

    /// Whether the alert of the run (`None`) or of a step has been raised already.
    pub fn alert_raised(&self, step: Option<&StepId>) -> bool {
        self.alerts_raised.contains(&step.cloned())
    }

    /// The steps waiting at a pause before they start (a breakpoint, or stepping through),
    /// with the hash of that pause, in workflow order; only `only` when named.
    pub fn waiting_to_start(&self, only: Option<&str>) -> Vec<(StepId, String)> {
        self.steps()
            .filter(|(def, _)| only.is_none_or(|s| def.id.as_str() == s))
            .filter(|(_, s)| s.status == super::StepStatus::AwaitingApproval)
            .filter_map(|(def, s)| {
                let pending = s.pending_approval.as_ref()?;
                matches!(pending.proposal, crate::event::Proposal::Breakpoint { .. })
                    .then(|| (def.id.clone(), pending.proposal_hash.clone()))
            })
            .collect()
    }

    pub fn step_state(&self, id: &StepId) -> Option<&StepState> {
        self.workflow.step_index(id).map(|i| &self.steps[i])
    }

    /// Why the engine could not go on with the run, if it ended so (`RunAborted`).
    pub fn aborted(&self) -> Option<&str> {
        self.aborted.as_deref()
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
    pub fn unanswered_operations(&self) -> Vec<(EventSeq, &StepId, &OperationRequest)> {
        let mut out: Vec<_> = self
            .steps
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match &s.phase {
                Phase::InFlight { op, request } => Some((*op, &self.workflow.steps[i].id, request)),
                _ => None,
            })
            .collect();
        out.sort_by_key(|(op, _, _)| *op);
        out
    }

    /// The operation of a step whose outcome is unknown (after a crash), waiting for a person.
    pub fn unknown_operation(&self, step: &StepId) -> Option<(EventSeq, &OperationRequest)> {
        let i = self.workflow.step_index(step)?;
        match &self.steps[i].phase {
            Phase::Unknown { op, request } => Some((*op, request)),
            _ => None,
        }
    }

    /// Steps waiting for a retry timer: (step id, next attempt).
    pub fn pending_retries(&self) -> Vec<(&StepId, u32)> {
        self.steps()
            .filter(|(_, s)| matches!(s.phase, Phase::RetryWait))
            .map(|(def, s)| (&def.id, s.attempt + 1))
            .collect()
    }

    /// Who may answer the run's questions: what the policy files said when it started, and
    /// its workflow.
    pub fn approvers(&self) -> crate::approvers::Approvers {
        match &self.started.approvers {
            Some(recorded) => recorded.and(&self.workflow.approvers),
            None => self.workflow.approvers.clone(),
        }
    }

    /// Who may answer a question the run puts.
    pub fn who_may_answer(&self, proposal: &Proposal) -> crate::approvers::WhoMayAnswer {
        self.approvers().who_may_answer(
            crate::approvers::QuestionKind::of(proposal),
            &self.started.started_by,
        )
    }

    /// Whether `person` may answer what step `step` waits on: approve it (`approving`) or
    /// reject it. The refusal says why; a step that waits on nothing is for the caller to
    /// refuse.
    pub fn may_answer(&self, step: &StepId, person: &str, approving: bool) -> Result<(), String> {
        let Some(pending) = self
            .step_state(step)
            .and_then(|s| s.pending_approval.as_ref())
        else {
            return Ok(());
        };
        self.approvers().check(
            crate::approvers::QuestionKind::of(&pending.proposal),
            person,
            &self.started.started_by,
            approving,
        )
    }

    /// Questions waiting for a person, in workflow order.
    pub fn pending_approvals(&self) -> Vec<(&StepId, &PendingApproval)> {
        self.steps()
            .filter(|(_, s)| s.status == StepStatus::AwaitingApproval)
            .filter_map(|(def, s)| s.pending_approval.as_ref().map(|p| (&def.id, p)))
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

    pub(super) fn index_of(&self, seq: EventSeq, step: &StepId) -> Result<usize, StateError> {
        self.workflow
            .step_index(step)
            .ok_or_else(|| StateError::UnknownStep {
                seq,
                step: step.clone(),
            })
    }

    pub(super) fn op_step(&self, seq: EventSeq, op: EventSeq) -> Result<usize, StateError> {
        self.ops
            .get(&op)
            .copied()
            .ok_or_else(|| StateError::Unexpected {
                seq,
                message: format!("answers operation {op}, which was never started"),
            })
    }

    pub(super) fn dirty_all_open(&mut self) {
        for (i, s) in self.steps.iter().enumerate() {
            if !s.status.is_terminal() {
                self.dirty.insert(i);
            }
        }
    }

    pub(super) fn free_slot(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let held = std::mem::take(&mut self.held);
        self.dirty.extend(held);
    }

    pub(super) fn finish_step(&mut self, index: usize, status: StepStatus) {
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
}
