//! End to end against a real model, offline: llama.cpp's server with SmolLM2-135M, started
//! by `scripts/local-llm.sh serve` with an API key required, runs the factorial and triage
//! examples for real; then, with the server stopped, the runs replay identically and a waiting
//! run resumes without it. Needs `scripts/local-llm.sh install` (test.sh runs it).

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::examples::{copy_dir, example, workflows_dir};
use crate::llm_examples::env_with_local_settings;
use crate::support::{Env, of_type, step};

/// The server, stopped when dropped.
struct LocalModel {
    child: Child,
    base_url: String,
    log: std::path::PathBuf,
}

impl LocalModel {
    fn start(key: &str) -> LocalModel {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/local-llm.sh");
        let log = std::env::temp_dir().join(format!("stepwise-local-llm-{port}.log"));
        let child = Command::new(&script)
            .args(["serve", &port.to_string()])
            .env("LOCAL_LLM_KEY", key)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).expect("a log file"))
            .stderr(std::fs::File::create(&log).expect("a log file"))
            .spawn()
            .expect("start scripts/local-llm.sh");
        let mut model = LocalModel {
            child,
            base_url: format!("http://127.0.0.1:{port}/v1"),
            log,
        };
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = model.child.try_wait() {
                panic!(
                    "the local model server exited ({}); is it installed? run \
                     scripts/local-llm.sh install\n{}",
                    death(status),
                    std::fs::read_to_string(&model.log).unwrap_or_default()
                );
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the local model server did not listen within 2 minutes"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        model
    }
}

impl LocalModel {
    /// `what` (a command's output), with the server's death when it died: a call that failed
    /// because the server crashed is blamed on the crash, not on reaching it.
    fn explain(&mut self, what: &dyn std::fmt::Display) -> String {
        match self.child.try_wait() {
            Ok(Some(status)) => format!(
                "{what}\nthe local model server DIED ({}); its log ends:\n{}",
                death(status),
                log_tail(&self.log)
            ),
            _ => what.to_string(),
        }
    }
}

/// How a server process ended, in words; an illegal instruction says what to do about it.
fn death(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(libc::SIGILL) => "killed by SIGILL, an illegal instruction: its llama.cpp was built \
             for another CPU; remove ~/.cache/stepwise/llm-venv and run scripts/local-llm.sh install"
            .to_string(),
        Some(signal) => format!("killed by signal {signal}"),
        None => status.to_string(),
    }
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

impl Drop for LocalModel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn database_bytes(env: &Env) -> String {
    ["", "-wal", "-shm"]
        .iter()
        .filter_map(|suffix| std::fs::read(format!("{}{suffix}", env.db.display())).ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .collect()
}

/// Every model reply of a run, from its log.
fn replies(env: &Env, run: &str) -> Vec<Value> {
    of_type(&env.events(run), "OperationSucceeded")
        .into_iter()
        .map(|e| e["data"]["result"].clone())
        .filter(|r| r["kind"] == "llm_replied")
        .collect()
}

#[test]
fn the_examples_run_against_a_real_model_and_replay_without_it() {
    let key = format!("sk-local-{}", std::process::id());
    let mut model = LocalModel::start(&key);
    let env = env_with_local_settings(&model.base_url, &key);
    copy_dir(&workflows_dir().join("demo"), &env.ws);

    // A wrong key is refused by the server, and said so without the key.
    let wrong = env_with_local_settings(&model.base_url, "sk-wrong-key");
    copy_dir(&workflows_dir().join("demo"), &wrong.ws);
    let refused = wrong.run(&example("llm-factorial.yaml"), &[]);
    assert_eq!(refused.code, 1, "{}", model.explain(&refused));
    assert!(
        refused.stdout.contains("HTTP 401"),
        "{}",
        model.explain(&refused)
    );
    assert!(!refused.stdout.contains("sk-wrong-key"), "{refused}");

    // The seed scenario: the model writes the function, the edit waits with its diff.
    let out = env.run(&example("llm-factorial.yaml"), &[]);
    assert_eq!(
        out.code,
        3,
        "the edit waits for approval: {}",
        model.explain(&out)
    );
    let factorial = out.run_id();
    let waiting = env.approvals();
    assert_eq!(waiting[0]["step"], "add_factorial");
    let proposed = waiting[0]["approval"]["proposal"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(proposed.contains("def factorial"), "{proposed}");
    assert!(
        !env.read("calc.py")
            .unwrap_or_default()
            .contains("def factorial")
    );

    // Approved, it lands; the tests run on the model's code (a 135M model's code may fail
    // them: whatever happened is recorded).
    let approved = env.approve(&factorial, "add_factorial", &[]);
    assert_eq!(approved.code, 3, "the tests wait for approval: {approved}");
    assert_eq!(env.read("calc.py").as_deref(), Some(proposed.as_str()));
    let tested = env.approve(&factorial, "test", &[]);
    assert!(tested.code == 0 || tested.code == 1, "{tested}");
    let show = env.show(&factorial);
    assert!(
        step(&show, "test")["output"]["exit_code"].is_number()
            || step(&show, "test")["error"].is_string(),
        "{show}"
    );

    // Tokens as the server counted them; a local model costs nothing.
    let reply = &replies(&env, &factorial)[0];
    let input = reply["usage"]["input_tokens"].as_u64().unwrap_or(0);
    let output = reply["usage"]["output_tokens"].as_u64().unwrap_or(0);
    assert!(input > 50 && output > 10, "{reply}");
    assert_ne!(
        reply["usage_estimated"], true,
        "counted by the server, not estimated"
    );
    assert!(reply["simulated"] != true);
    let cost = env.stepwise(&["cost", &factorial, "--json"]).json();
    assert_eq!(cost["input_tokens"].as_u64(), Some(input));
    assert_eq!(cost["output_tokens"].as_u64(), Some(output));
    assert_eq!(cost["total_micro_usd"], 0);

    // Structured output from the real model: a valid object, then the note waits.
    let triage = env.run(&example("llm-triage.yaml"), &["--input", "name=real"]);
    assert_eq!(triage.code, 3, "{}", model.explain(&triage));
    let triage = triage.run_id();
    let classified = step(&env.show(&triage), "classify")["output"].clone();
    assert!(
        ["bug", "feature", "question"].contains(&classified["label"].as_str().unwrap_or("")),
        "{classified}"
    );
    assert!(classified["summary"].is_string(), "{classified}");

    // The key is nowhere in the database or the output.
    assert!(
        !database_bytes(&env).contains(&key),
        "the key is in the database"
    );
    for args in [vec!["events", factorial.as_str()], vec!["approvals"]] {
        let listed = env.stepwise(&args);
        assert!(
            !listed.stdout.contains(&key) && !listed.stderr.contains(&key),
            "{args:?}"
        );
    }

    // An agent step, driven by the real model to its end whatever it decides: a 135M model may
    // call a tool, call one wrongly, or answer at once; each is recorded. Its tools are the
    // reads, which wait for no one, so that it ends whatever it calls.
    let agent_wf = env.workflow(
        "agent.yaml",
        "name: agent\nsteps:\n  - id: look\n    type: agent\n    model: local\n    instructions: What does calc.py define? Use the tools to look, then answer in one sentence.\n    tools: [read_file, list_files, search]\n    max_turns: 3\n    max_tokens: 120\n",
    );
    let agent = env.run(&agent_wf, &[]);
    assert!(
        agent.code == 0 || agent.code == 1,
        "{}",
        model.explain(&agent)
    );
    let agent = agent.run_id();
    let look = step(&env.show(&agent), "look").clone();
    assert!(
        ["succeeded", "failed"].contains(&look["status"].as_str().unwrap_or("")),
        "{look}"
    );
    assert!(!replies(&env, &agent).is_empty(), "the model was asked");
    let agent_before = env.show(&agent);

    // With the server stopped: the runs replay identically, and the waiting one goes on.
    let before = (env.show(&factorial), replies(&env, &triage));
    drop(model);
    assert_eq!(env.show(&agent), agent_before);
    for run in [&factorial, &triage, &agent] {
        let replayed = env.stepwise(&["replay", run, "--json"]);
        assert_eq!(replayed.code, 0, "{replayed}");
        assert_eq!(replayed.json()["matches"], true, "{replayed}");
    }
    assert_eq!(env.show(&factorial), before.0);
    let calls = of_type(&env.events(&triage), "OperationStarted").len();
    let (out, _) =
        crate::examples::approve_until_done(&env, &triage, env.stepwise(&["resume", &triage]));
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(replies(&env, &triage), before.1, "no new model call");
    assert!(of_type(&env.events(&triage), "OperationStarted").len() > calls);
    let note = env.read("triage/real.md").expect("the note landed");
    assert!(
        note.contains(classified["label"].as_str().unwrap_or("?")),
        "{note}"
    );
}
