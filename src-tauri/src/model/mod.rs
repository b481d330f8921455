//! A run as the Run view shows it, folded from its log once and then kept current by applying
//! each new event (from the run's feed, or read after the last one folded): the core's state,
//! the core's step timings and segments, its cost, its decisions, and where each step's
//! operations are in the log. What the view asks for is built from it; nothing reads the whole
//! log again, and a step's operations are read from the log by seq when that step is shown.

mod cache;
#[cfg(test)]
mod tests;

pub use cache::{RunModels, SharedModel, lock};

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;
use stepwise_core::event::{Event, Proposal, Resolution};
use stepwise_core::ids::{EventSeq, RunId, StepId};
use stepwise_core::operation::{OperationRequest, OperationResult};
use stepwise_core::run::{CostTally, RunState, StateError, StepStatus, Timings};
use stepwise_engine::{LoadedRun, LoggedEvent, RunRow, child_run_id};

use crate::view::{
    ApprovalItem, BarSegment, DecisionView, OperationView, RunHead, RunOverview, StepBar,
    StepDetail, StepPage, StepRow, run_list_item,
};

/// A step's operations, by the seqs of their events.
#[derive(Debug, Clone)]
struct OpSeqs {
    started: EventSeq,
    /// Its answers: a result, a failure, an unknown outcome and its resolution.
    answers: Vec<EventSeq>,
}

/// What applying events changed.
#[derive(Debug)]
pub struct Changes {
    pub steps: BTreeSet<StepId>,
    /// The workflow gained steps (an approved plan joined).
    pub reshaped: bool,
    pub newest_at_ms: i64,
    /// When the oldest event applied was recorded (`i64::MAX` with none).
    pub oldest_at_ms: i64,
}

impl Default for Changes {
    fn default() -> Changes {
        Changes {
            steps: BTreeSet::new(),
            reshaped: false,
            newest_at_ms: 0,
            oldest_at_ms: i64::MAX,
        }
    }
}

/// The fold of one run for the Run view.
pub struct RunModel {
    row: RunRow,
    state: RunState,
    timings: Timings,
    cost: CostTally,
    decisions: Vec<DecisionView>,
    op_step: HashMap<EventSeq, StepId>,
    step_ops: HashMap<StepId, Vec<OpSeqs>>,
    /// When each question was asked, by its seq.
    asked_at: HashMap<EventSeq, i64>,
    /// Failed and rejected steps with why, for the run's note.
    failed: BTreeMap<StepId, String>,
    /// Steps whose outcome is unknown.
    unknown: BTreeSet<StepId>,
    /// Steps waiting for a person's approval: the header lists their questions without going
    /// through every step of the run at each update.
    asking: BTreeSet<StepId>,
    /// The child run each `workflow` step started last.
    children: HashMap<StepId, RunId>,
}

impl RunModel {
    /// The model of a run the engine read and folded.
    pub fn new(loaded: LoadedRun) -> RunModel {
        let LoadedRun { row, events, state } = loaded;
        let mut model = RunModel {
            row,
            state,
            timings: Timings::default(),
            cost: CostTally::default(),
            decisions: Vec::new(),
            op_step: HashMap::new(),
            step_ops: HashMap::new(),
            asked_at: HashMap::new(),
            failed: BTreeMap::new(),
            unknown: BTreeSet::new(),
            asking: BTreeSet::new(),
            children: HashMap::new(),
        };
        // Every step is looked at once.
        let all: Vec<StepId> = model
            .state
            .steps()
            .map(|(step, _)| step.id.clone())
            .collect();
        let mut changes = Changes::default();
        for (stored, event) in &events {
            model.note(stored.seq, stored.recorded_at_ms, event, &mut changes);
        }
        changes.steps.extend(all);
        model.refresh(&changes);
        model
    }

    pub fn last_seq(&self) -> EventSeq {
        self.state.last_seq()
    }

    pub fn row(&self) -> &RunRow {
        &self.row
    }

    /// Folds in the next events of the log (those already folded are only noted as changed,
    /// for a follower that has not seen them). Fails if an event does not follow on: the
    /// model must then be read again.
    pub fn apply(&mut self, events: &[LoggedEvent]) -> Result<Changes, StateError> {
        let mut changes = Changes::default();
        for logged in events {
            changes.newest_at_ms = changes.newest_at_ms.max(logged.recorded_at_ms);
            changes.oldest_at_ms = changes.oldest_at_ms.min(logged.recorded_at_ms);
            if logged.seq <= self.last_seq() {
                if let Some(step) = self.step_of(&logged.event) {
                    changes.steps.insert(step);
                }
                continue;
            }
            let steps_before = self.state.workflow().steps.len();
            self.state.apply(logged.seq, &logged.event)?;
            changes.reshaped |= self.state.workflow().steps.len() != steps_before;
            self.note(
                logged.seq,
                logged.recorded_at_ms,
                &logged.event,
                &mut changes,
            );
            self.row.last_seq = logged.seq;
            self.row.updated_at_ms = logged.recorded_at_ms;
        }
        self.row.status = self.state.status();
        self.row.cost_micro_usd = self.cost.report().total.micro_usd;
        self.refresh(&changes);
        Ok(changes)
    }

    /// Takes the run's row as the store has it, when it says what was folded.
    pub fn set_row(&mut self, row: RunRow) {
        if row.last_seq == self.last_seq() {
            self.row = row;
        }
    }

    /// The step an event is about.
    fn step_of(&self, event: &Event) -> Option<StepId> {
        match event {
            Event::OperationSucceeded { op, .. }
            | Event::OperationFailed { op, .. }
            | Event::OperationOutcomeUnknown { op }
            | Event::OperationResolved { op, .. } => self.op_step.get(op).cloned(),
            other => other.step().cloned(),
        }
    }

    fn note(&mut self, seq: EventSeq, at: i64, event: &Event, changes: &mut Changes) {
        self.timings.apply(seq, at, event);
        self.cost.apply(seq, at, event);
        let step = self.step_of(event);
        match event {
            Event::OperationStarted { step, request, .. } => {
                if let OperationRequest::RunWorkflow { .. } = request {
                    self.children
                        .insert(step.clone(), child_run_id(&self.row.run_id, seq));
                }
                self.op_step.insert(seq, step.clone());
                self.step_ops.entry(step.clone()).or_default().push(OpSeqs {
                    started: seq,
                    answers: Vec::new(),
                });
            }
            Event::OperationSucceeded { op, .. }
            | Event::OperationFailed { op, .. }
            | Event::OperationOutcomeUnknown { op }
            | Event::OperationResolved { op, .. } => {
                // The child a `workflow` step ran, as its result names it (a fork's reused
                // result names the run it was forked from's child, not one derived anew).
                if let (
                    Some(step),
                    Event::OperationSucceeded {
                        result: OperationResult::WorkflowFinished { run_id, .. },
                        ..
                    },
                ) = (&step, event)
                {
                    self.children
                        .insert(step.clone(), RunId::from(run_id.as_str()));
                }
                if let Some(ops) = step.as_ref().and_then(|s| self.step_ops.get_mut(s))
                    && let Some(found) = ops.iter_mut().find(|o| o.started == *op)
                {
                    found.answers.push(seq);
                }
            }
            Event::ApprovalRequested { .. } => {
                self.asked_at.insert(seq, at);
            }
            Event::ApprovalGranted(granted) => self.decisions.push(DecisionView {
                seq: seq.get(),
                at_ms: at,
                step: granted.step.clone(),
                approved: true,
                by: granted.by.clone(),
                mode: Some(granted.mode.clone()),
                proposal_hash: Some(granted.proposal_hash.clone()),
                approved_hash: Some(granted.approved_hash.clone()),
                // An answered question is approved with its answer, not edited: the answer is
                // shown as what was said with the decision.
                edited: granted
                    .edited
                    .as_ref()
                    .is_some_and(|p| !matches!(p, Proposal::Question { .. })),
                comment: match &granted.edited {
                    Some(Proposal::Question {
                        answer: Some(answer),
                        ..
                    }) => Some(format!("answer: {answer}")),
                    _ => granted.comment.clone(),
                },
                reason: None,
            }),
            Event::ApprovalRejected {
                step,
                proposal_hash,
                by,
                reason,
                ..
            } => self.decisions.push(DecisionView {
                seq: seq.get(),
                at_ms: at,
                step: step.clone(),
                approved: false,
                by: by.clone(),
                mode: None,
                proposal_hash: Some(proposal_hash.clone()),
                approved_hash: None,
                edited: false,
                comment: None,
                reason: Some(reason.clone()),
            }),
            _ => {}
        }
        if let Some(step) = step {
            changes.steps.insert(step);
        }
    }

    /// Brings what is kept per status (failures, unknown outcomes) up to date for the steps
    /// that changed.
    fn refresh(&mut self, changes: &Changes) {
        for id in &changes.steps {
            let Some(state) = self.state.step_state(id) else {
                continue;
            };
            let why = state.error.as_deref().or(state.reason.as_deref());
            match (state.status, why) {
                (StepStatus::Failed | StepStatus::Rejected, Some(why)) => {
                    self.failed.insert(id.clone(), why.to_string());
                }
                _ => {
                    self.failed.remove(id);
                }
            }
            if state.status == StepStatus::OutcomeUnknown {
                self.unknown.insert(id.clone());
            } else {
                self.unknown.remove(id);
            }
            if state.status == StepStatus::AwaitingApproval && state.pending_approval.is_some() {
                self.asking.insert(id.clone());
            } else {
                self.asking.remove(id);
            }
        }
    }

    /// "Now" for the times of what is still going, `None` once the run has finished (its
    /// times no longer grow).
    fn now(&self, now_ms: i64) -> Option<i64> {
        (!self.state.status().is_finished()).then_some(now_ms)
    }

    /// The header, banners and counts.
    pub fn head(&self, held_by: Option<String>) -> RunHead {
        // In workflow order, as the core lists them.
        let mut asking: Vec<(usize, &StepId)> = self
            .asking
            .iter()
            .filter_map(|id| Some((self.state.workflow().step_index(id)?, id)))
            .collect();
        asking.sort_unstable();
        let pending = asking
            .into_iter()
            .filter_map(|(_, step)| {
                let approval = self.state.step_state(step)?.pending_approval.as_ref()?;
                Some((step, approval))
            })
            .map(|(step, approval)| ApprovalItem {
                run_id: self.row.run_id.clone(),
                workflow: self.row.workflow_name.clone(),
                workspace: self.row.workspace.clone(),
                step: step.clone(),
                attempt: approval.attempt,
                proposal: approval.proposal.clone(),
                proposal_hash: approval.proposal_hash.clone(),
                reason: approval.reason.clone(),
                requested_seq: approval.requested_seq.get(),
                requested_at_ms: self
                    .asked_at
                    .get(&approval.requested_seq)
                    .copied()
                    .unwrap_or(self.row.updated_at_ms),
                parent: self.state.started().parent.clone(),
                who_may_answer: self.state.who_may_answer(&approval.proposal),
            })
            .collect();
        // A run the engine could not go on with says so first, in the engine's words.
        let aborted = self
            .state
            .aborted()
            .map(|why| format!("the engine could not go on: {why}"));
        let failed = (!self.failed.is_empty()).then(|| {
            self.failed
                .iter()
                .map(|(step, why)| format!("step `{step}`: {why}"))
                .collect::<Vec<_>>()
                .join("; ")
        });
        let note = match (aborted, failed) {
            (Some(aborted), Some(failed)) => Some(format!("{aborted}; {failed}")),
            (aborted, failed) => aborted.or(failed),
        };
        RunHead {
            run: run_list_item(&self.row, held_by),
            note,
            pending,
            unknown: self.unknown.iter().cloned().collect(),
            budget: self.state.budget(),
            cost: self.cost.report().total.clone(),
            last_seq: self.last_seq().get(),
            decisions: self.decisions.len() as u64,
            steps: self.state.workflow().steps.len() as u64,
        }
    }

    /// What the Run view first shows.
    pub fn overview(&self, held_by: Option<String>) -> RunOverview {
        let started = self.state.started();
        RunOverview {
            head: self.head(held_by),
            inputs: started.inputs.clone(),
            started_by: started.started_by.clone(),
            host: started.host.clone(),
            elsewhere: false,
            bars: self
                .state
                .steps()
                .map(|(step, state)| {
                    let t0 = self.row.created_at_ms;
                    StepBar(
                        step.id.clone(),
                        state.status,
                        self.timings
                            .segments(&step.id)
                            .iter()
                            .map(|s| BarSegment::of(s, t0))
                            .collect(),
                    )
                })
                .collect(),
            compensations: self
                .state
                .steps()
                .filter_map(|(step, _)| Some((step.id.clone(), step.compensates.clone()?)))
                .collect(),
        }
    }

    /// The row of the step at `index` in the workflow.
    pub fn row_at(&self, index: usize, now_ms: i64) -> Option<StepRow> {
        let step = self.state.workflow().steps.get(index)?;
        let state = self.state.step_state(&step.id)?;
        Some(StepRow {
            index: u32::try_from(index).unwrap_or(u32::MAX),
            id: step.id.clone(),
            kind: step.action.type_name().to_string(),
            status: state.status,
            attempt: state.attempt,
            timing: self.timings.timing(&step.id, self.now(now_ms)),
            segments: self.timings.segments(&step.id).to_vec(),
            cost: self
                .cost
                .report()
                .by_step
                .get(&step.id)
                .cloned()
                .unwrap_or_default(),
            child_run: self.children.get(&step.id).cloned(),
            compensates: step.compensates.clone(),
        })
    }

    /// The row of a step by id.
    pub fn row_of(&self, step: &StepId, now_ms: i64) -> Option<StepRow> {
        let index = self.state.workflow().step_index(step)?;
        self.row_at(index, now_ms)
    }

    /// The rows matching `filter` (words in the id, type or status), from `offset`.
    pub fn rows(&self, filter: &str, offset: usize, limit: usize, now_ms: i64) -> StepPage {
        let words: Vec<String> = filter.split_whitespace().map(str::to_lowercase).collect();
        let steps = &self.state.workflow().steps;
        let matching: Vec<usize> = if words.is_empty() {
            (0..steps.len()).collect()
        } else {
            self.state
                .steps()
                .enumerate()
                .filter(|(_, (step, state))| {
                    let hay = format!(
                        "{}\n{}\n{}",
                        step.id.as_str().to_lowercase(),
                        step.action.type_name(),
                        state.status.as_str()
                    );
                    words.iter().all(|w| hay.contains(w.as_str()))
                })
                .map(|(i, _)| i)
                .collect()
        };
        StepPage {
            offset: u32::try_from(offset).unwrap_or(u32::MAX),
            total: u32::try_from(matching.len()).unwrap_or(u32::MAX),
            rows: matching
                .iter()
                .skip(offset)
                .take(limit)
                .filter_map(|&i| self.row_at(i, now_ms))
                .collect(),
        }
    }

    /// Every decision, oldest first.
    pub fn decisions(&self) -> &[DecisionView] {
        &self.decisions
    }

    /// The seqs of a step's operations and their answers: what its panel reads of the log.
    pub fn operation_seqs(&self, step: &StepId) -> Vec<EventSeq> {
        self.step_ops
            .get(step)
            .into_iter()
            .flatten()
            .flat_map(|op| std::iter::once(op.started).chain(op.answers.iter().copied()))
            .collect()
    }

    /// A step in full, its operations made from `events` (those of `operation_seqs`).
    pub fn detail(&self, step: &StepId, events: &[LoggedEvent], now_ms: i64) -> Option<StepDetail> {
        let row = self.row_of(step, now_ms)?;
        let state = self.state.step_state(step)?;
        let def = self.state.workflow().step(step)?;
        let by_seq: HashMap<EventSeq, &LoggedEvent> = events.iter().map(|e| (e.seq, e)).collect();
        let operations = self
            .step_ops
            .get(step)
            .into_iter()
            .flatten()
            .filter_map(|op| {
                let started = by_seq.get(&op.started)?;
                let Event::OperationStarted { request, .. } = &started.event else {
                    return None;
                };
                let mut view = OperationView {
                    seq: op.started.get(),
                    request: serde_json::to_value(request).unwrap_or(Value::Null),
                    result: None,
                    error: None,
                    outcome_unknown: false,
                    resolved: None,
                    started_at_ms: started.recorded_at_ms,
                    ended_at_ms: None,
                };
                for answer in op.answers.iter().filter_map(|seq| by_seq.get(seq)) {
                    match &answer.event {
                        Event::OperationSucceeded { result, .. } => {
                            view.result = serde_json::to_value(result).ok();
                            view.ended_at_ms = Some(answer.recorded_at_ms);
                        }
                        Event::OperationFailed { error, .. } => {
                            view.error = serde_json::to_value(error).ok();
                            view.ended_at_ms = Some(answer.recorded_at_ms);
                        }
                        Event::OperationOutcomeUnknown { .. } => {
                            view.outcome_unknown = true;
                            view.ended_at_ms = Some(answer.recorded_at_ms);
                        }
                        Event::OperationResolved { resolution, by, .. } => {
                            let how = match resolution {
                                Resolution::Retry => "retry",
                                Resolution::Skip => "skip",
                                Resolution::MarkDone => "mark_done",
                            };
                            view.resolved = Some(format!("{how} by {by}"));
                        }
                        _ => {}
                    }
                }
                Some(view)
            })
            .collect();
        Some(StepDetail {
            row,
            needs: def
                .needs
                .iter()
                .filter_map(|&i| self.state.workflow().steps.get(i).map(|s| s.id.clone()))
                .collect(),
            output: state.output.clone(),
            error: state.error.clone(),
            reason: state.reason.clone(),
            operations,
            decisions: self
                .decisions
                .iter()
                .filter(|d| &d.step == step)
                .cloned()
                .collect(),
            conversation: state.conversation.clone(),
            file_changes: Vec::new(),
        })
    }
}

/// Milliseconds since the epoch, for timings of what is still going.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
