//! Deciding what follows an operation's outcome: a step's output, its next operation or
//! proposal, a retry or a failure; an agent's tool goes back to its model.

use serde_json::{Value, json};

use super::decide::{fail, format_ms};
use super::proposal::edit_proposal;
use super::state::{Purpose, RunState};
use crate::event::{Event, Proposal};
use crate::operation::{OperationErrorKind, OperationRequest, OperationResult};
use crate::policy::GateKind;

impl RunState {
    pub(super) fn decide_returned(
        &mut self,
        index: usize,
        request: &OperationRequest,
        outcome: Result<OperationResult, crate::operation::OperationError>,
    ) -> Vec<Event> {
        let step = &self.workflow.steps[index];
        let id = step.id.clone();
        let attempt = self.steps[index].attempt;
        let purpose = self.steps[index].purpose;
        // An agent's MCP server listed its tools, or could not (`apply` keeps which): on to the
        // next server, or the first turn.
        if let OperationRequest::McpListTools { server } = request {
            return match outcome {
                // Listed, or not (the model is told why in its first turn): on to the next
                // server, or the first turn.
                Ok(OperationResult::McpToolsListed { .. }) | Err(_) if !matches!(&outcome, Err(e) if e.kind == OperationErrorKind::Cancelled) =>
                {
                    let workflow = std::sync::Arc::clone(&self.workflow);
                    match &workflow.steps[index].action {
                        crate::workflow::Action::Llm(llm) => self.decide_llm_begin(index, llm),
                        _ => Vec::new(),
                    }
                }
                Ok(_) => vec![fail(
                    &id,
                    attempt,
                    format!("MCP server `{server}`: its listing answered something else"),
                )],
                Err(_) => vec![Event::StepCancelled { step: id }],
            };
        }
        // An agent's tool: whatever it returned (an error too) goes back to the model, and
        // `apply` has made it the call's result already.
        if purpose == Some(Purpose::Tool) {
            if matches!(&outcome, Err(e) if e.kind == OperationErrorKind::Cancelled) {
                return vec![Event::StepCancelled { step: id }];
            }
            return self.decide_agent_turn(index);
        }
        let result = match outcome {
            Ok(result) => result,
            Err(error) if error.kind == OperationErrorKind::Cancelled && self.cancelled(index) => {
                return vec![Event::StepCancelled { step: id }];
            }
            Err(error) => {
                return self.fail_or_retry(index, error.message, error.kind.retryable(), None);
            }
        };
        match (purpose, result) {
            (Some(Purpose::Read), OperationResult::FileRead { content, hash, .. }) => {
                vec![Event::StepSucceeded {
                    step: id,
                    attempt,
                    output: json!({ "path": read_path(request), "content": content, "hash": hash }),
                }]
            }
            (
                Some(Purpose::Snapshot),
                OperationResult::FileRead {
                    exists,
                    content,
                    hash,
                },
            ) => {
                if self.cancelled(index) {
                    return vec![Event::StepCancelled { step: id }];
                }
                let scope = self.scope_for(index);
                match edit_proposal(step, &scope, exists, &content, hash) {
                    Ok(Some(proposal)) => self.gate(index, proposal, GateKind::EditFile),
                    Ok(None) => vec![Event::StepSucceeded {
                        step: id,
                        attempt,
                        output: json!({ "path": read_path(request), "changed": false }),
                    }],
                    Err(e) => vec![fail(&id, attempt, e)],
                }
            }
            (
                Some(Purpose::Write),
                OperationResult::FileWritten {
                    before_hash,
                    after_hash,
                    recovered,
                    ..
                },
            ) => {
                let (path, diff) = match (&self.steps[index].approved_proposal, request) {
                    (Some(Proposal::EditFile { path, diff, .. }), _) => {
                        (path.clone(), diff.clone())
                    }
                    // Approved by a policy rule: no person saw a proposal, so the diff is
                    // rebuilt from the recorded snapshot and the written content.
                    (_, OperationRequest::WriteFile { path, content, .. }) => {
                        let diff = super::proposal::unified_diff(
                            path,
                            self.steps[index].base_content.as_deref(),
                            content,
                        );
                        (path.clone(), diff)
                    }
                    _ => (String::new(), String::new()),
                };
                let mut output = json!({ "path": path, "changed": true, "before_hash": before_hash, "after_hash": after_hash, "diff": diff });
                if recovered {
                    output["recovered"] = Value::Bool(true);
                }
                if let Some(review) = &self.steps[index].approved_hunks {
                    output["hunks"] = json!(review);
                }
                vec![Event::StepSucceeded {
                    step: id,
                    attempt,
                    output,
                }]
            }
            (Some(Purpose::Command), OperationResult::CommandFinished(outcome))
                if matches!(step.action, crate::workflow::Action::Custom(_)) =>
            {
                self.custom_step_returned(index, &outcome)
            }
            (Some(Purpose::Command), OperationResult::CommandFinished(outcome)) => {
                let output = json!({
                    "exit_code": outcome.exit_code,
                    "signal": outcome.signal,
                    "timed_out": outcome.timed_out,
                    "stdout": outcome.stdout,
                    "stderr": outcome.stderr,
                    "stdout_truncated": outcome.stdout_truncated(),
                    "stderr_truncated": outcome.stderr_truncated(),
                    "duration_ms": outcome.duration_ms,
                });
                let mut output = output;
                if let Some(saved) = &outcome.saved_output {
                    output["stdout_file"] = json!(saved.stdout_file);
                    output["stderr_file"] = json!(saved.stderr_file);
                }
                if outcome.succeeded() {
                    return vec![Event::StepSucceeded {
                        step: id,
                        attempt,
                        output,
                    }];
                }
                let error = if outcome.timed_out {
                    format!(
                        "command timed out after {} (its process group was killed)",
                        format_ms(step.timeout_ms.unwrap_or(outcome.duration_ms))
                    )
                } else if let Some(code) = outcome.exit_code {
                    format!("command exited with code {code}")
                } else {
                    format!(
                        "command was killed by signal {}",
                        outcome.signal.unwrap_or(0)
                    )
                };
                self.fail_or_retry(index, error, true, Some(output))
            }
            (Some(Purpose::Llm), OperationResult::LlmReplied(reply))
                if !reply.tool_calls.is_empty() && self.steps[index].agent.is_some() =>
            {
                self.decide_agent_turn(index)
            }
            (Some(Purpose::Llm), OperationResult::LlmReplied(reply)) => match request {
                OperationRequest::LlmCall(request) => {
                    let request = request.clone();
                    self.decide_llm_reply(index, &request, *reply)
                }
                _ => vec![fail(
                    &id,
                    attempt,
                    "a model reply to a request that was not a call",
                )],
            },
            (Some(Purpose::Signal), OperationResult::SignalReceived { payload, .. }) => {
                vec![Event::StepSucceeded {
                    step: id,
                    attempt,
                    output: payload,
                }]
            }
            (Some(Purpose::Workflow), OperationResult::WorkflowFinished { run_id, output }) => {
                let mut output = output;
                if let Value::Object(fields) = &mut output {
                    fields
                        .entry("run_id")
                        .or_insert_with(|| Value::String(run_id));
                }
                vec![Event::StepSucceeded {
                    step: id,
                    attempt,
                    output,
                }]
            }
            (_, other) => vec![fail(
                &id,
                attempt,
                format!("unexpected operation result {other:?}"),
            )],
        }
    }
}

/// The path a read asked for (empty for any other operation).
fn read_path(request: &OperationRequest) -> String {
    match request {
        OperationRequest::ReadFile { path, .. } => path.clone(),
        _ => String::new(),
    }
}
