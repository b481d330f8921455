//! An agent's MCP tools in the state machine alone: listed before the first turn and offered
//! under names providers accept, a call asked about by default and performed once approved, a
//! tool a rule refuses told so, a server that cannot list its tools failing the attempt.

use std::sync::Arc;

use serde_json::json;

use super::agent_tests::{input, last_op, reply, start_with};
use super::{StepStatus, replay};
use crate::event::{ApprovalGranted, DecisionMode, Event, Proposal};
use crate::ids::StepId;
use crate::llm::{Role, ToolCall};
use crate::operation::{
    McpToolInfo, OperationError, OperationErrorKind, OperationRequest, OperationResult,
};
use crate::policy::{Effect, GateKind, RuleSpec};

const AGENT: &str = "name: t\nsteps:\n  - id: look\n    type: agent\n    model: m\n    instructions: Read it.\n    tools: [read_file]\n    mcp: [files]\n";

fn listed() -> OperationResult {
    let tool = |name: &str| McpToolInfo {
        name: name.into(),
        description: "A tool.".into(),
        input_schema: json!({"type": "object"}),
    };
    OperationResult::McpToolsListed {
        tools: vec![tool("read_text_file"), tool("write_file")],
    }
}

fn call(id: &str, name: &str) -> ToolCall {
    ToolCall {
        id: id.into(),
        name: name.into(),
        arguments: json!({"path": "/data/a.txt"}),
        signature: None,
        malformed: None,
    }
}

#[test]
fn mcp_tools_are_listed_offered_asked_about_and_refused_by_rule() {
    let deny = RuleSpec {
        effect: Effect::Deny,
        kind: Some(GateKind::McpCall),
        paths: vec!["files.write_*".into()],
        commands: vec![],
        env: vec![],
        pass_env: vec![],
        unchecked_shell: false,
        arguments: Default::default(),
        source: "test policy, rule 1".into(),
    };
    let (mut state, mut log) = start_with(AGENT, vec![deny]);
    let (op, request) = last_op(&log);
    assert_eq!(
        request,
        OperationRequest::McpListTools {
            server: "files".into()
        }
    );
    input(
        &mut state,
        &mut log,
        Event::OperationSucceeded {
            op,
            result: listed(),
        },
    );
    let (op, request) = last_op(&log);
    let OperationRequest::LlmCall(first) = request else {
        panic!("the first turn")
    };
    let names: Vec<&str> = first.tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        ["read_file", "files__read_text_file", "files__write_file"]
    );
    let calls = vec![
        call("c1", "files__write_file"),
        call("c2", "files__read_text_file"),
    ];
    input(
        &mut state,
        &mut log,
        Event::OperationSucceeded {
            op,
            result: reply("", calls),
        },
    );
    // The write is refused by its rule; the read asks a person, showing server, tool and
    // arguments.
    let step = state.step_state(&StepId::from("look")).expect("step");
    assert_eq!(step.status, StepStatus::AwaitingApproval);
    let pending = step.pending_approval.clone().expect("a question");
    assert_eq!(
        pending.proposal,
        Proposal::McpCall {
            server: "files".into(),
            tool: "read_text_file".into(),
            arguments: json!({"path": "/data/a.txt"})
        }
    );
    assert_eq!(pending.reason, "mcp_call needs approval by default");
    let granted = Event::ApprovalGranted(ApprovalGranted {
        step: StepId::from("look"),
        attempt: pending.attempt,
        proposal_hash: pending.proposal_hash.clone(),
        approved_hash: pending.proposal_hash,
        edited: None,
        by: "ann".into(),
        host: None,
        mode: DecisionMode::Manual,
        comment: None,
        hunks: None,
    });
    input(&mut state, &mut log, granted);
    let (op, request) = last_op(&log);
    assert!(
        matches!(request, OperationRequest::McpCall { ref tool, .. } if tool == "read_text_file")
    );
    input(
        &mut state,
        &mut log,
        Event::OperationSucceeded {
            op,
            result: OperationResult::McpCalled {
                content: "hello".into(),
                is_error: false,
                changes: Vec::new(),
            },
        },
    );
    let (_, request) = last_op(&log);
    let OperationRequest::LlmCall(next) = request else {
        panic!("back to the model")
    };
    let told: Vec<&str> = next
        .messages
        .iter()
        .filter(|m| m.role == Role::Tool)
        .map(|m| m.content.as_str())
        .collect();
    assert_eq!(
        told,
        [
            "error: calling `files.write_file` is refused by the workspace's policy (rule: deny mcp_call tool files.write_*)",
            "hello"
        ]
    );
    assert_eq!(next.tools.len(), 3, "the same tools every turn");
    replay(Arc::clone(state.workflow()), &log).expect("replay matches");
}

#[test]
fn a_server_that_cannot_list_its_tools_is_named_to_the_model_which_goes_on_without_them() {
    let (mut state, mut log) = start_with(AGENT, Vec::new());
    let (op, _) = last_op(&log);
    let failed = Event::OperationFailed {
        op,
        error: OperationError::new(
            OperationErrorKind::Mcp,
            "MCP server `files` did not start a session (it exited, or answered something that is not MCP)",
        ),
    };
    input(&mut state, &mut log, failed);
    let (_, request) = last_op(&log);
    let OperationRequest::LlmCall(first) = request else {
        panic!("the first turn, without the server's tools")
    };
    let names: Vec<&str> = first.tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["read_file"]);
    let told = &first.messages.last().expect("a note").content;
    assert_eq!(
        told,
        "Some tools are not available: MCP server `files` did not start a session (it exited, or answered something that is not MCP)."
    );
    replay(Arc::clone(state.workflow()), &log).expect("replay matches");
}
