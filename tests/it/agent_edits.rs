//! Agents that change things, against a provider on loopback: `agent-fix-tests.yaml` end to
//! end (edits shown as diffs and approved, commands approved, a structured answer), an edit a
//! person rejects with a reason the model is told, an edit whose file changed while it waited,
//! a question a person answers, and a search. Each run replays without the server.

use serde_json::{Value, json};

use crate::agent::{calls, messages};
use crate::examples::{copy_dir, example, workflows_dir};
use crate::fake_llm::{FakeProvider, openai_reply};
use crate::llm::env_with_provider;
use crate::llm_examples::env_with_local_settings;
use crate::support::{Env, of_type, step};

/// What the model was told of each call, in request `n`.
fn told(server: &FakeProvider, n: usize) -> Vec<String> {
    messages(server, n)
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The proposal the only waiting approval of `run` shows.
fn waiting(env: &Env, run: &str) -> Value {
    let waiting: Vec<Value> = env
        .approvals()
        .into_iter()
        .filter(|a| a["run_id"] == run)
        .collect();
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    waiting[0]["approval"].clone()
}

/// Replays `run` and checks the server was asked nothing more.
fn replays_offline(env: &Env, server: &FakeProvider, run: &str) {
    let before = server.seen().len();
    let replayed = env.stepwise(&["replay", run]);
    assert_eq!(replayed.code, 0, "{replayed}");
    assert_eq!(server.seen().len(), before, "replay asked the model");
}

const FACTORIAL: &str = "def factorial(n):\n    \"\"\"Return n! for a non-negative integer n.\"\"\"\n    if n < 0:\n        raise ValueError(\"negative\")\n    result = 1\n    for k in range(2, n + 1):\n        result *= k\n    return result";

#[test]
fn agent_fix_tests_edits_the_calculator_with_approval_until_its_tests_pass() {
    let unittest = json!({"argv": ["python3", "-m", "unittest", "-q"]});
    let server = FakeProvider::start(vec![
        calls(&[("t1", "run_command", unittest.clone())]),
        calls(&[
            ("r1", "read_file", json!({"path": "test_calc.py"})),
            ("r2", "read_file", json!({"path": "calc.py"})),
        ]),
        calls(&[(
            "e1",
            "edit_file",
            json!({"path": "calc.py", "old_text": "# TODO: factorial", "new_text": FACTORIAL}),
        )]),
        calls(&[("t2", "run_command", unittest)]),
        openai_reply(
            "{\"fixed\": true, \"summary\": \"Added factorial to calc.py.\"}",
            200,
            20,
        ),
    ]);
    let env = env_with_local_settings(&server.base_url(), "k-local");
    copy_dir(&workflows_dir().join("demo"), &env.ws);
    // The tests may run without asking; edits still ask.
    env.workspace_policy("  - allow: agent_command\n    command: \"python3 -m unittest *\"\n");
    let out = env.run(&example("agent-fix-tests.yaml"), &[]);
    assert_eq!(out.code, 3, "the edit waits: {out}");
    let run = out.run_id();
    let failing = told(&server, 1);
    assert!(
        failing[0].starts_with("exit code 1") && failing[0].contains("factorial"),
        "the model is told the tests fail: {failing:?}"
    );
    let approval = waiting(&env, &run);
    assert_eq!(approval["proposal"]["kind"], "edit_file");
    let diff = approval["proposal"]["diff"].as_str().unwrap_or("");
    assert!(
        diff.contains("-# TODO: factorial") && diff.contains("+def factorial(n):"),
        "{diff}"
    );
    assert_eq!(
        env.read("calc.py").map(|c| c.contains("def factorial")),
        Some(false),
        "nothing is written before the approval"
    );
    let out = env.approve(&run, "fix", &[]);
    assert_eq!(out.code, 0, "{out}");

    assert!(
        env.read("calc.py")
            .unwrap_or_default()
            .contains("def factorial(n):")
    );
    let after = told(&server, 4);
    assert_eq!(after[3], "`calc.py` was written as proposed", "{after:?}");
    assert!(after[4].starts_with("exit code 0"), "{after:?}");
    let show = env.show(&run);
    let fix = step(&show, "fix");
    assert_eq!(fix["status"], "succeeded");
    assert_eq!(fix["output"]["fixed"], true, "{fix}");
    // Every decision is in the log: the rule that let each test run go, the person who
    // approved the edit, with the hash of what they approved.
    let events = env.events(&run);
    let decisions: Vec<(String, String)> = of_type(&events, "ApprovalGranted")
        .iter()
        .map(|e| {
            (
                e["data"]["mode"]["kind"].as_str().unwrap_or("").to_string(),
                e["data"]["by"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(decisions.len(), 3, "{decisions:?}");
    // The turn's two reads were performed side by side, as one operation answering each.
    let batches: Vec<_> = of_type(&events, "OperationStarted")
        .into_iter()
        .filter(|e| e["data"]["request"]["kind"] == "read_batch")
        .collect();
    assert_eq!(batches.len(), 1);
    assert_eq!(
        batches[0]["data"]["request"]["requests"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert_eq!(decisions[0], ("rule".to_string(), "policy".to_string()));
    assert_eq!(decisions[1].0, "manual");
    assert_eq!(decisions[2], ("rule".to_string(), "policy".to_string()));
    replays_offline(&env, &server, &run);
    // A changed task is a divergence at the step.
    let changed = std::fs::read_to_string(example("agent-fix-tests.yaml"))
        .expect("the example")
        .replace("until they pass", "until they all pass");
    let changed = env.workflow("changed.yaml", &changed);
    let out = env.stepwise(&[
        "replay",
        &run,
        "--workflow",
        changed.to_str().expect("utf-8"),
    ]);
    assert_ne!(out.code, 0, "{out}");
    assert!(
        out.stdout.contains("diverged at event 3, step `fix`"),
        "{out}"
    );
}

#[test]
fn a_rejected_edit_tells_the_model_why_and_a_stale_one_is_proposed_again() {
    let edit = |id: &str, new: &str| {
        calls(&[(
            id,
            "edit_file",
            json!({"path": "notes.txt", "old_text": "milk", "new_text": new}),
        )])
    };
    let server = FakeProvider::start(vec![
        edit("e1", "beer"),
        edit("e2", "oat milk"),
        openai_reply("Done.", 50, 8),
    ]);
    let env = env_with_provider("openai", &server.base_url());
    env.write("notes.txt", "buy milk\n");
    let wf = env.workflow(
        "agent.yaml",
        "name: agent\nsteps:\n  - id: shop\n    type: agent\n    model: m\n    instructions: Improve the list.\n    tools: [edit_file]\n",
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 3, "{out}");
    let run = out.run_id();
    let out = env.stepwise(&["reject", &run, "shop", "--reason", "no alcohol", "--json"]);
    assert_eq!(out.code, 3, "the next edit waits: {out}");
    assert_eq!(
        told(&server, 1),
        ["error: a person rejected this: no alcohol"]
    );

    // The file changes while the second edit waits: approving the stale diff is refused, and
    // the edit is proposed again against the file as it is now.
    let first = waiting(&env, &run);
    env.write("notes.txt", "buy milk\nbuy bread\n");
    let out = env.approve(&run, "shop", &[]);
    assert_ne!(out.code, 0, "{out}");
    assert!(out.to_string().contains("changed since"), "{out}");
    let again = waiting(&env, &run);
    assert_ne!(again["proposal_hash"], first["proposal_hash"]);
    assert!(
        again["proposal"]["diff"]
            .as_str()
            .unwrap_or("")
            .contains(" buy bread"),
        "{again}"
    );
    let out = env.approve(&run, "shop", &[]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(
        env.read("notes.txt").as_deref(),
        Some("buy oat milk\nbuy bread\n")
    );
    assert_eq!(server.seen().len(), 3, "each turn asked once");
    replays_offline(&env, &server, &run);
}

#[test]
fn a_question_is_answered_from_the_cli_and_a_search_finds_lines_it_may_read() {
    let server = FakeProvider::start(vec![
        calls(&[(
            "s1",
            "search",
            json!({"pattern": "port\\s*=", "glob": "**/*.cfg"}),
        )]),
        calls(&[(
            "q1",
            "ask_person",
            json!({"question": "Which port should it use?"}),
        )]),
        openai_reply("Port 8080.", 50, 8),
    ]);
    let env = env_with_provider("openai", &server.base_url());
    std::fs::write(
        &env.user_policy,
        "rules:\n  - deny: read_file\n    path: \"secrets/**\"\n",
    )
    .expect("write the user policy");
    env.write("app/server.cfg", "host = a\nport = 80\n");
    env.write("secrets/prod.cfg", "port = 9999 # TOP-SECRET\n");
    let wf = env.workflow(
        "agent.yaml",
        "name: agent\nsteps:\n  - id: ask\n    type: agent\n    model: m\n    instructions: Pick a port.\n",
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 3, "the question waits: {out}");
    assert_eq!(out.json()["waiting"][0]["waits_for"], "answer", "{out}");
    let run = out.run_id();
    assert_eq!(told(&server, 1), ["app/server.cfg:2: port = 80\n"]);
    let listed = env.stepwise(&["approvals"]);
    assert!(
        listed.stdout.contains("> Which port should it use?")
            && listed.stdout.contains("stepwise answer"),
        "{listed}"
    );
    // Approving without an answer is refused, and loses nothing.
    let out = env.approve(&run, "ask", &[]);
    assert_ne!(out.code, 0, "{out}");
    assert!(out.to_string().contains("answer it"), "{out}");
    let out = env.stepwise(&["answer", &run, "ask", "--text", "8080, please"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("✓ ask answered by"), "{out}");
    assert_eq!(told(&server, 2)[1], "8080, please");
    assert_eq!(step(&env.show(&run), "ask")["output"]["text"], "Port 8080.");
    for request in server.seen() {
        assert!(!request.body.to_string().contains("TOP-SECRET"));
    }
    let events = env.events(&run);
    let searched = of_type(&events, "OperationSucceeded")
        .iter()
        .filter(|e| e["data"]["result"]["kind"] == "files_searched")
        .count();
    assert_eq!(searched, 1);
    assert!(
        !serde_json::to_string(&events)
            .unwrap_or_default()
            .contains("TOP-SECRET"),
        "a file the agent may not read is not even searched"
    );
    replays_offline(&env, &server, &run);
}

#[test]
fn a_turn_that_could_cross_the_budget_waits_as_a_budget_proposal_between_turns() {
    // The first turn reads a file and costs $0.00102 (1000 tokens in at $1/M, 10 out at $2/M).
    let mut expensive = calls(&[("r1", "read_file", json!({"path": "notes.txt"}))]);
    let mut body: Value = serde_json::from_str(&expensive.body).expect("a JSON reply");
    body["usage"] = json!({"prompt_tokens": 1000, "completion_tokens": 10, "total_tokens": 1010});
    expensive.body = body.to_string();
    let server = FakeProvider::start(vec![expensive, openai_reply("Milk.", 50, 8)]);
    let env = env_with_provider("openai", &server.base_url());
    env.write("notes.txt", "buy milk\n");
    // Each turn may cost up to about $0.00205 (its prompt and all 1000 of its tokens): the
    // first fits in $0.0025, the second no longer does after what the first spent.
    let wf = env.workflow(
        "agent.yaml",
        "name: agent\nbudget: { usd: 0.0025 }\nsteps:\n  - id: look\n    type: agent\n    model: m\n    instructions: What is in notes.txt?\n    tools: [read_file]\n    max_tokens: 1000\n",
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 3, "the second turn waits: {out}");
    let run = out.run_id();
    assert_eq!(server.seen().len(), 1, "the second turn was not sent");
    let approval = waiting(&env, &run);
    assert_eq!(approval["proposal"]["kind"], "llm_call", "{approval}");
    let told = approval["proposal"]["request"]["messages"]
        .as_array()
        .and_then(|m| m.last().cloned())
        .unwrap_or_default();
    assert_eq!(
        told["content"], "buy milk\n",
        "it carries the tool's result: {told}"
    );
    let out = env.approve(&run, "look", &[]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(server.seen().len(), 2);
    assert_eq!(step(&env.show(&run), "look")["output"]["text"], "Milk.");
    replays_offline(&env, &server, &run);
}

#[test]
fn a_conversation_past_the_models_context_has_its_oldest_results_shortened_with_a_note() {
    let server = FakeProvider::start(vec![
        calls(&[("r1", "read_file", json!({"path": "big.txt"}))]),
        calls(&[("r2", "read_file", json!({"path": "big.txt"}))]),
        openai_reply("Read twice.", 50, 8),
    ]);
    let env = crate::fake_llm::env_with_fake_provider(
        "openai",
        &server.base_url(),
        "k",
        "",
        "    context_tokens: 4000\n",
    );
    // About 2000 tokens each as `estimate` counts them: two do not fit with a 1000-token reply.
    env.write("big.txt", &"line of the big file\n".repeat(300));
    let wf = env.workflow(
        "agent.yaml",
        "name: agent\nsteps:\n  - id: look\n    type: agent\n    model: m\n    instructions: Read big.txt twice.\n    tools: [read_file]\n    max_tokens: 1000\n",
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 0, "{out}");
    let told = told(&server, 2);
    assert!(
        told[0].contains("[shortened to fit the model's context: the first 512 of 6300 bytes"),
        "{}",
        &told[0][told[0].len().saturating_sub(200)..]
    );
    assert_eq!(told[1].len(), 6300, "the newest result is whole");
    replays_offline(&env, &server, &out.run_id());
}
