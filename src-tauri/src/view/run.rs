//! A run read from the log, shaped for the Run view: each step with its segments (executing,
//! waiting for a person), operations and cost, every decision, and what waits.

use std::collections::{BTreeMap, HashMap};

use stepwise_core::event::Event;
use stepwise_core::ids::{EventSeq, StepId};
use stepwise_core::run::{cost_report, step_timings};
use stepwise_engine::{LoadedRun, RunSummary};

use super::{
    ApprovalItem, DecisionView, EventView, OperationView, RunDetail, RunListItem, Segment, StepView,
};

/// A run as the list shows it.
pub fn run_list_item(summary: &RunSummary) -> RunListItem {
    let row = &summary.row;
    RunListItem {
        run_id: row.run_id.clone(),
        workflow: row.workflow_name.clone(),
        workflow_path: row.workflow_path.clone(),
        workspace: row.workspace.clone(),
        status: summary.shown_status().to_string(),
        trigger: row.trigger.clone(),
        started_at_ms: row.created_at_ms,
        updated_at_ms: row.updated_at_ms,
        cost_micro_usd: row.cost_micro_usd,
        held_by: summary.held_by.clone(),
    }
}

/// One recorded event as the raw log shows it.
pub fn event_view(stored: &stepwise_engine::StoredEvent, event: &Event) -> EventView {
    EventView {
        seq: stored.seq.get(),
        at_ms: stored.recorded_at_ms,
        kind: event.type_name().to_string(),
        step: event.step().cloned(),
        data: stored.payload.clone(),
    }
}

/// Per step: its segments and operations, built from the log in one pass.
#[derive(Default)]
struct StepLife {
    segments: Vec<Segment>,
    operations: Vec<OperationView>,
}

impl StepLife {
    fn open(&mut self, kind: &str, at: i64) {
        if let Some(last) = self.segments.last()
            && last.end_ms.is_none()
        {
            if last.kind == kind {
                return;
            }
            self.close(at);
        }
        self.segments.push(Segment {
            kind: kind.into(),
            start_ms: at,
            end_ms: None,
        });
    }

    fn close(&mut self, at: i64) {
        if let Some(last) = self.segments.last_mut()
            && last.end_ms.is_none()
        {
            last.end_ms = Some(at);
        }
    }
}

/// The whole run, for the Run view. `now_ms` closes what is still going in the timings.
pub fn run_detail(summary: &RunSummary, loaded: &LoadedRun, now_ms: i64) -> RunDetail {
    let mut lives: HashMap<StepId, StepLife> = HashMap::new();
    let mut op_step: HashMap<EventSeq, StepId> = HashMap::new();
    let mut decisions = Vec::new();
    let mut requested_at: HashMap<(StepId, String), i64> = HashMap::new();
    for (stored, event) in &loaded.events {
        let at = stored.recorded_at_ms;
        let seq = stored.seq;
        match event {
            Event::StepStarted { step, .. } => {
                lives.entry(step.clone()).or_default().open("executing", at)
            }
            Event::ApprovalRequested {
                step,
                proposal_hash,
                ..
            } => {
                lives.entry(step.clone()).or_default().open("waiting", at);
                requested_at.insert((step.clone(), proposal_hash.clone()), at);
            }
            Event::ApprovalGranted(granted) => {
                lives
                    .entry(granted.step.clone())
                    .or_default()
                    .open("executing", at);
                decisions.push(DecisionView {
                    seq: seq.get(),
                    at_ms: at,
                    step: granted.step.clone(),
                    approved: true,
                    by: granted.by.clone(),
                    mode: Some(granted.mode.clone()),
                    proposal_hash: Some(granted.proposal_hash.clone()),
                    approved_hash: Some(granted.approved_hash.clone()),
                    edited: granted.edited.is_some(),
                    comment: granted.comment.clone(),
                    reason: None,
                });
            }
            Event::ApprovalRejected {
                step,
                proposal_hash,
                by,
                reason,
                ..
            } => {
                lives.entry(step.clone()).or_default().close(at);
                decisions.push(DecisionView {
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
                });
            }
            Event::OperationStarted { step, request, .. } => {
                let life = lives.entry(step.clone()).or_default();
                life.open("executing", at);
                life.operations.push(OperationView {
                    seq: seq.get(),
                    request: serde_json::to_value(request).unwrap_or_default(),
                    result: None,
                    error: None,
                    started_at_ms: at,
                    ended_at_ms: None,
                });
                op_step.insert(seq, step.clone());
            }
            Event::OperationSucceeded { op, result } => {
                if let Some(op_view) = operation(&mut lives, &op_step, *op) {
                    op_view.result = serde_json::to_value(result).ok();
                    op_view.ended_at_ms = Some(at);
                }
            }
            Event::OperationFailed { op, error } => {
                if let Some(op_view) = operation(&mut lives, &op_step, *op) {
                    op_view.error = serde_json::to_value(error).ok();
                    op_view.ended_at_ms = Some(at);
                }
            }
            Event::StepSucceeded { step, .. }
            | Event::StepFailed { step, .. }
            | Event::StepRejected { step, .. }
            | Event::StepCancelled { step }
            | Event::StepSkipped { step, .. } => lives.entry(step.clone()).or_default().close(at),
            Event::StepRetryScheduled { step, .. } => {
                lives.entry(step.clone()).or_default().close(at)
            }
            _ => {}
        }
    }

    let numbered = loaded
        .events
        .iter()
        .map(|(s, e)| (s.seq, s.recorded_at_ms, e));
    let finished =
        stepwise_core::run::RunStatus::parse(&loaded.row.status).is_some_and(|s| s.is_finished());
    let timings = step_timings(numbered.clone(), (!finished).then_some(now_ms));
    let cost = cost_report(numbered);
    let steps = loaded
        .state
        .steps()
        .map(|(step, state)| {
            let life = lives.remove(&step.id).unwrap_or_default();
            StepView {
                id: step.id.clone(),
                kind: step.action.type_name().to_string(),
                status: state.status,
                attempt: state.attempt,
                needs: step
                    .needs
                    .iter()
                    .filter_map(|&i| loaded.state.workflow().steps.get(i).map(|s| s.id.clone()))
                    .collect(),
                output: state.output.clone(),
                error: state.error.clone(),
                reason: state.reason.clone(),
                timing: timings.get(&step.id).copied().unwrap_or_default(),
                segments: life.segments,
                operations: life.operations,
                cost: cost.by_step.get(&step.id).cloned().unwrap_or_default(),
            }
        })
        .collect::<Vec<_>>();
    let pending = loaded
        .state
        .pending_approvals()
        .into_iter()
        .map(|(step, approval)| ApprovalItem {
            run_id: loaded.row.run_id.clone(),
            workflow: loaded.row.workflow_name.clone(),
            workspace: loaded.row.workspace.clone(),
            step: step.clone(),
            attempt: approval.attempt,
            proposal: approval.proposal.clone(),
            proposal_hash: approval.proposal_hash.clone(),
            reason: approval.reason.clone(),
            requested_seq: approval.requested_seq.get(),
            requested_at_ms: requested_at
                .get(&(step.clone(), approval.proposal_hash.clone()))
                .copied()
                .unwrap_or(loaded.row.updated_at_ms),
        })
        .collect::<Vec<_>>();
    let started = loaded.state.started();
    RunDetail {
        run: run_list_item(summary),
        inputs: started.inputs.clone(),
        started_by: started.started_by.clone(),
        note: note(&steps),
        steps,
        decisions,
        pending,
        budget: loaded.state.budget(),
        cost,
        last_seq: loaded.state.last_seq().get(),
    }
}

fn operation<'a>(
    lives: &'a mut HashMap<StepId, StepLife>,
    op_step: &HashMap<EventSeq, StepId>,
    op: EventSeq,
) -> Option<&'a mut OperationView> {
    let step = op_step.get(&op)?;
    lives
        .get_mut(step)?
        .operations
        .iter_mut()
        .find(|o| o.seq == op.get())
}

/// Why the run failed, in words: its failed steps and their errors.
fn note(steps: &[StepView]) -> Option<String> {
    let failed: BTreeMap<&str, &str> = steps
        .iter()
        .filter_map(|s| {
            let why = s.error.as_deref().or(s.reason.as_deref())?;
            matches!(
                s.status,
                stepwise_core::run::StepStatus::Failed | stepwise_core::run::StepStatus::Rejected
            )
            .then_some((s.id.as_str(), why))
        })
        .collect();
    (!failed.is_empty()).then(|| {
        failed
            .iter()
            .map(|(step, why)| format!("step `{step}`: {why}"))
            .collect::<Vec<_>>()
            .join("; ")
    })
}
