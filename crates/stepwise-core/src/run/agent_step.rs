//! Deciding agent steps between their model's turns. A reply that calls tools becomes the
//! step's `AgentTurn` (`agent_turn.rs`, kept by `apply`); its calls are dealt with one after
//! another in the order the model gave, each as the operation its tool maps to
//! (`agent_tools`), through the same gate as a step of that kind (a rule that allows it is
//! recorded as the decision; a person may be asked, and approve, edit or reject it), or
//! answered at once where it cannot be made as given (an unknown tool, wrong arguments, a
//! refusal by policy). Once every call has its result, the conversation goes back to the
//! model with them, through the same budget check as any model call, until the model answers
//! without calling a tool or the step's turns run out.

use crate::event::Event;
use crate::operation::{OperationError, OperationErrorKind, OperationRequest, OperationResult};

use super::agent_turn::{AgentTurn, Judge, NextMove};
use super::state::RunState;

/// The shared memory an agent step remembers in, if it has one.
pub(super) fn agent_memory(action: &crate::workflow::Action) -> Option<&str> {
    match action {
        crate::workflow::Action::Llm(llm) => llm.agent.as_ref()?.memory.as_deref(),
        _ => None,
    }
}

impl RunState {
    /// The agent's next move once a turn's call returned (or the turn began): the next call's
    /// operation, else the conversation back to the model with every result.
    pub(super) fn decide_agent_turn(&mut self, index: usize) -> Vec<Event> {
        let id = self.workflow.steps[index].id.clone();
        if self.cancelled(index) {
            return vec![Event::StepCancelled { step: id }];
        }
        let next = match &self.steps[index].agent {
            Some(turn) => turn.next_move(),
            None => {
                let attempt = self.steps[index].attempt;
                return vec![super::decide::fail(
                    &id,
                    attempt,
                    "an agent's tool returned outside a turn",
                )];
            }
        };
        // A turn that called tools with no turn left to hear their results performs none.
        if let Some(out_of_turns) = self.out_of_turns(index) {
            return out_of_turns;
        }
        match next {
            NextMove::Perform(operation) => self.start_operation(index, operation),
            NextMove::Reply(request) => self.llm_gate(index, request),
            NextMove::Ask { proposal, reason } => {
                let attempt = self.steps[index].attempt;
                match proposal.hash() {
                    Ok(proposal_hash) => vec![Event::ApprovalRequested {
                        step: id,
                        attempt,
                        proposal,
                        proposal_hash,
                        reason,
                    }],
                    Err(e) => vec![super::decide::fail(
                        &id,
                        attempt,
                        format!("the agent's call cannot be recorded: {e}"),
                    )],
                }
            }
            NextMove::GrantByRule { proposal, rule } => {
                let attempt = self.steps[index].attempt;
                let proposal_hash = match proposal.hash() {
                    Ok(hash) => hash,
                    Err(e) => {
                        return vec![super::decide::fail(
                            &id,
                            attempt,
                            format!("the agent's call cannot be recorded: {e}"),
                        )];
                    }
                };
                // What runs once the rule's grant is applied: the turn as it will be then (the
                // call cleared may join reads after it in one batch).
                let Some(request) = self.steps[index].agent.as_ref().and_then(|turn| {
                    let mut granted = turn.clone();
                    granted.cleared(None, false, None);
                    granted.next_operation()
                }) else {
                    return Vec::new();
                };
                // The decision and the operation go together, or neither (no slot free).
                let started = self.start_operation(index, request);
                if started.is_empty() {
                    return started;
                }
                let granted = super::decide::granted_by_rule(id, attempt, proposal_hash, rule);
                std::iter::once(granted).chain(started).collect()
            }
        }
    }

    /// An agent's tool operation must be the one its turn's next call asks for: the result it
    /// gets is that call's. A log where it is not (written by another version that planned the
    /// calls otherwise) is refused, rather than each result given to the wrong call.
    pub(super) fn check_tool_operation(
        &self,
        seq: crate::ids::EventSeq,
        index: usize,
        request: &OperationRequest,
    ) -> Result<(), super::state::StateError> {
        if matches!(request, OperationRequest::LlmCall(_)) {
            return Ok(());
        }
        let Some(turn) = &self.steps[index].agent else {
            return Ok(());
        };
        if turn.next_operation().as_ref() == Some(request) {
            return Ok(());
        }
        Err(super::state::StateError::Unexpected {
            seq,
            message: format!(
                "starts {} for step `{}`, which is not what its agent's next tool call asks for",
                request.kind_name(),
                self.workflow.steps[index].id
            ),
        })
    }

    /// The step's failure if its model has had every turn `max_turns` allows.
    pub(super) fn out_of_turns(&mut self, index: usize) -> Option<Vec<Event>> {
        let max_turns = match &self.workflow.steps[index].action {
            crate::workflow::Action::Llm(llm) => llm.agent.as_ref()?.max_turns,
            _ => return None,
        };
        if self.steps[index].llm_calls < max_turns {
            return None;
        }
        Some(self.fail_or_retry(
            index,
            format!(
                "the agent used all {max_turns} of its turns (`max_turns`) without giving an answer"
            ),
            false,
            None,
        ))
    }

    /// Keeps step `index`'s conversation as `event` (just applied) changes it, if it is an
    /// agent's; `at` is the call the agent was dealing with before the event.
    pub(super) fn follow_conversation(
        &mut self,
        index: usize,
        seq: crate::ids::EventSeq,
        event: &Event,
        at: Option<usize>,
    ) {
        let is_agent = matches!(
            &self.workflow.steps[index].action,
            crate::workflow::Action::Llm(llm) if llm.agent.is_some()
        );
        if is_agent {
            let step = &mut self.steps[index];
            let agent = step.agent.as_ref();
            super::conversation::follow(
                &mut step.conversation,
                agent,
                step.attempt,
                seq,
                event,
                at,
            );
        }
    }

    /// A person settled an agent's call whose outcome was lost (from `apply`): skipped or
    /// marked done, that is what the model is told it returned. (Run again, it is performed
    /// again, and its outcome is the result.)
    pub(super) fn follow_agent_resolution(
        &mut self,
        index: usize,
        resolution: crate::event::Resolution,
    ) {
        let said = match resolution {
            crate::event::Resolution::Retry => return,
            // Who settled it stays in the log: the provider is told only that a person did.
            crate::event::Resolution::Skip => {
                "error: the engine stopped while this ran, so what it did is unknown; a person chose to skip it".to_string()
            }
            crate::event::Resolution::MarkDone => {
                "the engine stopped while this ran, so its output is lost; a person says it was done".to_string()
            }
        };
        if let Some(turn) = &mut self.steps[index].agent {
            turn.settle(said);
        }
    }

    /// Keeps an agent step's turn as its operations answer (from `apply`): a reply that calls
    /// tools begins a turn; any other operation of the step is a tool, and its outcome is the
    /// result of the call being performed.
    pub(super) fn follow_agent(
        &mut self,
        index: usize,
        request: &OperationRequest,
        outcome: &Result<OperationResult, OperationError>,
    ) {
        let is_agent = matches!(
            &self.workflow.steps[index].action,
            crate::workflow::Action::Llm(llm) if llm.agent.is_some()
        );
        if !is_agent {
            return;
        }
        let step = &mut self.steps[index];
        let judge = Judge {
            policy: &self.policy,
            approval_required: self.workflow.steps[index].approval_required,
            mcp: &step.mcp_tools,
            memory: agent_memory(&self.workflow.steps[index].action),
        };
        match (request, outcome) {
            (OperationRequest::LlmCall(call), Ok(OperationResult::LlmReplied(reply)))
                if !reply.tool_calls.is_empty() =>
            {
                step.agent = Some(AgentTurn::new(call, reply, judge));
                step.tool_turns += 1;
            }
            (OperationRequest::LlmCall(_), _) => {}
            // The step's MCP tools, listed before its first turn.
            (
                OperationRequest::McpListTools { server },
                Ok(OperationResult::McpToolsListed { tools }),
            ) => {
                let mut taken = match &self.workflow.steps[index].action {
                    crate::workflow::Action::Llm(llm) => llm
                        .agent
                        .as_ref()
                        .map(|agent| agent.tools.clone())
                        .unwrap_or_default(),
                    _ => Vec::new(),
                };
                taken.extend(step.mcp_tools.iter().map(|t| t.spec.clone()));
                let offered = crate::agent_tools::offered_tools(server, tools, &taken);
                step.mcp_tools.extend(offered);
                step.mcp_listed += 1;
            }
            // A server that could not list its tools: the model is told so in its first turn.
            (OperationRequest::McpListTools { server }, Err(error))
                if error.kind != OperationErrorKind::Cancelled =>
            {
                let named = format!("`{server}`");
                step.mcp_unavailable
                    .push(if error.message.contains(&named) {
                        error.message.clone()
                    } else {
                        format!("MCP server {named}: {}", error.message)
                    });
                step.mcp_listed += 1;
            }
            (OperationRequest::McpListTools { .. }, _) => {}
            (_, outcome) => {
                if let Some(turn) = &mut step.agent {
                    turn.answer(outcome, judge);
                }
            }
        }
    }
}
