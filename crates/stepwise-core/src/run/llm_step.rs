//! Deciding model steps: the exact request (rendered from the step's templates and the model
//! the run recorded), the budget check that asks a person before a call could cross what
//! remains, and what a reply becomes: the step's output, or, for structured output that does
//! not match its schema, the same conversation asked again with what was wrong.

use serde_json::{Value, json};

use super::state::RunState;
use crate::event::{Event, Proposal};
use crate::json_depth::{MAX_VALUE_DEPTH, deeper_than};
use crate::llm::{
    Budget, ChatMessage, CostEstimate, LlmReply, LlmRequest, Role, estimate, format_usd,
};
use crate::operation::OperationRequest;
use crate::workflow::LlmAction;

impl RunState {
    /// The first move of a model step's attempt.
    pub(super) fn decide_llm_begin(&mut self, index: usize, llm: &LlmAction) -> Vec<Event> {
        let attempt = self.steps[index].attempt;
        let id = self.workflow.steps[index].id.clone();
        // An agent's MCP servers list their tools first, one after another.
        if let Some(server) = llm
            .agent
            .as_ref()
            .and_then(|agent| agent.mcp.get(self.steps[index].mcp_listed))
        {
            let list = OperationRequest::McpListTools {
                server: server.clone(),
            };
            return self.start_operation(index, list);
        }
        match self.llm_request(index, llm) {
            Ok(request) => self.llm_gate(index, std::sync::Arc::new(request)),
            Err(e) => vec![super::decide::fail(&id, attempt, e)],
        }
    }

    /// The request a model step makes, rendered from its templates.
    fn llm_request(&self, index: usize, llm: &LlmAction) -> Result<LlmRequest, String> {
        let Some(spec) = self.started.models.get(&llm.model) else {
            return Err(format!(
                "model `{}` was not in the settings when the run started (see `models:` in settings.yaml)",
                llm.model
            ));
        };
        let scope = self.scope_for(index);
        let mut messages = Vec::with_capacity(llm.messages.len());
        for (role, template) in &llm.messages {
            let content = template
                .render_string(&scope)
                .map_err(|e| format!("message: {e}"))?;
            messages.push(ChatMessage::text(*role, content));
        }
        // MCP servers that could not list their tools: the model is told, and goes on without.
        let unavailable = &self.steps[index].mcp_unavailable;
        if !unavailable.is_empty() {
            messages.push(ChatMessage::text(
                Role::User,
                format!("Some tools are not available: {}.", unavailable.join("; ")),
            ));
        }
        Ok(LlmRequest {
            model: llm.model.clone(),
            spec: spec.clone(),
            messages,
            temperature: llm.temperature,
            max_tokens: llm.max_tokens,
            output_schema: llm.output_schema.clone(),
            timeout_ms: self.workflow.steps[index].timeout_ms,
            tools: llm
                .agent
                .as_ref()
                .map(|agent| {
                    let mcp = self.steps[index].mcp_tools.iter();
                    agent
                        .tools
                        .iter()
                        .cloned()
                        .chain(mcp.map(|tool| tool.spec.clone()))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// Makes the call, unless it needs a person first: the workflow requires approval of the
    /// step, or the call's estimate would cross what remains of the budget.
    pub(super) fn llm_gate(
        &mut self,
        index: usize,
        request: std::sync::Arc<LlmRequest>,
    ) -> Vec<Event> {
        let step = &self.workflow.steps[index];
        let id = step.id.clone();
        let attempt = self.steps[index].attempt;
        let approval_required = step.approval_required;
        let estimate = estimate(&request);
        let (remaining, raise) = self.budget_check(&estimate);
        let over = raise.micro_usd.is_some() || raise.tokens.is_some();
        // A call nothing gates starts at once: what a person approved matters only to a gate.
        if !(approval_required || over) {
            return self.start_operation(index, OperationRequest::LlmCall(request));
        }
        let proposal = Proposal::LlmCall {
            request: request.clone(),
            estimate,
            remaining,
            raise,
        };
        let proposal_hash = match proposal.hash() {
            Ok(hash) => hash,
            Err(e) => {
                return vec![super::decide::fail(
                    &id,
                    attempt,
                    format!("the call cannot be recorded: {e}"),
                )];
            }
        };
        if self.steps[index].approved_hashes.contains(&proposal_hash) {
            return self.start_operation(index, OperationRequest::LlmCall(request));
        }
        let reason = if over {
            over_budget_reason(&estimate, &remaining)
        } else {
            "the workflow requires approval for this step".to_string()
        };
        vec![Event::ApprovalRequested {
            step: id,
            attempt,
            proposal,
            proposal_hash,
            reason,
        }]
    }

    /// What remains of the budget once what is spent and what calls in flight hold are taken
    /// off, and what it must be raised by for this estimate (`None` where it is not crossed,
    /// or not limited).
    pub(super) fn budget_check(&self, estimate: &CostEstimate) -> (Budget, Budget) {
        let Some(budget) = self.budget else {
            return (Budget::default(), Budget::default());
        };
        let used = |spent: u64, reserved: u64| spent.saturating_add(reserved);
        let remaining = Budget {
            micro_usd: budget
                .micro_usd
                .map(|b| b.saturating_sub(used(self.spent.micro_usd, self.reserved.micro_usd))),
            tokens: budget
                .tokens
                .map(|b| b.saturating_sub(used(self.spent.tokens, self.reserved.tokens))),
        };
        let raise = Budget {
            micro_usd: remaining
                .micro_usd
                .filter(|&left| estimate.micro_usd > left)
                .map(|left| estimate.micro_usd - left),
            tokens: remaining
                .tokens
                .filter(|&left| estimate.tokens() > left)
                .map(|left| estimate.tokens() - left),
        };
        (remaining, raise)
    }

    /// Makes a call a person approved. Approved for another reason than the budget (the step
    /// requires approval), a call that no longer fits what remains asks about the budget first.
    pub(super) fn start_approved_llm(
        &mut self,
        index: usize,
        request: std::sync::Arc<LlmRequest>,
    ) -> Vec<Event> {
        let (_, raise) = self.budget_check(&estimate(&request));
        let over = raise.micro_usd.is_some() || raise.tokens.is_some();
        if over && !self.steps[index].over_budget_approved {
            return self.llm_gate(index, request);
        }
        self.start_operation(index, OperationRequest::LlmCall(request))
    }

    /// A reply: the step's output, or (structured output that does not match) the question
    /// asked again.
    pub(super) fn decide_llm_reply(
        &mut self,
        index: usize,
        request: &LlmRequest,
        reply: LlmReply,
    ) -> Vec<Event> {
        let id = self.workflow.steps[index].id.clone();
        let attempt = self.steps[index].attempt;
        let Some(schema) = &request.output_schema else {
            let mut output = json!({
                "text": reply.text,
                "finish_reason": reply.finish_reason,
                "usage": reply.usage,
                "cost_micro_usd": reply.cost_micro_usd,
                "model": request.model,
            });
            if reply.simulated {
                output["simulated"] = Value::Bool(true);
            }
            return vec![Event::StepSucceeded {
                step: id,
                attempt,
                output,
            }];
        };
        let is_plan = matches!(
            &self.workflow.steps[index].action,
            crate::workflow::Action::Llm(llm) if llm.plan.is_some()
        );
        let problem = match structured_value(&reply.text) {
            Ok(value) if deeper_than(&value, MAX_VALUE_DEPTH) => {
                format!("it is nested deeper than {MAX_VALUE_DEPTH} levels")
            }
            Ok(value) => match schema_errors(schema, &value) {
                None if is_plan => match self.plan_proposal(index, request, &value) {
                    Ok(events) => return events,
                    Err(problem) => problem,
                },
                None => {
                    return vec![Event::StepSucceeded {
                        step: id,
                        attempt,
                        output: value,
                    }];
                }
                Some(errors) => errors,
            },
            Err(e) => format!("it is not JSON ({e})"),
        };
        let retries = match &self.workflow.steps[index].action {
            crate::workflow::Action::Llm(llm) => llm.schema_retries,
            _ => 0,
        };
        // An agent's turns that called tools are not tries at the answer.
        let calls = self.steps[index]
            .llm_calls
            .saturating_sub(self.steps[index].tool_turns);
        if calls > retries {
            let error = format!(
                "the model's reply does not match `output_schema` after {calls} tries: {problem}"
            );
            return self.fail_or_retry(index, error, false, Some(json!({ "text": reply.text })));
        }
        if let Some(out_of_turns) = self.out_of_turns(index) {
            return out_of_turns;
        }
        let mut again = LlmRequest::clone(request);
        again
            .messages
            .push(ChatMessage::text(Role::Assistant, reply.text));
        again.messages.push(ChatMessage::text(
            Role::User,
            retry_message(&problem, schema),
        ));
        self.llm_gate(index, std::sync::Arc::new(again))
    }
}

/// Schemas longer than this are not repeated when a reply is asked for again (a plan's step
/// schema would fill a small model's context); the request still carries it.
const REPEATED_SCHEMA_MAX: usize = 2_000;

/// What a model is told when its reply did not match: what was wrong, and the schema again
/// when it is short.
fn retry_message(problem: &str, schema: &Value) -> String {
    let schema = schema.to_string();
    if schema.len() <= REPEATED_SCHEMA_MAX {
        format!(
            "That reply cannot be used: {problem}. Reply again with only a JSON value that matches this JSON Schema, and nothing else:\n{schema}"
        )
    } else {
        format!(
            "That reply cannot be used: {problem}. Reply again with only a JSON value of the form you were asked for, and nothing else."
        )
    }
}

/// The JSON value in a reply: the whole text, or the inside of a fenced code block.
fn structured_value(text: &str) -> Result<Value, serde_json::Error> {
    let trimmed = text.trim();
    let inner = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|rest| rest.trim_end().strip_suffix("```"))
        .unwrap_or(trimmed);
    serde_json::from_str(inner.trim())
}

/// What is wrong with `value` against `schema` (the first few problems), `None` if nothing.
fn schema_errors(schema: &Value, value: &Value) -> Option<String> {
    let validator = match jsonschema::validator_for(schema) {
        Ok(validator) => validator,
        Err(e) => return Some(format!("the schema cannot be used: {e}")),
    };
    let problems: Vec<String> = validator
        .iter_errors(value)
        .take(3)
        .map(|e| {
            let at = e.instance_path().to_string();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("at {at}: {e}")
            }
        })
        .collect();
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// Why a call waits: its estimate against what remains.
fn over_budget_reason(estimate: &CostEstimate, remaining: &Budget) -> String {
    let mut parts = Vec::new();
    if let Some(left) = remaining.micro_usd {
        parts.push(format!(
            "its estimated cost {} is more than the {} left of the budget",
            format_usd(estimate.micro_usd),
            format_usd(left)
        ));
    }
    if let Some(left) = remaining.tokens {
        parts.push(format!(
            "its estimated {} tokens are more than the {left} tokens left",
            estimate.tokens()
        ));
    }
    format!(
        "over budget: {}; approving raises the budget by enough for this call",
        parts.join(", and ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_may_wrap_its_json_in_a_code_block() {
        assert_eq!(
            structured_value("```json\n{\"a\": 1}\n```").ok(),
            Some(json!({"a": 1}))
        );
        assert_eq!(structured_value(" [1, 2] ").ok(), Some(json!([1, 2])));
        assert!(structured_value("sure! {\"a\": 1}").is_err());
    }

    #[test]
    fn schema_problems_name_where() {
        let schema = json!({"type": "object", "required": ["label"], "properties": {"label": {"enum": ["bug", "feature"]}}});
        assert_eq!(schema_errors(&schema, &json!({"label": "bug"})), None);
        let problem = schema_errors(&schema, &json!({"label": "question"})).expect("invalid");
        assert!(problem.contains("/label"), "{problem}");
        assert!(schema_errors(&schema, &json!({})).is_some());
    }
}
