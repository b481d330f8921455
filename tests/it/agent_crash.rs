//! An agent step SIGKILLed at every point of its loop (before a tool call, during a command,
//! between turns) and resumed: no model turn that replied is asked again, no command that ran
//! runs again (a person settles one cut off mid-way by looking at what it did), and the run
//! replays without the server.

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

use crate::agent::calls;
use crate::crash::{event_count, wait_for_commands_to_die};
use crate::fake_llm::{FakeProvider, openai_reply};
use crate::llm::env_with_provider;
use crate::support::{Env, of_type};

const WORKFLOW: &str = "name: agent\nsteps:\n  - id: work\n    type: agent\n    model: m\n    instructions: Tick twice, then read the ticks.\n    tools: [run_command, read_file]\n";

/// The model's turns, the same answer to a turn asked again.
fn server() -> FakeProvider {
    FakeProvider::by_turn(vec![
        calls(&[(
            "t1",
            "run_command",
            json!({"argv": ["sh", "tick.sh", "one"]}),
        )]),
        calls(&[
            (
                "t2",
                "run_command",
                json!({"argv": ["sh", "tick.sh", "two"]}),
            ),
            ("r1", "read_file", json!({"path": "ran.txt"})),
        ]),
        openai_reply("Ticked twice.", 50, 8),
    ])
}

fn setup(server: &FakeProvider) -> (Env, std::path::PathBuf) {
    let env = env_with_provider("openai", &server.base_url());
    env.workspace_policy("  - allow: agent_command\n    command: \"sh tick.sh *\"\n");
    env.write("tick.sh", "echo \"$1\" >> ran.txt\nsleep 0.05\n");
    let wf = env.workflow("agent.yaml", WORKFLOW);
    (env, wf)
}

/// The argv of the run's last command operation.
fn last_command(events: &[Value]) -> Vec<String> {
    of_type(events, "OperationStarted")
        .iter()
        .rev()
        .find(|e| e["data"]["request"]["kind"] == "run_command")
        .and_then(|e| e["data"]["request"]["command"]["argv"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect()
}

/// Runs, kills the CLI once `kill_after` events are durable, resumes until the run ends.
/// Returns whether the kill landed mid-run.
fn crash_and_recover(kill_after: u64) -> bool {
    let server = server();
    let (env, wf) = setup(&server);
    let ws = env.ws.to_str().expect("utf-8").to_string();
    let run = env.spawn(&["run", wf.to_str().expect("utf-8"), "--workspace", &ws]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while event_count(&env.database) < kill_after
        && !crate::support::wait_until_ended(run.pid(), Duration::ZERO)
    {
        assert!(
            Instant::now() < deadline,
            "never reached {kill_after} events"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
    let mid_run = !crate::support::wait_until_ended(run.pid(), Duration::ZERO);
    let _ = kill(Pid::from_raw(run.pid()), Signal::SIGKILL);
    let _ = run.finish(Duration::from_secs(10));
    wait_for_commands_to_die(&env.ws);
    let run_id = env.stepwise(&["runs", "--json"]).json()[0]["run_id"]
        .as_str()
        .expect("a run")
        .to_string();
    let before = env.events(&run_id);
    let mut finished = false;
    for _ in 0..10 {
        let out = env.stepwise(&["resume", &run_id]);
        wait_for_commands_to_die(&env.ws);
        match out.code {
            0 => {
                finished = true;
                break;
            }
            3 => {
                // A command cut off by the kill: did it run? Its line says.
                let argv = last_command(&env.events(&run_id));
                let ticked = env.read("ran.txt").unwrap_or_default();
                let choice = if ticked
                    .lines()
                    .any(|l| Some(l) == argv.last().map(String::as_str))
                {
                    "--mark-done"
                } else {
                    "--retry"
                };
                let out = env.stepwise(&["resolve", &run_id, "work", choice]);
                assert!(out.code == 0 || out.code == 3, "{out}");
                if out.code == 0 {
                    finished = true;
                    break;
                }
            }
            other => panic!("resume after a kill at {kill_after} exited {other}: {out}"),
        }
    }
    assert!(
        finished,
        "the run never finished after a kill at {kill_after}"
    );
    assert_eq!(
        env.read("ran.txt").as_deref(),
        Some("one\ntwo\n"),
        "kill at {kill_after}: each command exactly once"
    );
    let events = env.events(&run_id);
    assert_eq!(
        &events[..before.len()],
        &before[..],
        "nothing recorded was changed"
    );
    let replies = of_type(&events, "OperationSucceeded")
        .iter()
        .filter(|e| e["data"]["result"]["kind"] == "llm_replied")
        .count();
    assert_eq!(replies, 3, "kill at {kill_after}: each turn replied once");
    // A turn is asked again only if the kill cut it off before its reply was recorded.
    let asked = server.seen().len();
    assert!(
        (3..=4).contains(&asked),
        "kill at {kill_after}: the model was asked {asked} times for 3 turns"
    );
    let asked_before = server.seen().len();
    let replayed = env.stepwise(&["replay", &run_id]);
    assert_eq!(replayed.code, 0, "{replayed}");
    assert_eq!(server.seen().len(), asked_before, "replay asked the model");
    mid_run
}

#[test]
fn an_agent_killed_anywhere_in_its_loop_resumes_without_repeating_a_turn_or_a_command() {
    let server = server();
    let (env, wf) = setup(&server);
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 0, "{out}");
    let total = env.events(&out.run_id()).len() as u64;
    let mut mid_run = 0;
    for kill_after in 2..total {
        mid_run += usize::from(crash_and_recover(kill_after));
    }
    assert!(
        mid_run as u64 >= (total - 2) / 2,
        "only {mid_run} of {} kills landed mid-run",
        total - 2
    );
}
