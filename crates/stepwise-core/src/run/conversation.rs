//! An agent step's conversation as a person reads it: each model turn (what the model said,
//! its tokens and cost), each tool call it made with what let it through or stopped it and what
//! the model was told it returned. Kept by `apply` beside the agent's turn, so it is a function
//! of the log, exactly what the model was sent.

use serde::Serialize;
use serde_json::Value;

use super::agent_turn::AgentTurn;
use crate::event::{DecisionMode, Event, Proposal};
use crate::ids::EventSeq;
use crate::operation::{OperationRequest, OperationResult};

/// One model turn of an agent step.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConversationTurn {
    /// Seq of the model call's `OperationStarted`.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub op: EventSeq,
    pub attempt: u32,
    /// Whether the model has replied (else it is being asked, or the call failed).
    pub replied: bool,
    /// What the model said.
    pub text: String,
    /// Why the call failed, if it did.
    pub error: Option<String>,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub input_tokens: u64,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub output_tokens: u64,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub cost_micro_usd: u64,
    pub calls: Vec<ConversationCall>,
}

/// One tool call of a turn.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConversationCall {
    pub id: String,
    pub name: String,
    pub arguments: Value,
    /// The operations performed for it (seqs of their `OperationStarted`).
    #[cfg_attr(feature = "ts", ts(type = "Array<number>"))]
    pub ops: Vec<EventSeq>,
    /// Who let it through, stopped it, or is asked.
    pub gate: Option<CallGate>,
    /// What the model was told it returned; `None` until it has returned.
    pub result: Option<String>,
}

/// What the gate did with a call.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CallGate {
    /// A person is asked, for this reason.
    Asked { reason: String },
    /// A policy rule let it through.
    Rule { rule: String },
    /// A person approved it (`edited`: as they changed it), or answered the question.
    Approved { by: String, edited: bool },
    /// A person rejected it, with this reason.
    Rejected { by: String, reason: String },
}

/// Keeps an agent step's conversation (`turns`) as `event` (just applied) changes it: `agent`
/// is the step's turn now, `attempt` its attempt, and `at` the call it was dealing with
/// before the event.
pub(super) fn follow(
    turns: &mut Vec<ConversationTurn>,
    agent: Option<&AgentTurn>,
    attempt: u32,
    seq: EventSeq,
    event: &Event,
    at: Option<usize>,
) {
    let answered = agent
        .map(|turn| turn.answered_by_next())
        .unwrap_or_default();
    match event {
        Event::OperationStarted {
            request: OperationRequest::LlmCall(_),
            ..
        } => turns.push(ConversationTurn {
            op: seq,
            attempt,
            replied: false,
            text: String::new(),
            error: None,
            input_tokens: 0,
            output_tokens: 0,
            cost_micro_usd: 0,
            calls: Vec::new(),
        }),
        Event::OperationStarted { .. } => {
            // A batch of reads is the operation of each call it answers.
            for place in answered {
                if let Some(call) = current_call(turns, Some(place)) {
                    call.ops.push(seq);
                }
            }
        }
        Event::OperationSucceeded {
            result: OperationResult::LlmReplied(reply),
            op,
        } => {
            if let Some(turn) = turns.iter_mut().rev().find(|t| t.op == *op) {
                turn.replied = true;
                turn.text = reply.text.clone();
                turn.input_tokens = reply.usage.input_tokens;
                turn.output_tokens = reply.usage.output_tokens;
                turn.cost_micro_usd = reply.cost_micro_usd;
                turn.calls = reply
                    .tool_calls
                    .iter()
                    .map(|call| ConversationCall {
                        id: call.id.clone(),
                        name: call.name.clone(),
                        arguments: call.arguments.clone(),
                        ops: Vec::new(),
                        gate: None,
                        result: None,
                    })
                    .collect();
            }
        }
        Event::OperationFailed { op, error } => {
            if let Some(turn) = turns.iter_mut().rev().find(|t| t.op == *op) {
                turn.error = Some(error.message.clone());
            }
        }
        Event::ApprovalRequested {
            reason, proposal, ..
        } if !matches!(proposal, Proposal::LlmCall { .. }) => {
            if let Some(call) = current_call(turns, at) {
                call.gate = Some(CallGate::Asked {
                    reason: reason.clone(),
                });
            }
        }
        Event::ApprovalGranted(granted) => {
            if let Some(call) = current_call(turns, at)
                && matches!(call.gate, None | Some(CallGate::Asked { .. }))
            {
                call.gate = Some(match &granted.mode {
                    DecisionMode::Rule { rule } => CallGate::Rule { rule: rule.clone() },
                    DecisionMode::Manual => CallGate::Approved {
                        by: granted.by.clone(),
                        edited: granted
                            .edited
                            .as_ref()
                            .is_some_and(|edited| !matches!(edited, Proposal::Question { .. })),
                    },
                });
            }
        }
        Event::ApprovalRejected { by, reason, .. } => {
            if let Some(call) = current_call(turns, at)
                && matches!(call.gate, Some(CallGate::Asked { .. }))
            {
                call.gate = Some(CallGate::Rejected {
                    by: by.clone(),
                    reason: reason.clone(),
                });
            }
        }
        Event::ProposalVoided { .. } => {
            if let Some(call) = current_call(turns, at) {
                call.gate = None;
            }
        }
        _ => {}
    }
    // What each call of the turn in hand has returned so far.
    let (Some(agent), Some(turn)) = (agent, turns.iter_mut().rev().find(|t| !t.calls.is_empty()))
    else {
        return;
    };
    let results = agent.results();
    if results.len() == turn.calls.len() {
        for (call, result) in turn.calls.iter_mut().zip(results) {
            if call.result.is_none() {
                call.result = result.map(str::to_string);
            }
        }
    }
}

/// The call at `at` of the last turn that called tools.
fn current_call(
    turns: &mut [ConversationTurn],
    at: Option<usize>,
) -> Option<&mut ConversationCall> {
    let turn = turns.iter_mut().rev().find(|t| !t.calls.is_empty())?;
    turn.calls.get_mut(at?)
}
