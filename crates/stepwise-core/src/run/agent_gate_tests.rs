//! An agent's calls at the gate, in the state machine alone: an edit a person changes before
//! approving, a command a person rejects and one a rule allows, a question a person answers,
//! a read the policy refuses, and an edit whose file changed under it. Each run replays.

use std::sync::Arc;

use serde_json::json;

use super::agent_tests::{input, last_op, reply, start_with};
use super::{CallGate, RunState, StepStatus, replay};
use crate::event::{ApprovalGranted, DecisionMode, Event, Proposal};
use crate::ids::{EventSeq, StepId};
use crate::llm::{LlmRequest, Role, ToolCall};
use crate::operation::{CommandOutcome, OperationRequest, OperationResult};
use crate::policy::{Effect, GateKind, RuleSpec};

fn agent(tools: &str) -> String {
    format!(
        "name: t\nsteps:\n  - id: fix\n    type: agent\n    model: m\n    instructions: Fix it.\n    tools: [{tools}]\n"
    )
}

fn call(id: &str, name: &str, arguments: serde_json::Value) -> ToolCall {
    ToolCall {
        id: id.into(),
        name: name.into(),
        arguments,
        signature: None,
        malformed: None,
    }
}

fn rule(effect: Effect, kind: GateKind, paths: &[&str], commands: &[&str]) -> RuleSpec {
    RuleSpec {
        effect,
        kind: Some(kind),
        paths: paths.iter().map(|p| p.to_string()).collect(),
        commands: commands.iter().map(|c| c.to_string()).collect(),
        env: vec![],
        pass_env: vec![],
        unchecked_shell: false,
        arguments: Default::default(),
        source: "user policy /home/ann/.config/stepwise/policy.yaml, rule 1".into(),
    }
}

/// The question the step waits on: (attempt, proposal, hash).
fn waiting(state: &RunState) -> (u32, Proposal, String) {
    let step = state.step_state(&StepId::from("fix")).expect("the step");
    assert_eq!(step.status, StepStatus::AwaitingApproval);
    let pending = step.pending_approval.as_ref().expect("a question");
    (
        pending.attempt,
        pending.proposal.clone(),
        pending.proposal_hash.clone(),
    )
}

fn approve(state: &RunState, edited: Option<Proposal>) -> Event {
    let (attempt, _, proposal_hash) = waiting(state);
    Event::ApprovalGranted(ApprovalGranted {
        step: StepId::from("fix"),
        attempt,
        approved_hash: edited
            .as_ref()
            .map_or(proposal_hash.clone(), |p| p.hash().expect("hash")),
        proposal_hash,
        edited,
        by: "ann".into(),
        host: None,
        mode: DecisionMode::Manual,
        comment: None,
        hunks: None,
    })
}

/// The results the model is told, by call id, in the request the step makes next.
fn told(log: &[(EventSeq, Event)]) -> Vec<(String, String)> {
    let (_, request) = last_op(log);
    let OperationRequest::LlmCall(next) = request else {
        panic!("back to the model, not {request:?}")
    };
    results(&next)
}

fn results(request: &LlmRequest) -> Vec<(String, String)> {
    request
        .messages
        .iter()
        .filter(|m| m.role == Role::Tool)
        .map(|m| {
            (
                m.tool_call_id.clone().unwrap_or_default(),
                m.content.clone(),
            )
        })
        .collect()
}

fn finished(exit_code: i32, stdout: &str) -> OperationResult {
    OperationResult::CommandFinished(CommandOutcome {
        exit_code: Some(exit_code),
        signal: None,
        timed_out: false,
        stdout: stdout.into(),
        stderr: String::new(),
        stdout_bytes: stdout.len() as u64,
        stderr_bytes: 0,
        duration_ms: 1,
        saved_output: None,
        changes: Vec::new(),
    })
}

#[test]
fn an_edit_a_person_changes_is_written_as_changed_and_the_model_is_told_so() {
    let (mut state, mut log) = start_with(&agent("edit_file"), Vec::new());
    let (op, _) = last_op(&log);
    let edit = call(
        "c1",
        "edit_file",
        json!({"path": "calc.py", "old_text": "a - b", "new_text": "a * b"}),
    );
    input(
        &mut state,
        &mut log,
        Event::OperationSucceeded {
            op,
            result: reply("", vec![edit]),
        },
    );
    // The file is read first, and the edit proposed against it.
    let (op, request) = last_op(&log);
    assert_eq!(
        request,
        OperationRequest::ReadFile {
            path: "calc.py".into(),
            missing_ok: true
        }
    );
    let asked = input(
        &mut state,
        &mut log,
        Event::OperationSucceeded {
            op,
            result: OperationResult::FileRead {
                exists: true,
                content: "def add(a, b):\n    return a - b\n".into(),
                hash: Some("sha256:before".into()),
            },
        },
    );
    assert!(
        matches!(asked.as_slice(), [Event::ApprovalRequested { .. }]),
        "{asked:?}"
    );
    let (_, proposal, _) = waiting(&state);
    let Proposal::EditFile {
        diff, base_hash, ..
    } = &proposal
    else {
        panic!("an edit, not {proposal:?}")
    };
    assert!(diff.contains("+    return a * b"), "{diff}");
    assert_eq!(base_hash.as_deref(), Some("sha256:before"));
    // The person writes what they want instead.
    let changed = crate::run::edited_proposal(
        &proposal,
        Some("def add(a, b):\n    return a - b\n"),
        crate::run::EditedProposal::Content("def add(a, b):\n    return a + b\n".into()),
    )
    .expect("edits");
    let granted = approve(&state, Some(changed));
    input(&mut state, &mut log, granted);
    let (op, request) = last_op(&log);
    let OperationRequest::WriteFile {
        content, base_hash, ..
    } = request
    else {
        panic!("the write")
    };
    assert_eq!(content, "def add(a, b):\n    return a + b\n");
    assert_eq!(base_hash.as_deref(), Some("sha256:before"));
    input(
        &mut state,
        &mut log,
        Event::OperationSucceeded {
            op,
            result: OperationResult::FileWritten {
                before_hash: Some("sha256:before".into()),
                after_hash: "sha256:after".into(),
                recovered: false,
                changes: Vec::new(),
            },
        },
    );
    let told = told(&log);
    assert!(told[0].1.contains("a person changed your edit"), "{told:?}");
    assert!(told[0].1.contains("+    return a + b"), "{told:?}");
    replay(Arc::clone(state.workflow()), &log).expect("replay matches");
}

#[test]
fn a_rejected_command_tells_the_model_why_and_one_a_rule_allows_is_recorded_as_its_decision() {
    let allow = rule(Effect::Allow, GateKind::AgentCommand, &[], &["make test"]);
    let (mut state, mut log) = start_with(&agent("run_command"), vec![allow]);
    let (op, _) = last_op(&log);
    let calls = vec![
        call("c1", "run_command", json!({"argv": ["rm", "-rf", "build"]})),
        call("c2", "run_command", json!({"argv": ["make", "test"]})),
    ];
    input(
        &mut state,
        &mut log,
        Event::OperationSucceeded {
            op,
            result: reply("", calls),
        },
    );
    let (attempt, proposal, proposal_hash) = waiting(&state);
    assert!(matches!(&proposal, Proposal::RunCommand(c) if c.command.display() == "rm -rf build"));
    let decided = input(
        &mut state,
        &mut log,
        Event::ApprovalRejected {
            step: StepId::from("fix"),
            attempt,
            proposal_hash,
            by: "ann".into(),
            host: None,
            reason: "never delete the build".into(),
        },
    );
    // The step goes on: the rule's decision is recorded, then the allowed command runs.
    let [
        Event::ApprovalGranted(granted),
        Event::OperationStarted { request, .. },
    ] = decided.as_slice()
    else {
        panic!("a rule's decision and the command, not {decided:?}")
    };
    assert_eq!(granted.by, "policy");
    assert!(
        matches!(&granted.mode, DecisionMode::Rule { rule } if rule.contains("allow agent_command command make test")),
        "{granted:?}"
    );
    assert!(
        matches!(request, OperationRequest::RunCommand(c) if c.command.display() == "make test")
    );
    let (op, _) = last_op(&log);
    input(
        &mut state,
        &mut log,
        Event::OperationSucceeded {
            op,
            result: finished(0, "ok\n"),
        },
    );
    let told = told(&log);
    assert_eq!(told[0].0, "c1");
    assert_eq!(
        told[0].1,
        "error: a person rejected this: never delete the build"
    );
    assert!(
        told[1].1.starts_with("exit code 0") && told[1].1.contains("ok"),
        "{told:?}"
    );
    assert_eq!(
        state.step_state(&StepId::from("fix")).expect("step").status,
        StepStatus::Running
    );
    // The conversation a person reads: each call with what let it through or stopped it, and
    // what the model was told.
    let turns = &state
        .step_state(&StepId::from("fix"))
        .expect("step")
        .conversation;
    assert_eq!(turns.len(), 2, "{turns:?}");
    assert!(turns[0].replied && !turns[1].replied);
    assert_eq!((turns[0].input_tokens, turns[0].output_tokens), (10, 5));
    let [rejected, ran] = turns[0].calls.as_slice() else {
        panic!("two calls")
    };
    assert_eq!(
        rejected.gate,
        Some(CallGate::Rejected {
            by: "ann".into(),
            reason: "never delete the build".into()
        })
    );
    assert!(rejected.ops.is_empty());
    assert_eq!(rejected.result.as_deref(), Some(told[0].1.as_str()));
    assert!(matches!(&ran.gate, Some(CallGate::Rule { rule }) if rule.contains("make test")));
    assert_eq!(ran.ops.len(), 1);
    assert_eq!(ran.result.as_deref(), Some(told[1].1.as_str()));
    // Folded again from the log, it is the same.
    let folded = RunState::load(Arc::clone(state.workflow()), &log).expect("folds");
    assert_eq!(
        &folded
            .step_state(&StepId::from("fix"))
            .expect("step")
            .conversation,
        turns
    );
    replay(Arc::clone(state.workflow()), &log).expect("replay matches");
}

#[test]
fn a_question_is_answered_by_a_person_and_a_refused_read_names_its_rule_but_not_where() {
    let deny = rule(Effect::Deny, GateKind::ReadFile, &["secrets/**"], &[]);
    let (mut state, mut log) = start_with(&agent("ask_person, read_file"), vec![deny]);
    let (op, _) = last_op(&log);
    let calls = vec![
        call("c1", "read_file", json!({"path": "./secrets/key.txt"})),
        call("c2", "ask_person", json!({"question": "Which port?"})),
    ];
    input(
        &mut state,
        &mut log,
        Event::OperationSucceeded {
            op,
            result: reply("", calls),
        },
    );
    let (_, question, _) = waiting(&state);
    assert_eq!(
        question,
        Proposal::Question {
            question: "Which port?".into(),
            answer: None
        }
    );
    let answered = crate::run::edited_proposal(
        &question,
        None,
        crate::run::EditedProposal::Answer("8080".into()),
    )
    .expect("answers");
    let granted = approve(&state, Some(answered));
    input(&mut state, &mut log, granted);
    let told = told(&log);
    assert_eq!(
        told[0].1,
        "error: reading `secrets/key.txt` is refused by the workspace's policy (rule: deny read_file path secrets/**)"
    );
    assert_eq!(told[1], ("c2".to_string(), "8080".to_string()));
    replay(Arc::clone(state.workflow()), &log).expect("replay matches");
}

#[test]
fn an_edit_whose_file_changed_under_it_is_read_again_and_proposed_anew() {
    let (mut state, mut log) = start_with(&agent("write_file"), Vec::new());
    let (op, _) = last_op(&log);
    let write = call(
        "c1",
        "write_file",
        json!({"path": "notes.md", "content": "new\n"}),
    );
    input(
        &mut state,
        &mut log,
        Event::OperationSucceeded {
            op,
            result: reply("", vec![write]),
        },
    );
    let (op, _) = last_op(&log);
    let read = |content: &str, hash: &str| OperationResult::FileRead {
        exists: true,
        content: content.into(),
        hash: Some(hash.into()),
    };
    input(
        &mut state,
        &mut log,
        Event::OperationSucceeded {
            op,
            result: read("old\n", "h1"),
        },
    );
    let (attempt, _, proposal_hash) = waiting(&state);
    let decided = input(
        &mut state,
        &mut log,
        Event::ProposalVoided {
            step: StepId::from("fix"),
            attempt,
            proposal_hash,
            path: "notes.md".into(),
            found_hash: Some("h2".into()),
        },
    );
    assert!(
        matches!(
            decided.as_slice(),
            [Event::OperationStarted {
                request: OperationRequest::ReadFile {
                    missing_ok: true,
                    ..
                },
                ..
            }]
        ),
        "{decided:?}"
    );
    let (op, _) = last_op(&log);
    input(
        &mut state,
        &mut log,
        Event::OperationSucceeded {
            op,
            result: read("older\n", "h2"),
        },
    );
    let (_, proposal, _) = waiting(&state);
    assert!(
        matches!(&proposal, Proposal::EditFile { base_hash: Some(h), diff, .. } if h == "h2" && diff.contains("-older")),
        "{proposal:?}"
    );
    replay(Arc::clone(state.workflow()), &log).expect("replay matches");
}

#[test]
fn a_read_a_rule_allows_goes_with_the_reads_after_it_and_the_log_folds_again() {
    let allow = rule(Effect::Allow, GateKind::ReadFile, &["src/**"], &[]);
    let (mut state, mut log) = start_with(&agent("read_file, list_files"), vec![allow]);
    let (op, _) = last_op(&log);
    let calls = vec![
        call("r1", "read_file", json!({"path": "src/lib.rs"})),
        call("r2", "list_files", json!({})),
    ];
    let decided = input(
        &mut state,
        &mut log,
        Event::OperationSucceeded {
            op,
            result: reply("", calls),
        },
    );
    // The rule's decision, then both reads side by side.
    let [
        Event::ApprovalGranted(granted),
        Event::OperationStarted { request, .. },
    ] = decided.as_slice()
    else {
        panic!("{decided:?}")
    };
    assert!(matches!(granted.mode, DecisionMode::Rule { .. }));
    assert!(matches!(request, OperationRequest::ReadBatch { requests } if requests.len() == 2));
    RunState::load(Arc::clone(state.workflow()), &log).expect("the log folds again");
    replay(Arc::clone(state.workflow()), &log).expect("replay matches");
}

#[test]
fn an_edit_of_a_file_the_agent_may_not_read_asks_before_reading_it() {
    let ask = rule(Effect::Ask, GateKind::ReadFile, &["secrets/**"], &[]);
    let (mut state, mut log) = start_with(&agent("edit_file"), vec![ask]);
    let (op, _) = last_op(&log);
    let probe = call(
        "e1",
        "edit_file",
        json!({"path": "secrets/token", "old_text": "sk-a", "new_text": "x"}),
    );
    let decided = input(
        &mut state,
        &mut log,
        Event::OperationSucceeded {
            op,
            result: reply("", vec![probe]),
        },
    );
    // Nothing is read: a person is asked to let the file be read first.
    assert!(
        !decided
            .iter()
            .any(|e| matches!(e, Event::OperationStarted { .. })),
        "{decided:?}"
    );
    let (attempt, proposal, proposal_hash) = waiting(&state);
    assert_eq!(
        proposal,
        Proposal::ReadFile {
            path: "secrets/token".into()
        }
    );
    input(
        &mut state,
        &mut log,
        Event::ApprovalRejected {
            step: StepId::from("fix"),
            attempt,
            proposal_hash,
            by: "ann".into(),
            host: None,
            reason: "stay out of secrets".into(),
        },
    );
    assert_eq!(
        told(&log)[0].1,
        "error: a person rejected this: stay out of secrets"
    );
    replay(Arc::clone(state.workflow()), &log).expect("replay matches");
}

#[test]
fn a_command_a_person_changed_is_told_to_the_model_as_changed() {
    let (mut state, mut log) = start_with(&agent("run_command"), Vec::new());
    let (op, _) = last_op(&log);
    let test_all = call(
        "c1",
        "run_command",
        json!({"argv": ["cargo", "test", "--all"]}),
    );
    input(
        &mut state,
        &mut log,
        Event::OperationSucceeded {
            op,
            result: reply("", vec![test_all]),
        },
    );
    let (_, proposal, _) = waiting(&state);
    let changed = crate::run::edited_proposal(
        &proposal,
        None,
        crate::run::EditedProposal::Command(crate::operation::CommandLine::Argv(vec![
            "cargo".into(),
            "test".into(),
            "-p".into(),
            "foo".into(),
        ])),
    )
    .expect("edits");
    let granted = approve(&state, Some(changed));
    input(&mut state, &mut log, granted);
    let (op, request) = last_op(&log);
    assert!(
        matches!(&request, OperationRequest::RunCommand(c) if c.command.display() == "cargo test -p foo")
    );
    input(
        &mut state,
        &mut log,
        Event::OperationSucceeded {
            op,
            result: finished(0, "ok\n"),
        },
    );
    let told = told(&log);
    assert!(
        told[0].1.starts_with("a person changed your command before approving it; it ran `cargo test -p foo` instead\nexit code 0"),
        "{told:?}"
    );
    replay(Arc::clone(state.workflow()), &log).expect("replay matches");
}

#[test]
fn a_refusal_that_repeats_a_huge_argument_is_cut_like_any_tool_result() {
    let deny = rule(Effect::Deny, GateKind::ReadFile, &["secrets/**"], &[]);
    let (mut state, mut log) = start_with(&agent("read_file"), vec![deny]);
    let (op, _) = last_op(&log);
    let path = format!("secrets/{}", "a/".repeat(30_000));
    let calls = vec![call("c1", "read_file", json!({ "path": path }))];
    input(
        &mut state,
        &mut log,
        Event::OperationSucceeded {
            op,
            result: reply("", calls),
        },
    );
    let told = told(&log);
    let limit = crate::agent_tools::TOOL_RESULT_MAX_BYTES;
    assert!(told[0].1.starts_with("error: "), "{}", &told[0].1[..80]);
    // Cut to the cap first (then, in this small context, shortened further, saying from what).
    let whole: usize = told[0]
        .1
        .split_once(" bytes of this result")
        .and_then(|(before, _)| before.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("the shortening's note");
    assert!(
        whole <= limit + 200,
        "{whole} bytes before the context's cut"
    );
    replay(Arc::clone(state.workflow()), &log).expect("replay matches");
}
