//! Agent steps against a provider on loopback: the model calls tools in turns, each call a
//! recorded operation under the policy, what it returned goes back to the model, and the run
//! replays without asking the server anything.

use serde_json::{Value, json};

use crate::fake_llm::{FakeProvider, Reply, openai_reply};
use crate::llm::env_with_provider;
use crate::support::{of_type, step};

/// An OpenAI reply calling tools: `(id, name, arguments)` each.
pub(crate) fn calls(list: &[(&str, &str, Value)]) -> Reply {
    let calls: Vec<Value> = list
        .iter()
        .map(|(id, name, arguments)| {
            json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments.to_string()}})
        })
        .collect();
    Reply::json(
        200,
        json!({
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": calls}, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 30, "completion_tokens": 10, "total_tokens": 40},
        }),
    )
}

/// The messages the server was sent in request `n`.
pub(crate) fn messages(server: &FakeProvider, n: usize) -> Vec<Value> {
    server.seen()[n].body["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn an_agent_reads_a_file_and_answers_with_what_it_read_and_the_run_replays_offline() {
    let server = FakeProvider::start(vec![
        calls(&[("c1", "read_file", json!({"path": "notes.txt"}))]),
        openai_reply("You need to buy milk.", 50, 8),
    ]);
    let env = env_with_provider("openai", &server.base_url());
    env.write("notes.txt", "buy milk\n");
    let wf = env.workflow(
        "agent.yaml",
        "name: agent\nsteps:\n  - id: look\n    type: agent\n    model: m\n    system: Be brief.\n    instructions: What is in notes.txt?\n    tools: [read_file]\n",
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 0, "{out}");
    let run = out.run_id();
    let show = env.show(&run);
    assert_eq!(
        step(&show, "look")["output"]["text"],
        "You need to buy milk."
    );

    let seen = server.seen();
    assert_eq!(seen.len(), 2, "two turns");
    assert_eq!(seen[0].body["tools"][0]["function"]["name"], "read_file");
    let second = messages(&server, 1);
    assert_eq!(second[2]["role"], "assistant");
    assert_eq!(second[2]["tool_calls"][0]["id"], "c1");
    assert_eq!(
        second[3],
        json!({"role": "tool", "tool_call_id": "c1", "content": "buy milk\n"})
    );

    // The read was an operation of its own, recorded between the two calls.
    let events = env.events(&run);
    let kinds: Vec<String> = of_type(&events, "OperationStarted")
        .iter()
        .map(|e| {
            e["data"]["request"]["kind"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(kinds, ["llm_call", "read_file", "llm_call"]);

    drop(server); // Nothing listens any more.
    let replayed = env.stepwise(&["replay", &run, "--json"]);
    assert_eq!(replayed.code, 0, "{replayed}");
    assert_eq!(replayed.json()["matches"], true, "{replayed}");
}

#[test]
fn calls_the_agent_may_not_make_are_answered_with_why_and_its_turns_run_out() {
    let server = FakeProvider::start(vec![
        calls(&[
            ("c1", "rm_rf", json!({"path": "/"})),
            // Spelled otherwise than the rule: the path read is the one judged.
            ("c2", "read_file", json!({"path": "./secrets//key.txt"})),
            ("c3", "read_file", json!({"path": "../outside.txt"})),
        ]),
        calls(&[("c4", "read_file", json!({"path": "notes.txt"}))]),
        openai_reply("never asked", 1, 1),
    ]);
    let env = env_with_provider("openai", &server.base_url());
    std::fs::write(
        &env.user_policy,
        "rules:\n  - deny: read_file\n    path: \"secrets/**\"\n",
    )
    .expect("write the user policy");
    env.write("secrets/key.txt", "TOP-SECRET-VALUE\n");
    env.write("notes.txt", "buy milk\n");
    let wf = env.workflow(
        "agent.yaml",
        "name: agent\nsteps:\n  - id: look\n    type: agent\n    model: m\n    instructions: Look around.\n    max_turns: 2\n",
    );
    let out = env.run(&wf, &[]);
    assert_ne!(out.code, 0, "{out}");
    let run = out.run_id();
    let show = env.show(&run);
    let look = step(&show, "look");
    assert_eq!(look["status"], "failed");
    assert!(
        look["error"]
            .as_str()
            .unwrap_or("")
            .contains("all 2 of its turns"),
        "{look}"
    );

    // Each refused call went back to the model, saying why; nothing secret left the machine.
    let second = messages(&server, 1);
    let told: Vec<&str> = second
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(told.len(), 3, "{second:?}");
    assert!(told[0].contains("there is no tool `rm_rf`"), "{told:?}");
    assert_eq!(
        told[1],
        "error: reading `secrets/key.txt` is refused by the workspace's policy (rule: deny read_file path secrets/**)",
        "the rule is told, not where it is written"
    );
    assert!(told[2].contains("`..`"), "{told:?}");
    for request in server.seen() {
        assert!(!request.body.to_string().contains("TOP-SECRET-VALUE"));
    }
    assert_eq!(server.seen().len(), 2, "no third turn");
    // The refused calls made no operation, and the last turn's call was not performed: no
    // turn was left to hear its result.
    let events = env.events(&run);
    let reads = of_type(&events, "OperationStarted")
        .iter()
        .filter(|e| e["data"]["request"]["kind"] == "read_file")
        .count();
    assert_eq!(reads, 0);
}

#[test]
fn agent_steps_are_validated_with_their_field_and_step() {
    let env = crate::support::Env::new();
    for (field, yaml, said) in [
        ("max_turns", "    max_turns: 500\n", "from 1 to 200"),
        ("tools", "    tools: [shell]\n", "there is no tool `shell`"),
        (
            "mcp",
            "    mcp: [\"my files\"]\n",
            "`my files` is not an MCP server's name",
        ),
        ("mcp", "    mcp: [files, files]\n", "listed twice"),
    ] {
        let wf = env.workflow(
            "bad.yaml",
            &format!(
                "name: bad\nsteps:\n  - id: look\n    type: agent\n    model: m\n    instructions: Look.\n{yaml}"
            ),
        );
        let out = env.stepwise(&["validate", wf.to_str().expect("utf-8")]);
        assert_ne!(out.code, 0, "{field}: {out}");
        let text = out.to_string();
        assert!(text.contains(said), "{field}: {text}");
        assert!(text.contains("look"), "{field}: the step is named: {text}");
    }
}

#[test]
fn an_agent_lists_the_workspace_as_gitignore_leaves_it_and_without_what_it_may_not_read() {
    let server = FakeProvider::start(vec![
        calls(&[("c1", "list_files", json!({}))]),
        calls(&[("c2", "list_files", json!({"glob": "**/*.py"}))]),
        openai_reply("calc.py is the only Python file.", 50, 8),
    ]);
    let env = env_with_provider("openai", &server.base_url());
    std::fs::write(
        &env.user_policy,
        "rules:\n  - deny: read_file\n    path: \"secrets/**\"\n",
    )
    .expect("write the user policy");
    env.write(".gitignore", "build/\n");
    env.write("calc.py", "def add(a, b):\n    return a + b\n");
    env.write("notes.txt", "buy milk\n");
    env.write("build/out.bin", "x");
    env.write("secrets/key.txt", "TOP-SECRET-VALUE\n");
    let wf = env.workflow(
        "agent.yaml",
        "name: agent\nsteps:\n  - id: look\n    type: agent\n    model: m\n    instructions: What is here?\n",
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 0, "{out}");
    let tools: Vec<String> = server.seen()[0].body["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        tools,
        [
            "read_file",
            "list_files",
            "search",
            "edit_file",
            "write_file",
            "run_command",
            "ask_person"
        ],
        "every built-in tool, by default"
    );
    let listing = |n: usize| -> String {
        messages(&server, n)
            .iter()
            .rev()
            .find(|m| m["role"] == "tool")
            .and_then(|m| m["content"].as_str())
            .unwrap_or("")
            .to_string()
    };
    let all = listing(1);
    assert!(
        all.contains("calc.py") && all.contains("notes.txt"),
        "{all}"
    );
    assert!(!all.contains("build/"), "ignored by .gitignore: {all}");
    assert!(!all.contains("secrets"), "not readable, not shown: {all}");
    assert!(!all.contains(".gitignore"), "hidden: {all}");
    assert_eq!(listing(2), "calc.py");
}

#[test]
fn an_agent_runs_the_commands_the_policy_allows_asks_about_the_others_and_hears_a_rejection() {
    let server = FakeProvider::start(vec![
        calls(&[
            (
                "c1",
                "run_command",
                json!({"argv": ["echo", "hello from the agent"]}),
            ),
            ("c2", "run_command", json!({"argv": ["rm", "-rf", "."]})),
            ("c3", "run_command", json!({"argv": ["ls", "no-such-file"]})),
        ]),
        openai_reply("Done.", 50, 8),
    ]);
    let env = env_with_provider("openai", &server.base_url());
    // Allowed for a workflow's own steps is not allowed for an agent: only agent_command rules.
    env.workspace_policy(
        "  - allow: agent_command\n    command: [\"echo *\", \"ls *\"]\n  - allow: run_command\n    command: \"rm *\"\n",
    );
    env.write("keep.txt", "still here\n");
    let wf = env.workflow(
        "agent.yaml",
        "name: agent\nsteps:\n  - id: work\n    type: agent\n    model: m\n    instructions: Do it.\n    tools: [run_command]\n",
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 3, "waits for a person: {out}");
    let run = out.run_id();
    let asked = env.stepwise(&["approvals"]);
    assert!(asked.stdout.contains("$ rm -rf ."), "{asked}");
    assert!(
        asked
            .stdout
            .contains("agent_command needs approval by default"),
        "{asked}"
    );
    let out = env.stepwise(&[
        "reject",
        &run,
        "work",
        "--reason",
        "never delete the workspace",
    ]);
    assert_eq!(out.code, 0, "the agent goes on and finishes: {out}");
    let told: Vec<String> = messages(&server, 1)
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(told.len(), 3, "{told:?}");
    assert!(told[0].starts_with("exit code 0"), "{told:?}");
    assert!(told[0].contains("hello from the agent"), "{told:?}");
    assert_eq!(
        told[1],
        "error: a person rejected this: never delete the workspace"
    );
    assert!(told[2].starts_with("exit code 2"), "{told:?}");
    assert!(told[2].contains("no-such-file"), "{told:?}");
    assert_eq!(env.read("keep.txt").as_deref(), Some("still here\n"));
    // Each command that ran is an operation of its own, contained like a step's.
    let events = env.events(&run);
    let commands = of_type(&events, "OperationStarted")
        .iter()
        .filter(|e| e["data"]["request"]["kind"] == "run_command")
        .count();
    assert_eq!(commands, 2);
    // Each decision is recorded: the rule that let each allowed command run, and who
    // rejected the other and why.
    let granted = of_type(&events, "ApprovalGranted");
    assert_eq!(granted.len(), 2, "{granted:?}");
    for decision in &granted {
        assert_eq!(decision["data"]["mode"]["kind"], "rule", "{decision}");
        assert!(
            decision["data"]["mode"]["rule"]
                .as_str()
                .unwrap_or("")
                .starts_with("allow agent_command command echo *, ls *"),
            "{decision}"
        );
    }
    let rejected = of_type(&events, "ApprovalRejected");
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["data"]["reason"], "never delete the workspace");
    // And it all replays without the server or the commands.
    let before = server.seen().len();
    let replayed = env.stepwise(&["replay", &run]);
    assert_eq!(replayed.code, 0, "{replayed}");
    assert_eq!(server.seen().len(), before);
}

#[test]
fn a_call_cut_off_by_the_token_limit_is_told_back_and_the_agent_tries_again() {
    let cut_off = Reply::json(
        200,
        json!({
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "read_file", "arguments": "{\"path\": \"no"}}
            ]}, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 30, "completion_tokens": 10, "total_tokens": 40},
        }),
    );
    let server = FakeProvider::start(vec![
        cut_off,
        calls(&[("c2", "read_file", json!({"path": "notes.txt"}))]),
        openai_reply("Buy milk.", 50, 8),
    ]);
    let env = env_with_provider("openai", &server.base_url());
    env.write("notes.txt", "buy milk\n");
    let wf = env.workflow(
        "agent.yaml",
        "name: agent\nsteps:\n  - id: look\n    type: agent\n    model: m\n    instructions: Read notes.txt.\n",
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 0, "{out}");
    let told = messages(&server, 1)
        .iter()
        .rev()
        .find(|m| m["role"] == "tool")
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_string();
    assert!(
        told.contains("not JSON") && told.contains("send them again"),
        "{told}"
    );
    assert_eq!(
        step(&env.show(&out.run_id()), "look")["output"]["text"],
        "Buy milk."
    );
}
