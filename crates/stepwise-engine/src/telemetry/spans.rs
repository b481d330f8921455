//! A run's log as spans, the way a trace viewer shows work: one trace per run (its id is the
//! run's), a span for the run, one per step attempt, one per operation (a model call with the
//! GenAI conventions' model and token counts, and its cost), and the wait for a person apart
//! (asked → approved, rejected or voided). Pure: the same log gives the same spans, ids
//! included, so a span exported again is the same span.
//!
//! A span is *ended* by an event of the log; `spans_ended` gives those whose end is in a range
//! of seqs, so that each is exported once, when its end has been recorded.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use stepwise_core::event::{ApprovalGranted, DecisionMode, Event};
use stepwise_core::ids::{RunId, StepId};
use stepwise_core::operation::{OperationRequest, OperationResult};
use stepwise_core::records::StoredEvent;

/// The longest text an attribute carries (an error message, say).
const MAX_TEXT: usize = 1024;

/// A value of an attribute.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Text(String),
    Int(i64),
}

/// One span, as exported.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Span {
    pub(crate) span_id: [u8; 8],
    pub(crate) parent: Option<[u8; 8]>,
    pub(crate) name: String,
    /// A call out of the process (a model, a command): a client span.
    pub(crate) client: bool,
    pub(crate) start_ms: i64,
    pub(crate) end_ms: i64,
    /// The seq of the event that ended it.
    pub(crate) end_seq: u64,
    pub(crate) attributes: Vec<(&'static str, Value)>,
    /// Why it failed, when it did.
    pub(crate) error: Option<String>,
}

/// The trace a run's spans are in: its id's 16 bytes.
pub(crate) fn trace_id(run_id: &RunId) -> [u8; 16] {
    match uuid::Uuid::parse_str(run_id.as_str()) {
        Ok(id) => *id.as_bytes(),
        Err(_) => {
            let digest = Sha256::digest(run_id.as_str().as_bytes());
            let mut id = [0u8; 16];
            id.copy_from_slice(&digest[..16]);
            id
        }
    }
}

fn span_id(run_id: &RunId, key: &str) -> [u8; 8] {
    let digest = Sha256::digest(format!("{run_id}/{key}").as_bytes());
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    if id == [0; 8] {
        id[7] = 1; // an all-zero span id is invalid
    }
    id
}

fn text(value: &str) -> Value {
    let mut end = value.len().min(MAX_TEXT);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    Value::Text(value[..end].to_string())
}

fn int(value: u64) -> Value {
    Value::Int(i64::try_from(value).unwrap_or(i64::MAX))
}

/// A span begun and not ended yet.
struct Open {
    span: Span,
}

/// Folds a run's events into spans.
struct Folder<'a> {
    run_id: &'a RunId,
    step_types: &'a BTreeMap<StepId, String>,
    run: Option<Open>,
    /// What ties this run's spans to other work: the signal that started it, the run whose
    /// step started it (a child run), else the run itself.
    correlation: String,
    steps: BTreeMap<(StepId, u32), Open>,
    /// Each repeating step's round (its attempts count from 1 again in each).
    rounds: BTreeMap<StepId, u32>,
    approvals: BTreeMap<(StepId, u32, String), Open>,
    operations: BTreeMap<u64, Open>,
    ended: Vec<Span>,
}

/// The spans of a run's log (`events`, in seq order) ended by an event with seq in
/// `(after, up_to]`. `step_types` names each step's type.
pub(crate) fn spans_ended(
    run_id: &RunId,
    events: &[(StoredEvent, Event)],
    step_types: &BTreeMap<StepId, String>,
    after: u64,
    up_to: u64,
) -> Vec<Span> {
    let mut folder = Folder {
        run_id,
        step_types,
        run: None,
        correlation: run_id.to_string(),
        steps: BTreeMap::new(),
        rounds: BTreeMap::new(),
        approvals: BTreeMap::new(),
        operations: BTreeMap::new(),
        ended: Vec::new(),
    };
    for (stored, event) in events {
        if stored.seq.get() > up_to {
            break;
        }
        folder.apply(stored, event);
    }
    folder
        .ended
        .into_iter()
        .filter(|span| span.end_seq > after && span.end_seq <= up_to)
        .collect()
}

impl Folder<'_> {
    fn run_span(&self) -> Option<[u8; 8]> {
        self.run.as_ref().map(|open| open.span.span_id)
    }

    fn begin(&self, key: &str, name: String, parent: Option<[u8; 8]>, at: i64) -> Open {
        Open {
            span: Span {
                span_id: span_id(self.run_id, key),
                parent,
                name,
                client: false,
                start_ms: at,
                end_ms: at,
                end_seq: 0,
                attributes: vec![
                    ("stepwise.run_id", text(self.run_id.as_str())),
                    ("stepwise.correlation_id", text(&self.correlation)),
                ],
                error: None,
            },
        }
    }

    fn end(&mut self, mut open: Open, stored: &StoredEvent, error: Option<String>) {
        open.span.end_ms = stored.recorded_at_ms.max(open.span.start_ms);
        open.span.end_seq = stored.seq.get();
        open.span.error = error.map(|e| match text(&e) {
            Value::Text(t) => t,
            Value::Int(_) => e,
        });
        self.ended.push(open.span);
    }

    fn apply(&mut self, stored: &StoredEvent, event: &Event) {
        let at = stored.recorded_at_ms;
        let seq = stored.seq.get();
        match event {
            Event::RunStarted(started) => {
                if let Some(cause) = &started.cause {
                    self.correlation = format!("signal {}", cause.signal_id);
                } else if let Some(parent) = &started.parent {
                    self.correlation = parent.run_id.to_string();
                }
                let mut open =
                    self.begin("run", format!("run {}", started.workflow_name), None, at);
                let attributes = &mut open.span.attributes;
                attributes.push(("stepwise.workflow", text(&started.workflow_name)));
                attributes.push(("stepwise.trigger", text(&started.trigger)));
                self.run = Some(open);
            }
            Event::StepStarted { step, attempt } => {
                let round = self.rounds.get(step).copied().unwrap_or(0);
                let key = format!("step/{step}/{round}/{attempt}");
                let mut open = self.begin(&key, format!("step {step}"), self.run_span(), at);
                open.span
                    .attributes
                    .push(("stepwise.step", text(step.as_str())));
                if let Some(kind) = self.step_types.get(step) {
                    open.span
                        .attributes
                        .push(("stepwise.step.type", text(kind)));
                }
                open.span
                    .attributes
                    .push(("stepwise.attempt", int(u64::from(*attempt))));
                self.steps.insert((step.clone(), *attempt), open);
            }
            Event::ApprovalRequested {
                step,
                attempt,
                proposal,
                proposal_hash,
                reason,
            } => {
                let key = format!("approval/{step}/{attempt}/{proposal_hash}/{seq}");
                let parent = self
                    .steps
                    .get(&(step.clone(), *attempt))
                    .map(|open| open.span.span_id)
                    .or(self.run_span());
                let mut open = self.begin(&key, format!("await approval {step}"), parent, at);
                let attributes = &mut open.span.attributes;
                attributes.push(("stepwise.step", text(step.as_str())));
                attributes.push(("stepwise.approval.kind", text(proposal.kind_name())));
                attributes.push(("stepwise.approval.reason", text(reason)));
                attributes.push(("stepwise.approval.proposal_hash", text(proposal_hash)));
                self.approvals
                    .insert((step.clone(), *attempt, proposal_hash.clone()), open);
            }
            Event::ApprovalGranted(granted) => self.decided(stored, granted),
            Event::ApprovalRejected {
                step,
                attempt,
                proposal_hash,
                by,
                reason,
                ..
            } => self.settled(
                stored,
                (step, *attempt, proposal_hash),
                vec![
                    ("stepwise.decision", text("rejected")),
                    ("stepwise.decided_by", text(by)),
                    ("stepwise.decision.reason", text(reason)),
                ],
            ),
            Event::ProposalVoided {
                step,
                attempt,
                proposal_hash,
                ..
            } => self.settled(
                stored,
                (step, *attempt, proposal_hash),
                vec![("stepwise.decision", text("voided"))],
            ),
            Event::OperationStarted {
                step,
                attempt,
                request,
            } => {
                let parent = self
                    .steps
                    .get(&(step.clone(), *attempt))
                    .map(|open| open.span.span_id)
                    .or(self.run_span());
                let mut open = self.begin(
                    &format!("op/{seq}"),
                    request.kind_name().to_string(),
                    parent,
                    at,
                );
                open.span
                    .attributes
                    .push(("stepwise.step", text(step.as_str())));
                open.span
                    .attributes
                    .push(("stepwise.operation", text(request.kind_name())));
                open.span
                    .attributes
                    .push(("stepwise.operation.seq", int(seq)));
                match request {
                    OperationRequest::LlmCall(call) => {
                        open.span.name = format!("chat {}", call.spec.model);
                        open.span.client = true;
                        let attributes = &mut open.span.attributes;
                        attributes.push(("gen_ai.operation.name", text("chat")));
                        attributes.push(("gen_ai.provider.name", text(&call.spec.provider)));
                        attributes.push(("gen_ai.request.model", text(&call.spec.model)));
                        attributes
                            .push(("gen_ai.request.max_tokens", int(u64::from(call.max_tokens))));
                        attributes.push(("stepwise.model_alias", text(&call.model)));
                    }
                    OperationRequest::RunCommand(_) | OperationRequest::McpCall { .. } => {
                        open.span.client = true;
                    }
                    _ => {}
                }
                self.operations.insert(seq, open);
            }
            Event::OperationSucceeded { op, result } => {
                if let Some(mut open) = self.operations.remove(&op.get()) {
                    if let OperationResult::LlmReplied(reply) = result {
                        let attributes = &mut open.span.attributes;
                        attributes
                            .push(("gen_ai.usage.input_tokens", int(reply.usage.input_tokens)));
                        attributes
                            .push(("gen_ai.usage.output_tokens", int(reply.usage.output_tokens)));
                        attributes
                            .push(("gen_ai.response.finish_reasons", text(&reply.finish_reason)));
                        attributes.push(("stepwise.cost_micro_usd", int(reply.cost_micro_usd)));
                    }
                    if let OperationResult::CommandFinished(outcome) = result
                        && let Some(code) = outcome.exit_code
                    {
                        open.span
                            .attributes
                            .push(("process.exit.code", Value::Int(i64::from(code))));
                    }
                    self.end(open, stored, None);
                }
            }
            Event::OperationFailed { op, error } => {
                if let Some(open) = self.operations.remove(&op.get()) {
                    self.end(open, stored, Some(error.message.clone()));
                }
            }
            Event::OperationOutcomeUnknown { op } => {
                if let Some(open) = self.operations.remove(&op.get()) {
                    self.end(
                        open,
                        stored,
                        Some("its outcome is unknown: the process performing it stopped".into()),
                    );
                }
            }
            Event::StepRetryScheduled {
                step,
                attempt,
                error,
                ..
            } => {
                let failed = attempt.saturating_sub(1);
                self.step_ended(stored, step, Some(failed), "retrying", Some(error.clone()));
            }
            Event::StepSkipped { step, .. } => {
                self.step_ended(stored, step, None, "skipped", None);
            }
            Event::StepRoundEnded { step, .. } => {
                self.step_ended(stored, step, None, "round ended", None);
                *self.rounds.entry(step.clone()).or_insert(0) += 1;
            }
            Event::OperationResolved { op, .. } => {
                if let Some(open) = self.operations.remove(&op.get()) {
                    self.end(
                        open,
                        stored,
                        Some("its outcome was unknown after a crash; a person resolved it".into()),
                    );
                }
            }
            Event::StepSucceeded { step, attempt, .. } => {
                self.step_ended(stored, step, Some(*attempt), "succeeded", None);
            }
            Event::StepFailed {
                step,
                attempt,
                error,
                ..
            } => self.step_ended(stored, step, Some(*attempt), "failed", Some(error.clone())),
            Event::StepRejected { step, reason, .. } => {
                self.step_ended(
                    stored,
                    step,
                    None,
                    "rejected",
                    Some(format!("rejected: {reason}")),
                );
            }
            Event::StepCancelled { step, .. } => {
                self.step_ended(stored, step, None, "cancelled", None);
            }
            Event::RunSucceeded {} => self.run_ended(stored, "succeeded", None),
            Event::RunFailed { .. } => {
                self.run_ended(stored, "failed", Some("the run failed".into()))
            }
            Event::RunCancelled {} => self.run_ended(stored, "cancelled", None),
            Event::RunAborted { message } => {
                self.run_ended(stored, "aborted", Some(message.clone()));
            }
            _ => {}
        }
    }

    fn decided(&mut self, stored: &StoredEvent, granted: &ApprovalGranted) {
        let mode = match &granted.mode {
            DecisionMode::Manual => "manual".to_string(),
            DecisionMode::Rule { rule } => format!("rule {rule}"),
        };
        self.settled(
            stored,
            (&granted.step, granted.attempt, &granted.proposal_hash),
            vec![
                ("stepwise.decision", text("approved")),
                ("stepwise.decided_by", text(&granted.by)),
                ("stepwise.decision.mode", text(&mode)),
                (
                    "stepwise.edited",
                    Value::Int(i64::from(granted.edited.is_some())),
                ),
            ],
        );
    }

    /// Ends the wait for a person on a question, saying how it was settled.
    fn settled(
        &mut self,
        stored: &StoredEvent,
        (step, attempt, proposal_hash): (&StepId, u32, &String),
        how: Vec<(&'static str, Value)>,
    ) {
        let key = (step.clone(), attempt, proposal_hash.clone());
        if let Some(mut open) = self.approvals.remove(&key) {
            open.span.attributes.extend(how);
            self.end(open, stored, None);
        }
    }

    /// Ends a step's span (the attempt named, or every open one of the step), and what of it
    /// was still open.
    fn step_ended(
        &mut self,
        stored: &StoredEvent,
        step: &StepId,
        attempt: Option<u32>,
        status: &str,
        error: Option<String>,
    ) {
        let keys: Vec<(StepId, u32)> = self
            .steps
            .keys()
            .filter(|(s, a)| s == step && attempt.is_none_or(|wanted| *a == wanted))
            .cloned()
            .collect();
        for key in keys {
            self.close_children_of(stored, &key.0, Some(key.1));
            if let Some(mut open) = self.steps.remove(&key) {
                open.span.attributes.push(("stepwise.status", text(status)));
                self.end(open, stored, error.clone());
            }
        }
    }

    /// Ends what a step left open (its question, an operation cut off) when the step ends.
    fn close_children_of(&mut self, stored: &StoredEvent, step: &StepId, attempt: Option<u32>) {
        let round = self.rounds.get(step).copied().unwrap_or(0);
        let parent = attempt.map(|a| span_id(self.run_id, &format!("step/{step}/{round}/{a}")));
        let approvals: Vec<_> = self
            .approvals
            .keys()
            .filter(|(s, a, _)| s == step && attempt.is_none_or(|wanted| *a == wanted))
            .cloned()
            .collect();
        for key in approvals {
            if let Some(mut open) = self.approvals.remove(&key) {
                open.span
                    .attributes
                    .push(("stepwise.decision", text("cancelled")));
                self.end(open, stored, None);
            }
        }
        let operations: Vec<u64> = self
            .operations
            .iter()
            .filter(|(_, open)| parent.is_some() && open.span.parent == parent)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in operations {
            if let Some(open) = self.operations.remove(&seq) {
                self.end(open, stored, Some("cut off when its step ended".into()));
            }
        }
    }

    fn run_ended(&mut self, stored: &StoredEvent, status: &str, error: Option<String>) {
        let steps: Vec<(StepId, u32)> = self.steps.keys().cloned().collect();
        for (step, attempt) in steps {
            self.step_ended(stored, &step, Some(attempt), "cancelled", None);
        }
        for (_, open) in std::mem::take(&mut self.approvals) {
            self.end(open, stored, None);
        }
        for (_, open) in std::mem::take(&mut self.operations) {
            self.end(open, stored, Some("cut off when the run ended".into()));
        }
        if let Some(mut open) = self.run.take() {
            open.span.attributes.push(("stepwise.status", text(status)));
            self.end(open, stored, error);
        }
    }
}
