//! Telemetry: a run exported as one OpenTelemetry trace over OTLP/HTTP to a real receiver on
//! loopback (protobuf decoded with the protocol's own types): the run, its steps, the model
//! call with the GenAI conventions' attributes and its cost, the wait for a person apart; and
//! with the collector down while the run ran, every span still arrives, once, afterwards.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;

use crate::fake_llm::{FakeProvider, openai_reply};
use crate::llm::env_with_provider;
use crate::otlp_receiver::{Received, Receiver};
use crate::support::Env;

const ASK_THEN_WRITE: &str = "name: traced
steps:
  - id: ask
    type: prompt
    model: m
    prompt: Name a colour.
    max_tokens: 20
  - id: write
    needs: [ask]
    type: edit_file
    path: colour.txt
    content: \"${steps.ask.output.text}\\n\"
";

/// Points the user's settings at a collector.
fn export_to(env: &Env, url: &str) {
    let path = env.root().join("config/stepwise/settings.yaml");
    let mut settings = std::fs::read_to_string(&path).unwrap_or_default();
    settings.push_str(&format!("telemetry:\n  otlp_endpoint: {url}\n"));
    std::fs::write(&path, settings).expect("write the settings");
}

fn named<'a>(spans: &'a [Received], name: &str) -> &'a Received {
    spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
        panic!(
            "no span {name} in {:#?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        )
    })
}

fn run_ended(spans: &[Received]) -> bool {
    spans
        .iter()
        .any(|s| s.name.starts_with("run ") && s.attributes.contains_key("stepwise.status"))
}

/// Runs the workflow (a model call, then an edit a person approves) to its end.
fn run_to_the_end(env: &Env) -> String {
    let wf = env.workflow("traced.yaml", ASK_THEN_WRITE);
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 3, "{out}");
    let run = out.run_id();
    let approved = env.stepwise(&["approve", &run, "write"]);
    assert_eq!(approved.code, 0, "{approved}");
    run
}

#[test]
fn a_run_with_a_model_call_and_an_approval_is_one_trace_of_spans() {
    let receiver = Receiver::start(0);
    let model = FakeProvider::start(vec![openai_reply("teal", 12, 5)]);
    let env = env_with_provider("openai", &model.base_url());
    export_to(&env, &receiver.url());
    let run = run_to_the_end(&env);

    let spans = receiver.wait_for(Duration::from_secs(20), run_ended);
    let trace = run.replace('-', "");
    assert!(
        spans.iter().all(|s| s.trace_id == trace),
        "one trace, the run's: {spans:#?}"
    );
    assert!(
        spans
            .iter()
            .all(|s| s.service.as_deref() == Some("stepwise"))
    );
    assert!(
        spans
            .iter()
            .all(|s| s.attributes["stepwise.run_id"] == json!(run))
    );
    assert!(
        spans
            .iter()
            .all(|s| s.attributes["stepwise.correlation_id"] == json!(run))
    );
    let ids: BTreeSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    assert_eq!(ids.len(), spans.len(), "a span arrived twice: {spans:#?}");

    let root = named(&spans, "run traced");
    assert_eq!(root.parent, "");
    assert_eq!(root.attributes["stepwise.status"], "succeeded");
    assert_eq!(root.status, 1, "ok");
    assert_eq!(root.attributes["stepwise.workflow"], "traced");
    let ask = named(&spans, "step ask");
    let write = named(&spans, "step write");
    assert_eq!(ask.parent, root.span_id);
    assert_eq!(write.parent, root.span_id);
    assert_eq!(ask.attributes["stepwise.step.type"], "prompt");
    assert!(ask.end_ns <= write.start_ns, "write starts after ask ends");

    // The model call: a client span with the GenAI conventions' attributes and its cost.
    let chat = named(&spans, "chat tiny-1");
    assert_eq!(chat.parent, ask.span_id);
    assert_eq!(chat.kind, 3);
    assert_eq!(chat.attributes["gen_ai.operation.name"], "chat");
    assert_eq!(chat.attributes["gen_ai.request.model"], "tiny-1");
    assert_eq!(chat.attributes["gen_ai.usage.input_tokens"], 12);
    assert_eq!(chat.attributes["gen_ai.usage.output_tokens"], 5);
    // $1 per million input tokens and $2 per million output: 12 + 10 micro-dollars.
    assert_eq!(chat.attributes["stepwise.cost_micro_usd"], 22);

    // The wait for a person, apart, inside its step: asked, then approved by the user.
    let wait = named(&spans, "await approval write");
    assert_eq!(wait.parent, write.span_id);
    assert_eq!(wait.attributes["stepwise.decision"], "approved");
    assert_eq!(wait.attributes["stepwise.approval.kind"], "edit_file");
    assert_eq!(wait.attributes["stepwise.decision.mode"], "manual");
    assert!(wait.attributes["stepwise.decided_by"].is_string());
    assert!(wait.start_ns >= write.start_ns && wait.end_ns <= write.end_ns);
    let edit = named(&spans, "write_file");
    assert_eq!(edit.parent, write.span_id);
    assert!(
        edit.start_ns >= wait.end_ns,
        "the edit is performed after the approval"
    );
}

#[test]
fn with_the_collector_down_during_the_run_every_span_arrives_once_afterwards() {
    // A port nobody listens on while the run runs.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let model = FakeProvider::start(vec![openai_reply("teal", 12, 5)]);
    let env = env_with_provider("openai", &model.base_url());
    export_to(&env, &format!("http://127.0.0.1:{port}"));
    let run = run_to_the_end(&env);
    assert_eq!(
        env.read("colour.txt").as_deref(),
        Some("teal\n"),
        "the run did its work"
    );

    // The collector comes up; the next process that exports sends what is left, from where
    // the log says export stopped.
    let receiver = Receiver::start(port);
    let later = env.stepwise(&["resume"]);
    assert_eq!(later.code, 0, "{later}");
    let spans = receiver.wait_for(Duration::from_secs(20), run_ended);
    let names: BTreeSet<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    for wanted in [
        "run traced",
        "step ask",
        "chat tiny-1",
        "step write",
        "await approval write",
        "write_file",
    ] {
        assert!(names.contains(wanted), "{wanted} missing from {names:?}");
    }
    // Once each, however many processes exported since.
    let again = env.stepwise(&["resume"]);
    assert_eq!(again.code, 0, "{again}");
    std::thread::sleep(Duration::from_millis(500));
    let spans = receiver.spans();
    let ids: BTreeSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    assert_eq!(ids.len(), spans.len(), "a span arrived twice: {spans:#?}");
    assert!(spans.iter().all(|s| s.trace_id == run.replace('-', "")));
}

#[test]
fn each_attempt_of_a_retried_step_is_a_span_of_its_own() {
    let receiver = Receiver::start(0);
    let env = Env::new();
    env.allow_everything();
    std::fs::write(
        env.root().join("config/stepwise/settings.yaml"),
        format!("telemetry:\n  otlp_endpoint: {}\n", receiver.url()),
    )
    .expect("write the settings");
    let wf = env.workflow(
        "flaky.yaml",
        "name: flaky\nsteps:\n  - id: flaky\n    type: run_command\n    command: \"test -f marker || { touch marker; exit 1; }\"\n    retry: {max_attempts: 2, backoff: 10ms}\n",
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 0, "{out}");
    let spans = receiver.wait_for(Duration::from_secs(20), run_ended);
    let attempts: Vec<&Received> = spans.iter().filter(|s| s.name == "step flaky").collect();
    assert_eq!(attempts.len(), 2, "{spans:#?}");
    let first = attempts
        .iter()
        .find(|s| s.attributes["stepwise.attempt"] == 1)
        .expect("attempt 1");
    let second = attempts
        .iter()
        .find(|s| s.attributes["stepwise.attempt"] == 2)
        .expect("attempt 2");
    assert_eq!(first.attributes["stepwise.status"], "retrying");
    assert_eq!(first.status, 2, "the failed attempt is an error");
    assert_eq!(second.attributes["stepwise.status"], "succeeded");
    assert!(first.end_ns <= second.start_ns);
    assert_ne!(first.span_id, second.span_id);
}
