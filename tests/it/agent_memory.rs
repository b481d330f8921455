//! Agent memory (`memory: NAME`): an agent remembers in one run and recalls in the next, each
//! read and write a recorded operation; `stepwise memory` lists and forgets entries; replay of
//! a run that recalled does not depend on what the memory holds now.

use serde_json::json;

use crate::agent::{calls, messages};
use crate::fake_llm::{FakeProvider, openai_reply};
use crate::llm::env_with_provider;
use crate::support::{of_type, step};

const AGENT: &str = "name: learn
inputs:
  task: {type: string}
steps:
  - id: work
    type: agent
    model: m
    instructions: ${inputs.task}
    tools: [read_file]
    memory: project-notes
";

#[test]
fn an_agent_remembers_in_one_run_and_recalls_in_the_next_and_replay_needs_no_memory() {
    let server = FakeProvider::start(vec![
        // Run 1: remembers a fact, then answers.
        calls(&[(
            "c1",
            "remember",
            json!({"key": "build-command", "text": "Build with `just build`, never with make."}),
        )]),
        openai_reply("Noted.", 20, 3),
        // Run 2: recalls it, then answers with it.
        calls(&[("c2", "recall", json!({"query": "how do we BUILD this?"}))]),
        openai_reply("Use `just build`.", 30, 5),
    ]);
    let env = env_with_provider("openai", &server.base_url());
    let wf = env.workflow("learn.yaml", AGENT);

    let first = env.run(&wf, &["--input", "task=Remember how we build."]);
    assert_eq!(first.code, 0, "{first}");
    let seen = server.seen();
    let tools: Vec<&str> = seen[0].body["tools"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|t| t["function"]["name"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(tools, ["read_file", "remember", "recall"]);
    assert_eq!(messages(&server, 1)[2]["content"], "remembered");

    let listed = env.stepwise(&["memory", "project-notes", "--json"]).json();
    assert_eq!(listed[0]["key"], "build-command");
    assert_eq!(
        listed[0]["text"],
        "Build with `just build`, never with make."
    );
    assert_eq!(listed[0]["run_id"], first.run_id());
    assert_eq!(listed[0]["step"], "work");

    let second = env.run(&wf, &["--input", "task=How do we build?"]);
    assert_eq!(second.code, 0, "{second}");
    let run = second.run_id();
    assert_eq!(
        messages(&server, 3)[2]["content"],
        "[build-command] Build with `just build`, never with make."
    );
    assert_eq!(
        step(&env.show(&run), "work")["output"]["text"],
        "Use `just build`."
    );
    // The recall is an operation of the run, its answer recorded.
    let events = env.events(&run);
    let recalled = of_type(&events, "OperationSucceeded")
        .into_iter()
        .find(|e| e["data"]["result"]["kind"] == "recalled")
        .cloned()
        .expect("the recall's result is in the log");
    assert_eq!(
        recalled["data"]["result"]["entries"][0]["key"],
        "build-command"
    );

    // Forgotten, and the memory changed: replay still sees what the agent saw.
    let out = env.stepwise(&["memory", "project-notes", "--forget", "build-command"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("forgot `build-command`"), "{out}");
    assert_eq!(
        env.stepwise(&["memory", "project-notes", "--json"]).json(),
        json!([])
    );
    let out = env.stepwise(&["memory", "project-notes", "--forget", "build-command"]);
    assert_eq!(out.code, 1, "{out}");
    drop(server);
    let replayed = env.stepwise(&["replay", &run, "--json"]);
    assert_eq!(replayed.code, 0, "{replayed}");
    assert_eq!(replayed.json()["matches"], true, "{replayed}");
}

#[test]
fn memory_tools_come_only_with_a_memory_and_bad_calls_are_told_to_the_model() {
    let env = env_with_provider("openai", "http://127.0.0.1:9");
    let wf = env.workflow(
        "bad.yaml",
        "name: bad\nsteps:\n  - id: a\n    type: agent\n    model: m\n    instructions: x\n    tools: [read_file, remember]\n  - id: b\n    type: agent\n    model: m\n    instructions: x\n    memory: has spaces\n",
    );
    let out = env.stepwise(&["validate", wf.to_str().unwrap()]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stdout
            .contains(":7:5: step `a`: `remember` comes with `memory: NAME`"),
        "{out}"
    );
    assert!(
        out.stdout
            .contains(":12:5: step `b`: `has spaces` is not a memory's name"),
        "{out}"
    );

    let server = FakeProvider::start(vec![
        calls(&[
            ("c1", "remember", json!({"key": "", "text": "x"})),
            (
                "c2",
                "remember",
                json!({"key": "k", "text": "y".repeat(9000)}),
            ),
            ("c3", "recall", json!({"query": 12})),
        ]),
        openai_reply("Done.", 20, 3),
    ]);
    let env = env_with_provider("openai", &server.base_url());
    let wf = env.workflow("learn.yaml", AGENT);
    let out = env.run(&wf, &["--input", "task=t"]);
    assert_eq!(out.code, 0, "{out}");
    let told: Vec<String> = messages(&server, 1)[2..5]
        .iter()
        .map(|m| m["content"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        told,
        [
            "error: `key` must be 1 to 200 characters on one line",
            "error: `text` must be 1 byte to 8 KiB",
            "error: `query` must be a string",
        ]
    );
    assert_eq!(env.stepwise(&["memory", "--json"]).json(), json!([]));
}
