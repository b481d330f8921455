//! Loops and rounds survive a SIGKILL of the process driving them at many points: resumed, every
//! iteration's and every round's command has run exactly once (an outcome a crash left unknown
//! is resolved by looking at the workspace, as a person would), and the log replays.

use std::time::Duration;

use serde_json::Value;

use crate::crash::{event_count, kill_at, wait_for_commands_to_die};
use crate::support::Env;

const WORKFLOW: &str = r#"
name: loops
steps:
  - id: each
    for_each: ${["a", "b", "c", "d", "e"]}
    max_parallel: 2
    type: run_command
    command: "echo ${item} >> lines.txt"
  - id: again
    needs: [each]
    type: run_command
    command: "echo round${round} >> lines.txt"
    repeat:
      max: 3
"#;

const LINES: [&str; 8] = ["a", "b", "c", "d", "e", "round1", "round2", "round3"];

fn lines(env: &Env) -> Vec<String> {
    let mut found: Vec<String> = env
        .read("lines.txt")
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    found.sort();
    found
}

/// The command line an unknown step's operation ran (its item or round), from `show --json`.
fn ran(env: &Env, run: &str, step: &Value) -> String {
    let id = step["id"].as_str().unwrap_or_default();
    match id.strip_prefix("each[").and_then(|k| k.strip_suffix(']')) {
        Some(k) => LINES[k.parse::<usize>().unwrap_or(0)].to_string(),
        None => {
            let show = env.show(run);
            let rounds = crate::support::of_type(&env.events(run), "StepRoundEnded").len();
            let _ = show;
            format!("round{}", rounds + 1)
        }
    }
}

fn crash_and_recover(kill_after: u64) {
    let env = Env::new();
    env.allow_everything();
    let wf = env.workflow("loops.yaml", WORKFLOW);
    let child = env.spawn_run(&wf);
    kill_at(&env, child, kill_after);
    let run = env
        .first_run_id(Duration::from_secs(5))
        .expect("the run was recorded");
    let mut finished = false;
    for _ in 0..30 {
        let out = env.stepwise(&["resume", &run, "--json"]);
        wait_for_commands_to_die(&env.ws);
        match out.code {
            0 => {
                finished = true;
                break;
            }
            3 => {
                let show = env.show(&run);
                for step in show["steps"].as_array().cloned().unwrap_or_default() {
                    if step["status"] != "outcome_unknown" {
                        continue;
                    }
                    let line = ran(&env, &run, &step);
                    let choice = if lines(&env).contains(&line) {
                        "--mark-done"
                    } else {
                        "--retry"
                    };
                    let id = step["id"].as_str().unwrap_or_default().to_string();
                    let out = env.stepwise(&["resolve", &run, &id, choice, "--json"]);
                    assert!(out.code == 0 || out.code == 3, "resolve {id}: {out}");
                    wait_for_commands_to_die(&env.ws);
                }
            }
            other => panic!("resume after a kill at {kill_after} exited {other}: {out}"),
        }
    }
    assert!(
        finished,
        "the run never finished after a kill at {kill_after}"
    );
    let mut want: Vec<String> = LINES.iter().map(|l| l.to_string()).collect();
    want.sort();
    assert_eq!(
        lines(&env),
        want,
        "kill at {kill_after}: each command exactly once"
    );
    let replayed = env.stepwise(&["replay", &run, "--recorded"]);
    assert_eq!(replayed.code, 0, "kill at {kill_after}: {replayed}");
}

#[test]
fn loops_and_rounds_killed_at_many_points_resume_without_repeating_a_command() {
    // A clean run tells how many events there are to kill between.
    let env = Env::new();
    env.allow_everything();
    let out = env.run(&env.workflow("loops.yaml", WORKFLOW), &[]);
    assert_eq!(out.code, 0, "{out}");
    let total = event_count(&env.database);
    assert!(total > 30, "a long log: {total}");
    // Every third point, to keep the test short; the points move with the log's shape.
    for kill_after in (2..total).step_by(3) {
        crash_and_recover(kill_after);
    }
}
