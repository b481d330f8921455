//! An agent step between two of its model's turns, as data: the turn that called tools, each
//! call planned as the operation its tool maps to or answered at once with why it cannot be
//! made, and what each has returned so far. Kept by `apply`, so a function of the log.

use crate::agent_tools::{call_request, call_result};
use crate::llm::{ChatMessage, LlmReply, LlmRequest, Role, ToolCall};
use crate::operation::{OperationError, OperationRequest, OperationResult};
use crate::policy::{Effect, GateKind, Policy, Subject};

/// An agent step between two model turns.
#[derive(Debug, Clone)]
pub(crate) struct AgentTurn {
    /// The call the model answered with tool calls, its messages ending with that answer.
    request: Box<LlmRequest>,
    calls: Vec<ToolCall>,
    /// Per call: the operation to perform, or what the model is told instead.
    planned: Vec<Result<OperationRequest, String>>,
    /// Per call: what it returned, once it has.
    results: Vec<Option<String>>,
}

impl AgentTurn {
    /// The turn of `reply`, which called tools, to `request`.
    pub(crate) fn new(
        request: &LlmRequest,
        reply: &LlmReply,
        policy: &Policy,
        approval_required: bool,
    ) -> AgentTurn {
        let mut request = Box::new(request.clone());
        request.messages.push(ChatMessage {
            role: Role::Assistant,
            content: reply.text.clone(),
            tool_calls: reply.tool_calls.clone(),
            tool_call_id: None,
        });
        let planned: Vec<Result<OperationRequest, String>> = reply
            .tool_calls
            .iter()
            .map(|call| {
                call_request(call, &request.tools)
                    .and_then(|op| allowed(op, policy, approval_required))
            })
            .collect();
        let results = planned
            .iter()
            .map(|planned| planned.as_ref().err().cloned())
            .collect();
        AgentTurn {
            request,
            calls: reply.tool_calls.clone(),
            planned,
            results,
        }
    }

    /// The operation of the next call to perform, if any is left.
    pub(super) fn next_operation(&self) -> Option<OperationRequest> {
        let at = self.results.iter().position(Option::is_none)?;
        self.planned[at].as_ref().ok().cloned()
    }

    /// Records what the call being performed (the first without a result) returned.
    pub(crate) fn answer(
        &mut self,
        outcome: &Result<OperationResult, OperationError>,
        policy: &Policy,
    ) {
        if let Some(at) = self.results.iter().position(Option::is_none) {
            self.results[at] = Some(call_result(&self.calls[at], outcome, policy));
        }
    }

    /// Gives the call being performed (the first without a result) this result.
    pub(crate) fn settle(&mut self, result: String) {
        if let Some(at) = self.results.iter().position(Option::is_none) {
            self.results[at] = Some(result);
        }
    }

    /// The next call to the model: the conversation with every call's result.
    pub(super) fn next_request(&self) -> Box<LlmRequest> {
        let mut next = self.request.clone();
        for (call, result) in self.calls.iter().zip(&self.results) {
            next.messages.push(ChatMessage::tool_result(
                call.id.clone(),
                result.clone().unwrap_or_default(),
            ));
        }
        next
    }
}

/// `request`, unless the policy keeps the agent from it: what the model is told then.
fn allowed(
    request: OperationRequest,
    policy: &Policy,
    approval_required: bool,
) -> Result<OperationRequest, String> {
    if let OperationRequest::RunCommand(command) = &request {
        let shown = command.command.display();
        if approval_required {
            return Err(format!(
                "error: running `{shown}` needs a person's approval (the step requires it), which an agent's commands cannot ask for yet"
            ));
        }
        let verdict = policy.evaluate(Subject::agent_command(command));
        return match verdict.effect {
            Effect::Allow => Ok(request),
            Effect::Deny => Err(format!("error: running `{shown}` is refused by policy")),
            Effect::Ask => Err(format!(
                "error: running `{shown}` needs a person's approval, which an agent's commands cannot ask for yet (an `allow: agent_command` rule of the policy may allow it)"
            )),
        };
    }
    let path = match &request {
        OperationRequest::ReadFile { path, .. } | OperationRequest::ListFiles { path, .. } => path,
        _ => return Ok(request),
    };
    let doing = match &request {
        OperationRequest::ListFiles { .. } => "listing",
        _ => "reading",
    };
    let verdict = policy.evaluate(Subject::file(GateKind::ReadFile, path));
    match verdict.effect {
        Effect::Allow => Ok(request),
        // Not the rule itself: it would tell the model what else the policy keeps from it.
        Effect::Deny => Err(format!("error: {doing} `{path}` is refused by policy")),
        Effect::Ask => Err(format!(
            "error: {doing} `{path}` needs a person's approval, which an agent's reads cannot ask for yet"
        )),
    }
}
