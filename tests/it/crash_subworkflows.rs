//! A parent and its child run survive a SIGKILL of the process driving them at many points:
//! resumed, every command of both has run exactly once (an outcome a crash left unknown is
//! resolved by looking at the workspace, as a person would), and the parent's replay, its
//! child's included, matches.

use serde_json::Value;

use crate::crash::{event_count, kill_at, wait_for_commands_to_die};
use crate::support::Env;

const CHILD: &str = r#"
name: child
steps:
  - id: a
    type: run_command
    command: "echo a >> lines.txt"
  - id: b
    needs: [a]
    type: run_command
    command: "echo b >> lines.txt"
outputs:
  done: ${steps.b.status == "succeeded"}
"#;

const PARENT: &str = r#"
name: parent
steps:
  - id: first
    type: run_command
    command: "echo p1 >> lines.txt"
  - id: sub
    needs: [first]
    type: workflow
    path: child.yaml
  - id: last
    needs: [sub]
    when: ${steps.sub.output.done}
    type: run_command
    command: "echo p2 >> lines.txt"
"#;

/// What each step's command writes.
fn line_of(step: &str) -> &'static str {
    match step {
        "first" => "p1",
        "a" => "a",
        "b" => "b",
        _ => "p2",
    }
}

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

fn unfinished(env: &Env) -> Vec<(String, String)> {
    let Value::Array(runs) = env.stepwise(&["runs", "--json"]).json() else {
        panic!("runs --json is not a list");
    };
    let mut found: Vec<(String, String)> = runs
        .iter()
        .filter(|r| {
            !matches!(
                r["recorded_status"].as_str(),
                Some("succeeded" | "failed" | "cancelled")
            )
        })
        .map(|r| {
            (
                r["trigger"].as_str().unwrap_or_default().to_string(),
                r["run_id"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    // Children first: continuing one continues its parent.
    found.sort_by_key(|(trigger, _)| trigger != "workflow");
    found
}

fn crash_and_recover(kill_after: u64) {
    let env = Env::new();
    env.allow_everything();
    env.workflow("child.yaml", CHILD);
    let wf = env.workflow("parent.yaml", PARENT);
    let background = env.spawn_run(&wf);
    kill_at(&env, background, kill_after);
    let mut finished = false;
    for _ in 0..30 {
        let left = unfinished(&env);
        if left.is_empty() {
            finished = true;
            break;
        }
        for (_, run) in left {
            let out = env.stepwise(&["resume", &run, "--json"]);
            wait_for_commands_to_die(&env.ws);
            assert!(
                matches!(out.code, 0 | 3),
                "resume after a kill at {kill_after}: {out}"
            );
            let show = env.show(&run);
            for step in show["steps"].as_array().cloned().unwrap_or_default() {
                if step["status"] != "outcome_unknown" {
                    continue;
                }
                let id = step["id"].as_str().unwrap_or_default().to_string();
                let choice = if lines(&env).contains(&line_of(&id).to_string()) {
                    "--mark-done"
                } else {
                    "--retry"
                };
                let out = env.stepwise(&["resolve", &run, &id, choice, "--json"]);
                assert!(out.code == 0 || out.code == 3, "resolve {id}: {out}");
                wait_for_commands_to_die(&env.ws);
            }
        }
    }
    assert!(
        finished,
        "the family never finished after a kill at {kill_after}"
    );
    let mut want = vec!["a", "b", "p1", "p2"];
    want.sort();
    assert_eq!(
        lines(&env),
        want,
        "kill at {kill_after}: each command exactly once"
    );
    let Value::Array(runs) = env.stepwise(&["runs", "--json"]).json() else {
        panic!("runs --json is not a list");
    };
    assert_eq!(runs.len(), 2, "one child, never started twice: {runs:?}");
    let parent = runs
        .iter()
        .find(|r| r["trigger"] == "cli")
        .and_then(|r| r["run_id"].as_str())
        .expect("the parent")
        .to_string();
    assert_eq!(env.show(&parent)["status"], "succeeded");
    let replayed = env.stepwise(&["replay", &parent, "--recorded"]);
    assert_eq!(replayed.code, 0, "kill at {kill_after}: {replayed}");
    assert!(replayed.stdout.contains("child run"), "{replayed}");
}

#[test]
fn a_parent_and_its_child_killed_at_many_points_resume_without_repeating_a_command() {
    let env = Env::new();
    env.allow_everything();
    env.workflow("child.yaml", CHILD);
    let out = env.run(&env.workflow("parent.yaml", PARENT), &[]);
    assert_eq!(out.code, 0, "{out}");
    let total = event_count(&env.database);
    assert!(total > 20, "a long log: {total}");
    for kill_after in (2..total).step_by(2) {
        crash_and_recover(kill_after);
    }
}
