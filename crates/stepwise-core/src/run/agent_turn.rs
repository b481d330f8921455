//! An agent step between two of its model's turns, as data: the turn that called tools, and
//! where each of its calls is. A call is performed, put to the gate first (a rule that allows
//! it, recorded as the decision; or a person, who approves, edits or rejects it), read first
//! when it is an edit (and proposed against what was read), or answered. Kept by `apply`, so a
//! function of the log.

use std::sync::Arc;

use crate::agent_tools::{
    AgentEdit, McpTool, ToolAction, bounded, call_request, call_result, edit_changed,
    edit_proposal, written,
};
use crate::event::{HunkReview, Proposal};
use crate::llm::{ChatMessage, LlmReply, LlmRequest, Role, ToolCall};
use crate::operation::{OperationError, OperationRequest, OperationResult};
use crate::paths::is_in_policy_dir;
use crate::policy::{Effect, GateKind, Policy, Subject, Verdict};

use super::ask_reason::ask_reason;
use super::proposal::proposal_request;

/// The most reads of one turn performed side by side.
const MAX_BATCH: usize = 16;

/// An agent step between two model turns.
#[derive(Debug, Clone)]
pub(crate) struct AgentTurn {
    /// The call the model answered with tool calls (shared with the operation that made it).
    request: Arc<LlmRequest>,
    /// The model's answer: its text and the tools it called.
    answer: ChatMessage,
    /// Where each call is.
    stages: Vec<CallStage>,
}

/// Where one call of a turn is.
#[derive(Debug, Clone)]
enum CallStage {
    /// To perform: nothing but the policy's default decides it, or it has been cleared. When a
    /// person changed it before approving it, `changed_to` is what they approved instead (an
    /// edit's diff, a command's line), which the model is told with the result.
    Perform {
        request: OperationRequest,
        changed_to: Option<String>,
    },
    /// To put to the gate first.
    Gated { proposal: Proposal, gate: Gate },
    /// An edit of a file the agent may not read without asking: a person is asked to let it
    /// be read first (what the model is told of an edit shows what the file holds).
    ReadGate {
        path: String,
        edit: AgentEdit,
        reason: String,
    },
    /// An edit: its file is read first, and the edit proposed against what was read.
    Snapshot { path: String, edit: AgentEdit },
    /// Answered: what the model is told it returned.
    Done(String),
}

impl CallStage {
    /// Answered with `told`, within the cap of tool results.
    fn done(told: String) -> CallStage {
        CallStage::Done(bounded(told))
    }
}

/// How a gated call is cleared.
#[derive(Debug, Clone)]
enum Gate {
    /// A policy rule allows it: the rule is recorded as the decision.
    Rule(String),
    /// A person is asked, for this reason.
    Ask(String),
}

/// What an agent step does next.
pub(super) enum NextMove {
    /// Perform this operation.
    Perform(OperationRequest),
    /// Record that `rule` allows this, then perform it.
    GrantByRule { proposal: Proposal, rule: String },
    /// Ask a person about this.
    Ask { proposal: Proposal, reason: String },
    /// Every call has its result: the conversation goes back to the model.
    Reply(Arc<LlmRequest>),
}

/// What the gate goes by: the run's policy, and whether the step requires approval of all it
/// does.
#[derive(Clone, Copy)]
pub(crate) struct Judge<'a> {
    pub(crate) policy: &'a Policy,
    pub(crate) approval_required: bool,
    /// The MCP tools the step is offered.
    pub(crate) mcp: &'a [McpTool],
    /// The shared memory its `remember` and `recall` use.
    pub(crate) memory: Option<&'a str>,
}

impl AgentTurn {
    /// The turn of `reply`, which called tools, to `request`.
    pub(crate) fn new(request: &Arc<LlmRequest>, reply: &LlmReply, judge: Judge<'_>) -> AgentTurn {
        let stages = reply
            .tool_calls
            .iter()
            .map(|call| plan(call, request, judge))
            .collect();
        AgentTurn {
            request: Arc::clone(request),
            answer: ChatMessage {
                role: Role::Assistant,
                content: reply.text.clone(),
                tool_calls: reply.tool_calls.clone(),
                tool_call_id: None,
            },
            stages,
        }
    }

    /// The call being dealt with: the first without its result.
    pub(super) fn current(&self) -> Option<usize> {
        self.stages
            .iter()
            .position(|stage| !matches!(stage, CallStage::Done(_)))
    }

    /// What the step does next.
    pub(super) fn next_move(&self) -> NextMove {
        let Some(at) = self.current() else {
            return NextMove::Reply(self.next_request());
        };
        match &self.stages[at] {
            CallStage::Gated {
                proposal,
                gate: Gate::Rule(rule),
            } => NextMove::GrantByRule {
                proposal: proposal.clone(),
                rule: rule.clone(),
            },
            CallStage::Gated {
                proposal,
                gate: Gate::Ask(reason),
            } => NextMove::Ask {
                proposal: proposal.clone(),
                reason: reason.clone(),
            },
            CallStage::ReadGate { path, reason, .. } => NextMove::Ask {
                proposal: Proposal::ReadFile { path: path.clone() },
                reason: reason.clone(),
            },
            _ => match self.next_operation() {
                Some(request) => NextMove::Perform(request),
                None => NextMove::Reply(self.next_request()),
            },
        }
    }

    /// The reads cleared to run from the call being dealt with on (calls answered already
    /// in between are passed over), when there are two or more: they are performed side by
    /// side, as one `ReadBatch`. Their calls' places, and their requests.
    fn batch(&self) -> Option<(Vec<usize>, Vec<OperationRequest>)> {
        let at = self.current()?;
        let mut places = Vec::new();
        let mut reads = Vec::new();
        for (place, stage) in self.stages.iter().enumerate().skip(at) {
            match stage {
                CallStage::Done(_) => continue,
                CallStage::Perform {
                    request:
                        request @ (OperationRequest::ReadFile { .. }
                        | OperationRequest::ListFiles { .. }
                        | OperationRequest::SearchFiles { .. }),
                    ..
                } if reads.len() < MAX_BATCH => {
                    places.push(place);
                    reads.push(request.clone());
                }
                _ => break,
            }
        }
        (reads.len() >= 2).then_some((places, reads))
    }

    /// The places of the calls the operation in hand answers: a batch's, or the current one.
    pub(super) fn answered_by_next(&self) -> Vec<usize> {
        match self.batch() {
            Some((places, _)) => places,
            None => self.current().into_iter().collect(),
        }
    }

    /// The operation the call being dealt with performs now, if it performs one now.
    pub(super) fn next_operation(&self) -> Option<OperationRequest> {
        if let Some((_, requests)) = self.batch() {
            return Some(OperationRequest::ReadBatch { requests });
        }
        match &self.stages[self.current()?] {
            CallStage::Perform { request, .. } => Some(request.clone()),
            CallStage::Snapshot { path, .. } => Some(OperationRequest::ReadFile {
                path: path.clone(),
                missing_ok: true,
            }),
            CallStage::Gated { .. } | CallStage::ReadGate { .. } | CallStage::Done(_) => None,
        }
    }

    /// What each call has returned so far, as the model is told it.
    pub(super) fn results(&self) -> Vec<Option<&str>> {
        self.stages
            .iter()
            .map(|stage| match stage {
                CallStage::Done(result) => Some(result.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Whether the call being dealt with waits at the gate (so an approval or rejection of
    /// the step is of that call).
    pub(crate) fn gated(&self) -> bool {
        self.current().is_some_and(|at| {
            matches!(
                self.stages[at],
                CallStage::Gated { .. } | CallStage::ReadGate { .. }
            )
        })
    }

    /// Records what the operation of the call being dealt with returned.
    pub(crate) fn answer(
        &mut self,
        outcome: &Result<OperationResult, OperationError>,
        judge: Judge<'_>,
    ) {
        // A batch of reads: each call gets its own outcome (all of them the batch's failure).
        if let Some((places, _)) = self.batch() {
            for (k, place) in places.into_iter().enumerate() {
                let own = match outcome {
                    Ok(OperationResult::ReadsDone { outcomes }) => match outcomes.get(k) {
                        Some(one) => one.clone().into_result(),
                        None => Ok(OperationResult::ReadsDone {
                            outcomes: Vec::new(),
                        }),
                    },
                    other => other.clone(),
                };
                let told = call_result(&self.answer.tool_calls[place], &own, judge.policy);
                self.stages[place] = CallStage::done(told);
            }
            return;
        }
        let Some(at) = self.current() else { return };
        let call = &self.answer.tool_calls[at];
        let next = match (&self.stages[at], outcome) {
            (
                CallStage::Snapshot { path, edit },
                Ok(OperationResult::FileRead {
                    exists,
                    content,
                    hash,
                }),
            ) => match edit_proposal(path, edit, *exists, content, hash.clone()) {
                Err(told) => CallStage::done(told),
                Ok(None) => {
                    CallStage::done(format!("`{path}` already holds that; nothing was changed"))
                }
                Ok(Some(proposal)) => {
                    let verdict = judge
                        .policy
                        .evaluate(Subject::file(GateKind::EditFile, path));
                    judged(
                        verdict,
                        proposal,
                        GateKind::EditFile,
                        judge,
                        is_in_policy_dir(path),
                    )
                }
            },
            (
                CallStage::Perform {
                    request: OperationRequest::WriteFile { path, .. },
                    changed_to,
                },
                Ok(OperationResult::FileWritten { .. }),
            ) => CallStage::done(written(path, changed_to.as_deref())),
            (
                CallStage::Perform {
                    request: OperationRequest::RunCommand(_),
                    changed_to: Some(line),
                },
                outcome,
            ) => CallStage::done(format!(
                "a person changed your command before approving it; it ran `{line}` instead\n{}",
                call_result(call, outcome, judge.policy)
            )),
            (_, outcome) => CallStage::done(call_result(call, outcome, judge.policy)),
        };
        self.stages[at] = next;
    }

    /// The call at the gate was cleared: by `rule`, or by a person who approved `approved`.
    /// `changed`: the person changed it before approving.
    /// `hunks`: they applied only some hunks of an edit.
    pub(crate) fn cleared(
        &mut self,
        approved: Option<&Proposal>,
        changed: bool,
        hunks: Option<&HunkReview>,
    ) {
        let Some(at) = self.current() else { return };
        if let CallStage::ReadGate { path, edit, .. } = &self.stages[at] {
            self.stages[at] = CallStage::Snapshot {
                path: path.clone(),
                edit: edit.clone(),
            };
            return;
        }
        let CallStage::Gated { proposal, .. } = &self.stages[at] else {
            return;
        };
        let approved = approved.unwrap_or(proposal);
        self.stages[at] = match (approved, proposal_request(approved)) {
            (Proposal::Question { answer, .. }, _) => CallStage::done(match answer {
                Some(answer) => answer.clone(),
                None => "(the person went on without answering)".into(),
            }),
            (Proposal::EditFile { path, diff, .. }, Some(request)) => CallStage::Perform {
                request,
                changed_to: changed.then(|| edit_changed(path, diff, hunks)),
            },
            (Proposal::RunCommand(command), Some(request)) => CallStage::Perform {
                request,
                changed_to: changed.then(|| command.command.display()),
            },
            (_, Some(request)) => CallStage::Perform {
                request,
                changed_to: None,
            },
            (_, None) => CallStage::done("error: the approval cannot be performed".into()),
        };
    }

    /// A person rejected the call at the gate: the model is told why.
    pub(crate) fn rejected(&mut self, reason: &str) {
        let Some(at) = self.current() else { return };
        let told = match &self.stages[at] {
            CallStage::Gated {
                proposal: Proposal::Question { .. },
                ..
            } => format!("the person declined to answer: {reason}"),
            _ => format!("error: a person rejected this: {reason}"),
        };
        self.stages[at] = CallStage::done(told);
    }

    /// The file under the edit at the gate changed: the call starts again, reading it anew.
    pub(crate) fn voided(&mut self, judge: Judge<'_>) {
        if let Some(at) = self.current() {
            self.stages[at] = plan(&self.answer.tool_calls[at], &self.request, judge);
        }
    }

    /// Gives the call being dealt with this result (a person's word on a lost outcome).
    pub(crate) fn settle(&mut self, result: String) {
        if let Some(at) = self.current() {
            self.stages[at] = CallStage::done(result);
        }
    }

    /// The next call to the model: the conversation with every call's result.
    pub(super) fn next_request(&self) -> Arc<LlmRequest> {
        let mut next = LlmRequest::clone(&self.request);
        next.messages.reserve(1 + self.stages.len());
        next.messages.push(self.answer.clone());
        for (call, stage) in self.answer.tool_calls.iter().zip(&self.stages) {
            let result = match stage {
                CallStage::Done(result) => result.clone(),
                _ => String::new(),
            };
            next.messages
                .push(ChatMessage::tool_result(call.id.clone(), result));
        }
        super::agent_context::fit_context(&mut next);
        Arc::new(next)
    }
}

/// Where a call starts: refused at once, performed, put to the gate, or (an edit) read first.
fn plan(call: &ToolCall, request: &LlmRequest, judge: Judge<'_>) -> CallStage {
    let action = match call_request(call, &request.tools, judge.mcp, judge.memory) {
        Ok(action) => action,
        Err(told) => return CallStage::done(told),
    };
    let policy = judge.policy;
    match action {
        ToolAction::Operation(OperationRequest::ReadFile { path, .. }) => {
            let verdict = policy.evaluate(Subject::file(GateKind::ReadFile, &path));
            judged(
                verdict,
                Proposal::ReadFile { path },
                GateKind::ReadFile,
                judge,
                false,
            )
        }
        // A listing or a search shows only what the agent may read without asking: it needs
        // no one's approval, but a place the policy refuses is not looked into at all.
        ToolAction::Operation(
            request @ (OperationRequest::ListFiles { .. } | OperationRequest::SearchFiles { .. }),
        ) => {
            let (path, doing) = match &request {
                OperationRequest::ListFiles { path, .. } => (path, "listing"),
                OperationRequest::SearchFiles { path, .. } => (path, "searching"),
                _ => return CallStage::done("error: not a listing".into()),
            };
            let verdict = policy.evaluate(Subject::file(GateKind::ReadFile, path));
            if verdict.effect == Effect::Deny {
                return CallStage::done(refusal(doing, path, &verdict));
            }
            if judge.approval_required && matches!(request, OperationRequest::SearchFiles { .. }) {
                return CallStage::done(
                    "error: a search shows what files hold, and this step needs approval for each read; use read_file".into(),
                );
            }
            let request = match request {
                OperationRequest::SearchFiles {
                    pattern,
                    path,
                    glob,
                    ..
                } => OperationRequest::SearchFiles {
                    pattern,
                    path,
                    glob,
                    excluded: policy.unreadable_globs(),
                },
                other => other,
            };
            CallStage::Perform {
                request,
                changed_to: None,
            }
        }
        ToolAction::Operation(OperationRequest::RunCommand(command)) => {
            let verdict = policy.evaluate(Subject::agent_command(&command));
            judged(
                verdict,
                Proposal::RunCommand(command),
                GateKind::AgentCommand,
                judge,
                false,
            )
        }
        ToolAction::Operation(OperationRequest::McpCall {
            server,
            tool,
            arguments,
        }) => {
            let name = format!("{server}.{tool}");
            let verdict = policy.evaluate(Subject::mcp_tool(&name, &arguments));
            judged(
                verdict,
                Proposal::McpCall {
                    server,
                    tool,
                    arguments,
                },
                GateKind::McpCall,
                judge,
                false,
            )
        }
        ToolAction::Operation(other) => CallStage::Perform {
            request: other,
            changed_to: None,
        },
        ToolAction::Edit { path, edit } => {
            let verdict = policy.evaluate(Subject::file(GateKind::EditFile, &path));
            if verdict.effect == Effect::Deny {
                return CallStage::done(refusal("editing", &path, &verdict));
            }
            // What the model is told of an edit shows what the file holds (whether `old_text`
            // occurs, whether it exists): a file it may not read without asking is read only
            // once a person agrees.
            let read = policy.evaluate(Subject::file(GateKind::ReadFile, &path));
            if judge.approval_required || read.effect != Effect::Allow {
                let reason = ask_reason(judge.approval_required, false, read, GateKind::ReadFile);
                return CallStage::ReadGate {
                    path,
                    edit,
                    reason: format!("the agent's edit reads the file first: {reason}"),
                };
            }
            CallStage::Snapshot { path, edit }
        }
        ToolAction::Ask { question } => CallStage::Gated {
            proposal: Proposal::Question {
                question,
                answer: None,
            },
            gate: Gate::Ask("the agent asks a question".into()),
        },
    }
}

/// A proposal through the gate: refused (the model is told which rule refused it), performed
/// (the default allows it), cleared by the rule that allows it, or put to a person.
fn judged(
    verdict: Verdict,
    proposal: Proposal,
    kind: GateKind,
    judge: Judge<'_>,
    edits_policy: bool,
) -> CallStage {
    if verdict.effect == Effect::Deny {
        let (doing, what) = match &proposal {
            Proposal::RunCommand(command) => ("running", command.command.display()),
            Proposal::ReadFile { path } => ("reading", path.clone()),
            Proposal::EditFile { path, .. } => ("editing", path.clone()),
            Proposal::McpCall { server, tool, .. } => ("calling", format!("{server}.{tool}")),
            _ => ("doing", "this".to_string()),
        };
        return CallStage::done(refusal(doing, &what, &verdict));
    }
    let asks = judge.approval_required || edits_policy || verdict.effect == Effect::Ask;
    match (asks, &verdict.rule) {
        (false, None) => match proposal_request(&proposal) {
            Some(request) => CallStage::Perform {
                request,
                changed_to: None,
            },
            None => CallStage::done("error: nothing to perform".into()),
        },
        (false, Some(rule)) => CallStage::Gated {
            gate: Gate::Rule(rule.clone()),
            proposal,
        },
        (true, _) => CallStage::Gated {
            gate: Gate::Ask(ask_reason(
                judge.approval_required,
                edits_policy,
                verdict,
                kind,
            )),
            proposal,
        },
    }
}

/// What the model is told of a call the policy refuses: the rule as written, never where it
/// was written (which may name places on this machine).
fn refusal(doing: &str, what: &str, verdict: &Verdict) -> String {
    match &verdict.rule_text {
        Some(rule) => {
            format!("error: {doing} `{what}` is refused by the workspace's policy (rule: {rule})")
        }
        None => format!("error: {doing} `{what}` is refused by the workspace's policy"),
    }
}
