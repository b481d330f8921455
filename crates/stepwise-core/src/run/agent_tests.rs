//! Agent steps in the state machine alone: a turn's calls performed in order, a log stopped
//! mid-turn folded again deciding exactly what the first state decided, and replay.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;

use super::{RunState, RunStatus, StepStatus, replay};
use crate::event::{Event, Resolution, RunStarted};
use crate::ids::{EventSeq, StepId};
use crate::llm::{LlmReply, ModelSpec, Price, ProviderKind, Role, TokenUsage, ToolCall};
use crate::operation::{OperationRequest, OperationResult, ReadOutcome};
use crate::policy::{Effect, GateKind, RuleSpec};
use crate::workflow::parse_workflow;

const AGENT: &str = "name: t\nsteps:\n  - id: look\n    type: agent\n    model: m\n    instructions: Read a.txt and b.txt.\n    max_turns: 3\n";

fn start() -> (RunState, Vec<(EventSeq, Event)>) {
    start_with(AGENT, Vec::new())
}

pub(super) fn start_with(yaml: &str, policy: Vec<RuleSpec>) -> (RunState, Vec<(EventSeq, Event)>) {
    let workflow = Arc::new(parse_workflow("t.yaml", yaml).unwrap_or_else(|e| panic!("{e}")));
    let mut models = BTreeMap::new();
    models.insert(
        "m".to_string(),
        ModelSpec {
            provider: "p".into(),
            kind: ProviderKind::Openai,
            base_url: None,
            model: "tiny".into(),
            api_key_env: None,
            price: Price::default(),
            stream: true,
            timeout_s: None,
            idle_timeout_s: None,
            context_tokens: None,
        },
    );
    let started = RunStarted {
        run_id: "run".into(),
        workflow_name: "t".into(),
        workflow_path: "t.yaml".into(),
        workflow_hash: workflow.source_hash.clone(),
        workflow_source: yaml.into(),
        workspace: "/ws".into(),
        inputs: json!({}),
        trigger: "test".into(),
        started_by: "tester".into(),
        max_parallel: 4,
        policy,
        approvers: None,
        host: None,
        models,
        budget: None,
        checkpoint: Default::default(),
        pauses: Default::default(),
        fork: None,
        subworkflows: Default::default(),
        step_types: Vec::new(),
        parent: None,
        cause: None,
    };
    let mut state = RunState::new(workflow, started.clone()).expect("state");
    let mut log = vec![(EventSeq::FIRST, Event::RunStarted(started))];
    let decided = state.advance().expect("decides");
    record(&mut log, decided);
    (state, log)
}

fn record(log: &mut Vec<(EventSeq, Event)>, events: Vec<Event>) -> Vec<Event> {
    for event in &events {
        let seq = EventSeq::new(log.len() as u64 + 1);
        log.push((seq, event.clone()));
    }
    events
}

pub(super) fn input(
    state: &mut RunState,
    log: &mut Vec<(EventSeq, Event)>,
    event: Event,
) -> Vec<Event> {
    let seq = state.last_seq().next();
    state.apply(seq, &event).expect("applies");
    log.push((seq, event));
    let decided = state.advance().expect("decides");
    record(log, decided)
}

pub(super) fn last_op(log: &[(EventSeq, Event)]) -> (EventSeq, OperationRequest) {
    log.iter()
        .rev()
        .find_map(|(seq, e)| match e {
            Event::OperationStarted { request, .. } => Some((*seq, request.clone())),
            _ => None,
        })
        .expect("an operation")
}

pub(super) fn reply(text: &str, calls: Vec<ToolCall>) -> OperationResult {
    OperationResult::LlmReplied(Box::new(LlmReply {
        text: text.into(),
        finish_reason: "stop".into(),
        usage: TokenUsage {
            input_tokens: 10,
            output_tokens: 5,
        },
        latency_ms: 1,
        cost_micro_usd: 0,
        simulated: false,
        after_crash: false,
        attempts: 1,
        usage_estimated: false,
        tool_calls: calls,
    }))
}

fn read(id: &str, path: &str) -> ToolCall {
    ToolCall {
        id: id.into(),
        name: "read_file".into(),
        arguments: json!({ "path": path }),
        signature: None,
        malformed: None,
    }
}

fn file(content: &str) -> OperationResult {
    OperationResult::FileRead {
        exists: true,
        content: content.into(),
        hash: None,
    }
}

#[test]
fn a_log_stopped_mid_turn_is_folded_again_into_the_same_next_decisions() {
    let (mut state, mut log) = start();
    let (op, request) = last_op(&log);
    let OperationRequest::LlmCall(first) = request else {
        panic!("the first move is a model call")
    };
    assert_eq!(first.tools[0].name, "read_file");

    let calls = vec![read("c1", "a.txt"), read("c2", "b.txt"), read("c3", "../x")];
    let decided = input(
        &mut state,
        &mut log,
        Event::OperationSucceeded {
            op,
            result: reply("Reading.", calls),
        },
    );
    // The two reads of the turn are performed side by side, as one batch; `../x` is refused.
    let (op_batch, request) = last_op(&log);
    assert_eq!(decided.len(), 1);
    assert_eq!(
        request,
        OperationRequest::ReadBatch {
            requests: vec![
                OperationRequest::ReadFile {
                    path: "a.txt".into(),
                    missing_ok: false
                },
                OperationRequest::ReadFile {
                    path: "b.txt".into(),
                    missing_ok: false
                },
            ]
        }
    );

    // The process stops here; another folds the log and goes on from it.
    let mut folded = RunState::load(Arc::clone(state.workflow()), &log).expect("folds");
    assert!(
        folded.advance().expect("decides").is_empty(),
        "the batch is in flight"
    );
    let answer = Event::OperationSucceeded {
        op: op_batch,
        result: OperationResult::ReadsDone {
            outcomes: vec![
                ReadOutcome::Succeeded {
                    result: Box::new(file("A")),
                },
                ReadOutcome::Succeeded {
                    result: Box::new(file("B")),
                },
            ],
        },
    };
    let mut log_folded = log.clone();
    let from_folded = input(&mut folded, &mut log_folded, answer.clone());
    let from_first = input(&mut state, &mut log, answer);
    assert_eq!(from_first, from_folded);
    let turns = &state
        .step_state(&StepId::from("look"))
        .expect("step")
        .conversation;
    assert_eq!(
        turns[0].calls[0].ops, turns[0].calls[1].ops,
        "one operation for both"
    );
    assert!(turns[0].calls[2].ops.is_empty());
    let (op, request) = last_op(&log);
    let OperationRequest::LlmCall(next) = request else {
        panic!("back to the model")
    };
    let told: Vec<(&str, &str)> = next
        .messages
        .iter()
        .filter(|m| m.role == Role::Tool)
        .map(|m| (m.tool_call_id.as_deref().unwrap_or(""), m.content.as_str()))
        .collect();
    assert_eq!(told[0], ("c1", "A"));
    assert_eq!(told[1], ("c2", "B"));
    assert_eq!(told[2].0, "c3");
    assert!(told[2].1.contains("`..`"), "{told:?}");
    assert_eq!(next.messages[1].tool_calls.len(), 3);

    input(
        &mut state,
        &mut log,
        Event::OperationSucceeded {
            op,
            result: reply("A and B.", Vec::new()),
        },
    );
    let look = state.step_state(&StepId::from("look")).expect("the step");
    assert_eq!(look.status, StepStatus::Succeeded);
    assert_eq!(look.output.as_ref().expect("output")["text"], "A and B.");
    assert_eq!(state.status(), RunStatus::Succeeded);
    replay(Arc::clone(state.workflow()), &log).expect("replay matches");
}

#[test]
fn a_log_whose_tool_operation_is_not_the_next_call_is_refused() {
    let (mut state, mut log) = start();
    let (op, _) = last_op(&log);
    input(
        &mut state,
        &mut log,
        Event::OperationSucceeded {
            op,
            result: reply("", vec![read("c1", "a.txt")]),
        },
    );
    // Another version planned the call otherwise: its log cannot be taken as this one's.
    let mut other = log.clone();
    let last = other.len() - 1;
    other[last].1 = Event::OperationStarted {
        step: StepId::from("look"),
        attempt: 1,
        request: OperationRequest::ReadFile {
            path: "z.txt".into(),
            missing_ok: false,
        },
    };
    let error = RunState::load(Arc::clone(state.workflow()), &other).unwrap_err();
    assert!(error.to_string().contains("next tool call"), "{error}");
}

#[test]
fn an_agents_command_cut_off_by_a_crash_is_settled_by_a_person_and_the_agent_goes_on() {
    let allow = RuleSpec {
        effect: Effect::Allow,
        kind: Some(GateKind::AgentCommand),
        paths: vec![],
        commands: vec!["make test".into()],
        env: vec![],
        pass_env: vec![],
        unchecked_shell: false,
        arguments: Default::default(),
        source: "test policy, rule 1".into(),
    };
    let (mut state, mut log) = start_with(
        "name: t\nsteps:\n  - id: look\n    type: agent\n    model: m\n    instructions: Test it.\n    tools: [run_command]\n",
        vec![allow],
    );
    let (op, _) = last_op(&log);
    let call = ToolCall {
        id: "c1".into(),
        name: "run_command".into(),
        arguments: json!({"argv": ["make", "test"]}),
        signature: None,
        malformed: None,
    };
    input(
        &mut state,
        &mut log,
        Event::OperationSucceeded {
            op,
            result: reply("", vec![call]),
        },
    );
    let (op, request) = last_op(&log);
    assert!(matches!(request, OperationRequest::RunCommand(_)));
    // The engine stopped while it ran: a person is asked, and says it was done.
    let waiting = input(&mut state, &mut log, Event::OperationOutcomeUnknown { op });
    assert!(waiting.is_empty(), "{waiting:?}");
    assert_eq!(
        state
            .step_state(&StepId::from("look"))
            .expect("step")
            .status,
        StepStatus::OutcomeUnknown
    );
    input(
        &mut state,
        &mut log,
        Event::OperationResolved {
            op,
            resolution: Resolution::MarkDone,
            by: "ann".into(),
        },
    );
    let (_, request) = last_op(&log);
    let OperationRequest::LlmCall(next) = request else {
        panic!("the agent goes on")
    };
    let told = next.messages.last().expect("a result");
    assert_eq!(told.role, Role::Tool);
    assert!(
        told.content.contains("a person says it was done") && !told.content.contains("ann"),
        "{}",
        told.content
    );
    replay(Arc::clone(state.workflow()), &log).expect("replay matches");
}
