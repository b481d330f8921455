//! One step's state inside a run: where it is (`Phase`), what it shows (`StepState`), and the
//! question it may put to a person (`PendingApproval`).

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use crate::event::{Proposal, Resolution};
use crate::ids::EventSeq;
use crate::llm::CostEstimate;
use crate::operation::{OperationError, OperationRequest, OperationResult};

use super::status::StepStatus;

/// What an operation was for, within its step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    Read,
    Snapshot,
    Write,
    Command,
    Llm,
    /// A tool an agent step's model called.
    Tool,
    /// A child run (`workflow` step).
    Workflow,
    /// A signal waited for (`wait_signal` step).
    Signal,
}

/// The step's progress inside its current attempt; it decides what the core does next.
#[derive(Debug, Clone)]
pub(crate) enum Phase {
    /// Needs not finished yet.
    Blocked,
    /// Needs finished: decide skip, `when`, start.
    Ready,
    /// An attempt started: take the action's first move.
    Begin,
    /// An agent's call was answered without an operation (a person rejected it, or its edit
    /// went stale): take the agent's next move.
    AgentNext,
    AwaitingApproval,
    /// Approved: perform this (for a gate, nothing).
    Approved(Option<OperationRequest>),
    InFlight {
        op: EventSeq,
        request: OperationRequest,
    },
    Returned {
        request: OperationRequest,
        outcome: Result<OperationResult, OperationError>,
    },
    Rejected {
        by: String,
        reason: String,
    },
    RetryWait,
    RetryNow,
    Unknown {
        op: EventSeq,
        request: OperationRequest,
    },
    Resolved {
        resolution: Resolution,
        by: String,
        request: OperationRequest,
    },
    Done,
}

/// A question put to a person.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PendingApproval {
    pub attempt: u32,
    pub proposal: Proposal,
    pub proposal_hash: String,
    pub reason: String,
    /// Seq of the `ApprovalRequested` event.
    pub requested_seq: EventSeq,
}

/// One step's state.
#[derive(Debug, Clone)]
pub struct StepState {
    pub status: StepStatus,
    pub attempt: u32,
    pub output: Option<Value>,
    pub error: Option<String>,
    /// Why it was skipped or rejected.
    pub reason: Option<String>,
    pub pending_approval: Option<PendingApproval>,
    /// The proposal that was last approved (its diff is the edit's output).
    pub approved_proposal: Option<Proposal>,
    /// When that proposal is an edit a person reviewed hunk by hunk: which hunks they applied.
    pub approved_hunks: Option<crate::event::HunkReview>,
    /// A person let the step past the pause before it (a breakpoint, or step-through).
    pub(crate) breakpoint_passed: bool,
    /// For a step that repeats: the round it is in (from 1), and the last round's output.
    pub round: u32,
    pub previous: Option<Value>,
    /// For a step with `for_each`, once expanded: the indices of its iterations.
    pub iterations: Option<Vec<usize>>,
    /// The seq of its `StepSucceeded`: compensations run the last to succeed first.
    pub(crate) succeeded_at: Option<crate::ids::EventSeq>,
    /// For an edit: the file as it was read for the proposal (`None`: it did not exist).
    pub base_content: Option<String>,
    pub(crate) approved_hashes: BTreeSet<String>,
    pub(crate) waiting_needs: usize,
    pub(crate) phase: Phase,
    pub(crate) purpose: Option<Purpose>,
    /// Model calls made in the current attempt (structured output asks again when a reply
    /// does not match).
    pub(crate) llm_calls: u32,
    /// What the step's model call in flight holds of the budget: its estimate, reserved when
    /// it starts and given back when it replies (the reply's real cost is spent then).
    pub(crate) reserved: Option<CostEstimate>,
    /// A person approved the call this step is about to make over the budget: when it starts,
    /// the budget is raised by exactly what that call lacks then.
    pub(crate) over_budget_approved: bool,
    /// An agent step between its model's turns: the turn that called tools, and what each
    /// call has returned so far.
    pub(crate) agent: Option<super::agent_turn::AgentTurn>,
    /// An agent step's conversation, every attempt's turns in order (empty for other steps).
    pub conversation: Vec<super::conversation::ConversationTurn>,
    /// An agent step's MCP servers whose tools are listed in this attempt, and their tools as
    /// the model is offered them.
    pub(crate) mcp_listed: usize,
    pub(crate) mcp_tools: Vec<crate::agent_tools::McpTool>,
    /// The servers that could not list their tools, and why, for the model's first turn.
    pub(crate) mcp_unavailable: Vec<String>,
    /// Model turns of the current attempt that called tools (the rest are answers, and
    /// structured output's tries count only those).
    pub(crate) tool_turns: u32,
}

impl StepState {
    /// A step not started yet, waiting for `needs` steps (ready at once with none).
    pub(crate) fn new_blocked(needs: usize) -> StepState {
        StepState {
            status: StepStatus::Pending,
            attempt: 0,
            output: None,
            error: None,
            reason: None,
            pending_approval: None,
            approved_proposal: None,
            approved_hunks: None,
            breakpoint_passed: false,
            round: 1,
            previous: None,
            iterations: None,
            succeeded_at: None,
            base_content: None,
            approved_hashes: BTreeSet::new(),
            waiting_needs: needs,
            phase: if needs == 0 {
                Phase::Ready
            } else {
                Phase::Blocked
            },
            purpose: None,
            llm_calls: 0,
            reserved: None,
            over_budget_approved: false,
            agent: None,
            conversation: Vec::new(),
            mcp_listed: 0,
            mcp_tools: Vec::new(),
            mcp_unavailable: Vec::new(),
            tool_turns: 0,
        }
    }
}

pub(crate) fn purpose_of(action: &crate::workflow::Action, request: &OperationRequest) -> Purpose {
    use crate::workflow::Action;
    match (action, request) {
        (Action::Llm(llm), request)
            if llm.agent.is_some() && !matches!(request, OperationRequest::LlmCall(_)) =>
        {
            Purpose::Tool
        }
        (Action::EditFile { .. }, OperationRequest::ReadFile { .. }) => Purpose::Snapshot,
        (_, OperationRequest::WriteFile { .. }) => Purpose::Write,
        (_, OperationRequest::RunCommand(_)) => Purpose::Command,
        (
            _,
            OperationRequest::ReadFile { .. }
            | OperationRequest::ListFiles { .. }
            | OperationRequest::SearchFiles { .. }
            | OperationRequest::ReadBatch { .. },
        ) => Purpose::Read,
        (
            _,
            OperationRequest::McpListTools { .. }
            | OperationRequest::McpCall { .. }
            | OperationRequest::Remember { .. }
            | OperationRequest::Recall { .. },
        ) => Purpose::Tool,
        (_, OperationRequest::LlmCall(_)) => Purpose::Llm,
        (_, OperationRequest::RunWorkflow { .. }) => Purpose::Workflow,
        (_, OperationRequest::WaitSignal { .. }) => Purpose::Signal,
    }
}
