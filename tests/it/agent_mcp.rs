//! Agents with a real MCP server from the npm registry (`@modelcontextprotocol/server-filesystem`,
//! installed into `tests/mcp` by test.sh): its tools listed to the model, a call asked about
//! and approved and recorded, a `deny` rule keeping a tool from being called, the run replayed
//! without starting the server, and the server gone with the engine that started it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

use crate::agent::{calls, messages};
use crate::fake_llm::{FakeProvider, openai_reply};
use crate::llm::env_with_provider;
use crate::support::{Env, of_type, step, wait_until_ended};

/// The filesystem server test.sh installs.
fn filesystem_server() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("mcp/node_modules/.bin/mcp-server-filesystem");
    assert!(
        bin.exists(),
        "{} is missing: run `npm install` in tests/mcp (test.sh does)",
        bin.display()
    );
    bin
}

/// An environment whose settings define MCP server `files`: the filesystem server over the
/// workspace, started through a script that counts its starts and writes its pid. Its model
/// provider is set with [`use_provider`] once the provider's script, which names the
/// workspace's paths, is known.
fn env_with_files_server() -> Env {
    let env = env_with_provider("openai", "http://127.0.0.1:9/v1");
    let wrapper = env.root().join("files-server.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho started >> '{root}/starts'\necho $$ > '{root}/server.pid'\nexec '{bin}' \"$1\"\n",
            root = env.root().display(),
            bin = filesystem_server().display(),
        ),
    )
    .expect("write the wrapper");
    let settings = env.root().join("config/stepwise/settings.yaml");
    let mut text = std::fs::read_to_string(&settings).expect("settings");
    text.push_str(&format!(
        "mcp_servers:\n  files:\n    command: [sh, '{}', '{{workspace}}']\n",
        wrapper.display()
    ));
    std::fs::write(&settings, text).expect("write settings");
    std::fs::write(
        &env.user_policy,
        "rules:\n  - deny: mcp_call\n    tool: \"files.write_*\"\n",
    )
    .expect("write the user policy");
    env
}

/// Points the settings' provider at `provider`.
fn use_provider(env: &Env, provider: &FakeProvider) {
    let settings = env.root().join("config/stepwise/settings.yaml");
    let text = std::fs::read_to_string(&settings).expect("settings");
    let text = text.replace("http://127.0.0.1:9/v1", &provider.base_url());
    std::fs::write(&settings, text).expect("write settings");
}

fn starts(env: &Env) -> usize {
    std::fs::read_to_string(env.root().join("starts"))
        .unwrap_or_default()
        .lines()
        .count()
}

const WORKFLOW: &str = "name: mcp\nsteps:\n  - id: look\n    type: agent\n    model: m\n    instructions: What is in notes.txt?\n    tools: []\n    mcp: [files]\n";

#[test]
fn a_real_mcp_servers_tools_are_asked_about_recorded_refused_by_rule_and_replayed_without_it() {
    let env = env_with_files_server();
    let notes = env.ws.join("notes.txt").display().to_string();
    let provider = FakeProvider::start(vec![
        calls(&[("c1", "files__read_text_file", json!({"path": notes}))]),
        calls(&[(
            "c2",
            "files__write_file",
            json!({"path": notes, "content": "sell milk\n"}),
        )]),
        openai_reply("It says to buy milk.", 50, 8),
    ]);
    use_provider(&env, &provider);
    env.write("notes.txt", "buy milk\n");
    let wf = env.workflow("mcp.yaml", WORKFLOW);

    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 3, "the call waits for a person: {out}");
    let run = out.run_id();
    let tools: Vec<String> = provider.seen()[0].body["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["function"]["name"].as_str().map(str::to_string))
        .collect();
    assert!(
        tools.contains(&"files__read_text_file".to_string()),
        "{tools:?}"
    );
    assert!(
        tools.contains(&"files__write_file".to_string()),
        "{tools:?}"
    );
    // The question shows the server, the tool and the arguments.
    let asked = env.stepwise(&["approvals"]);
    assert!(
        asked
            .stdout
            .contains("MCP server files tool read_text_file"),
        "{asked}"
    );
    assert!(asked.stdout.contains("\"path\""), "{asked}");
    assert!(
        asked.stdout.contains("mcp_call needs approval by default"),
        "{asked}"
    );

    let out = env.approve(&run, "look", &[]);
    assert_eq!(out.code, 0, "{out}");
    let told: Vec<String> = messages(&provider, 2)
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(told[0], "buy milk\n", "{told:?}");
    assert_eq!(
        told[1],
        "error: calling `files.write_file` is refused by the workspace's policy (rule: deny mcp_call tool files.write_*)"
    );
    assert_eq!(
        env.read("notes.txt").as_deref(),
        Some("buy milk\n"),
        "never written"
    );
    assert_eq!(
        step(&env.show(&run), "look")["output"]["text"],
        "It says to buy milk."
    );
    let events = env.events(&run);
    let calls_made: Vec<_> = of_type(&events, "OperationStarted")
        .into_iter()
        .filter(|e| e["data"]["request"]["kind"] == "mcp_call")
        .collect();
    assert_eq!(calls_made.len(), 1, "only the approved call was made");
    assert_eq!(calls_made[0]["data"]["request"]["tool"], "read_text_file");
    let granted = of_type(&events, "ApprovalGranted");
    assert_eq!(granted[0]["data"]["mode"]["kind"], "manual");

    // Replay answers everything from the log: no model, no server.
    let (asked_before, started_before) = (provider.seen().len(), starts(&env));
    assert!(started_before >= 1);
    let replayed = env.stepwise(&["replay", &run]);
    assert_eq!(replayed.code, 0, "{replayed}");
    assert_eq!(provider.seen().len(), asked_before);
    assert_eq!(starts(&env), started_before, "replay started the server");
}

#[test]
fn an_mcp_server_dies_with_the_engine_that_started_it() {
    // The first turn is slow to answer: the engine is killed while it waits, the server up.
    let provider = FakeProvider::start(vec![
        openai_reply("never read", 1, 1).after(Duration::from_secs(30)),
    ]);
    let env = env_with_files_server();
    use_provider(&env, &provider);
    let wf = env.workflow("mcp.yaml", WORKFLOW);
    let ws = env.ws.to_str().expect("utf-8").to_string();
    let run = env.spawn(&["run", wf.to_str().expect("utf-8"), "--workspace", &ws]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while provider.seen().is_empty() {
        assert!(Instant::now() < deadline, "the first turn was never asked");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid: i32 = std::fs::read_to_string(env.root().join("server.pid"))
        .expect("the server wrote its pid")
        .trim()
        .parse()
        .expect("a pid");
    assert!(!wait_until_ended(pid, Duration::ZERO), "the server runs");
    let _ = kill(Pid::from_raw(run.pid()), Signal::SIGKILL);
    let _ = run.finish(Duration::from_secs(10));
    assert!(
        wait_until_ended(pid, Duration::from_secs(10)),
        "the MCP server outlived the engine"
    );
}

#[test]
fn the_agent_mcp_example_reads_the_demo_through_the_filesystem_server() {
    let env = crate::llm_examples::env_with_local_settings("http://127.0.0.1:9/v1", "k-local");
    let ws = env.ws.display().to_string();
    let provider = FakeProvider::start(vec![
        calls(&[("l1", "files__list_directory", json!({"path": ws}))]),
        calls(&[(
            "r1",
            "files__read_text_file",
            json!({"path": format!("{ws}/calc.py")}),
        )]),
        openai_reply(
            "calc.py defines add; the tests expect factorial too.",
            80,
            12,
        ),
    ]);
    use_provider(&env, &provider);
    // The shipped settings start the server with npx; the tests run the one test.sh installed.
    let settings = env.root().join("config/stepwise/settings.yaml");
    let text = std::fs::read_to_string(&settings).expect("settings");
    let shipped = "command: [npx, -y, \"@modelcontextprotocol/server-filesystem@2026.8.31\", \"{workspace}\"]";
    assert!(text.contains(shipped), "{text}");
    let text = text.replace(
        shipped,
        &format!(
            "command: ['{}', '{{workspace}}']",
            filesystem_server().display()
        ),
    );
    std::fs::write(&settings, text).expect("write settings");
    env.workspace_policy("  - allow: mcp_call\n    tool: [\"files.read_*\", \"files.list_*\"]\n");
    crate::examples::copy_dir(&crate::examples::workflows_dir().join("demo"), &env.ws);
    let out = env.run(&crate::examples::example("agent-mcp.yaml"), &[]);
    assert_eq!(
        out.code, 0,
        "reads run without asking under the rule: {out}"
    );
    let run = out.run_id();
    let listing = messages(&provider, 1);
    let listing = listing
        .last()
        .and_then(|m| m["content"].as_str())
        .unwrap_or("");
    assert!(
        listing.contains("calc.py") && listing.contains("test_calc.py"),
        "{listing}"
    );
    let read = messages(&provider, 2);
    let read = read
        .last()
        .and_then(|m| m["content"].as_str())
        .unwrap_or("");
    assert!(read.contains("def add(a, b):"), "{read}");
    let events = env.events(&run);
    let rules: Vec<&str> = of_type(&events, "ApprovalGranted")
        .iter()
        .filter_map(|e| e["data"]["mode"]["rule"].as_str())
        .collect();
    assert_eq!(rules.len(), 2, "each call's rule is recorded: {rules:?}");
    let before = provider.seen().len();
    let replayed = env.stepwise(&["replay", &run]);
    assert_eq!(replayed.code, 0, "{replayed}");
    assert_eq!(provider.seen().len(), before);
}

#[test]
fn mcp_servers_come_from_the_users_settings_only_and_must_be_defined() {
    let provider = FakeProvider::start(vec![openai_reply("unused", 1, 1)]);
    let env = env_with_provider("openai", &provider.base_url());
    let wf = env.workflow(
        "mcp.yaml",
        "name: mcp\nsteps:\n  - id: look\n    type: agent\n    model: m\n    instructions: Look.\n    mcp: [nope]\n",
    );
    let out = env.run(&wf, &[]);
    assert_ne!(out.code, 0, "{out}");
    assert!(
        out.to_string()
            .contains("step `look` uses MCP server `nope`, which your settings do not define"),
        "{out}"
    );
    // A workspace may not define one: it would run a program as the user.
    env.write(
        ".stepwise/settings.yaml",
        "mcp_servers:\n  nope:\n    command: [sh, -c, 'touch pwned']\n",
    );
    let out = env.run(&wf, &[]);
    assert_ne!(out.code, 0, "{out}");
    assert!(
        out.to_string()
            .contains("a workspace's settings may not define MCP servers"),
        "{out}"
    );
    assert!(env.read("pwned").is_none());
    assert!(provider.seen().is_empty());
}

/// A small MCP server of the test's own (Python's standard library): `echo` answers its text,
/// `crash` makes it exit mid-call. Each start is counted in `starts`.
const STUB_SERVER: &str = r#"
import json, sys
open(sys.argv[1], "a").write("started\n")
for line in sys.stdin:
    msg = json.loads(line)
    method, mid = msg.get("method"), msg.get("id")
    def answer(result):
        sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": mid, "result": result}) + "\n")
        sys.stdout.flush()
    if method == "initialize":
        answer({"protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}},
                "serverInfo": {"name": "stub", "version": "1"}})
    elif method == "tools/list":
        schema = {"type": "object", "properties": {"text": {"type": "string"}}}
        answer({"tools": [{"name": "echo", "description": "Echoes.", "inputSchema": schema},
                          {"name": "crash", "description": "Exits.", "inputSchema": {"type": "object"}}]})
    elif method == "tools/call":
        if msg["params"]["name"] == "crash":
            sys.exit(3)
        answer({"content": [{"type": "text", "text": msg["params"]["arguments"].get("text", "")}]})
"#;

#[test]
fn a_server_that_crashes_mid_call_is_an_error_the_model_sees_and_the_next_call_starts_it_again() {
    let provider = FakeProvider::start(vec![
        calls(&[("c1", "stub__crash", json!({}))]),
        calls(&[("c2", "stub__echo", json!({"text": "still here"}))]),
        openai_reply("Recovered.", 50, 8),
    ]);
    let env = env_with_provider("openai", &provider.base_url());
    let script = env.root().join("stub.py");
    std::fs::write(&script, STUB_SERVER).expect("write the stub");
    let settings = env.root().join("config/stepwise/settings.yaml");
    let mut text = std::fs::read_to_string(&settings).expect("settings");
    text.push_str(&format!(
        "mcp_servers:\n  stub:\n    command: [python3, '{}', '{}']\n  junk:\n    command: [sh, -c, 'echo this is not MCP; sleep 300']\n",
        script.display(),
        env.root().join("starts").display()
    ));
    std::fs::write(&settings, text).expect("write settings");
    env.workspace_policy("  - allow: mcp_call\n    tool: \"stub.*\"\n");
    let wf = env.workflow(
        "mcp.yaml",
        "name: mcp\nsteps:\n  - id: use\n    type: agent\n    model: m\n    instructions: Use the stub.\n    tools: []\n    mcp: [stub]\n",
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 0, "{out}");
    let told = |n: usize| {
        messages(&provider, n)
            .last()
            .and_then(|m| m["content"].as_str().map(str::to_string))
            .unwrap_or_default()
    };
    assert_eq!(
        told(1),
        "error: MCP server `stub` stopped (it exited, or closed its output)"
    );
    assert_eq!(told(2), "still here", "a new server took the next call");
    assert_eq!(starts(&env), 2);

    // A program that does not speak MCP (and stays up): the model is told, in its first turn
    // and not at a timeout, that the server's tools are not available, and goes on without
    // them.
    let wf = env.workflow(
        "junk.yaml",
        "name: junk\nsteps:\n  - id: use\n    type: agent\n    model: m\n    instructions: Use it.\n    mcp: [junk]\n",
    );
    let asked = provider.seen().len();
    let began = Instant::now();
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 0, "{out}");
    assert!(
        began.elapsed() < Duration::from_secs(60),
        "found out only at the start timeout"
    );
    let first = messages(&provider, asked);
    let note = first
        .last()
        .and_then(|m| m["content"].as_str())
        .unwrap_or("");
    assert_eq!(
        note,
        "Some tools are not available: MCP server `junk` did not start a session (it exited, or answered something that is not MCP)."
    );
    let offered = provider.seen()[asked].body["tools"].to_string();
    assert!(!offered.contains("junk__"), "{offered}");
}

#[test]
fn an_engine_that_lives_on_stops_a_runs_mcp_servers_when_the_run_ends() {
    let provider = FakeProvider::start(vec![openai_reply("Nothing to read.", 5, 2)]);
    let env = env_with_files_server();
    use_provider(&env, &provider);
    let wf = env.workflow("mcp.yaml", WORKFLOW);
    // In this process the key's variable is not set: the loopback provider takes no key.
    let settings = env.root().join("config/stepwise/settings.yaml");
    let text = std::fs::read_to_string(&settings).expect("settings");
    let text: String = text
        .lines()
        .filter(|line| !line.contains("api_key_env"))
        .map(|line| format!("{line}\n"))
        .collect();
    std::fs::write(&settings, text).expect("write settings");
    let mut config = env.engine_config();
    config.settings = Some(settings);
    config.settings_named = true;
    let engine = stepwise_engine::Engine::open(config).expect("open the engine");
    crate::support::runtime().block_on(async {
        let handle = engine
            .start_run(env.start_request(wf))
            .await
            .expect("start");
        let status = handle.wait().await.expect("drive");
        assert_eq!(status, stepwise_core::run::RunStatus::Succeeded);
    });
    assert_eq!(starts(&env), 1, "the server was started for the run");
    let pid: i32 = std::fs::read_to_string(env.root().join("server.pid"))
        .expect("the server wrote its pid")
        .trim()
        .parse()
        .expect("a pid");
    // Well before its two idle minutes, with the engine still open.
    assert!(
        wait_until_ended(pid, Duration::from_secs(10)),
        "the MCP server outlived its finished run"
    );
    drop(engine);
}
