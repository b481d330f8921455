//! Step-through: `run --step` waits before every step until `continue`; `continue --all`
//! lets the rest run; breakpoints from the workflow and from `--break` pause only there; the
//! pauses are recorded as approvals and the run replays.

use serde_json::Value;

use crate::support::{Env, of_type, step};

/// Three steps; the middle one's command leaves a file behind.
fn three_steps(env: &Env, extra: &str) -> std::path::PathBuf {
    env.allow_everything();
    env.workflow(
        "three.yaml",
        &format!(
            r#"
name: three
{extra}
steps:
  - id: a
    type: set
    values:
      x: "1"
  - id: b
    needs: [a]
    type: run_command
    command: "printf ran > b.txt"
  - id: c
    needs: [b]
    type: set
    values:
      y: "2"
"#
        ),
    )
}

fn statuses(env: &Env, run: &str) -> Vec<String> {
    let show = env.show(run);
    ["a", "b", "c"]
        .iter()
        .map(|id| step(&show, id)["status"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn a_stepped_run_waits_before_each_step_until_continued_and_replays() {
    let env = Env::new();
    let wf = three_steps(&env, "");
    let out = env.run(&wf, &["--step"]);
    assert_eq!(out.code, 3, "{out}");
    let run = out.run_id();
    assert_eq!(
        statuses(&env, &run),
        ["awaiting_approval", "pending", "pending"]
    );
    let waiting = &out.json()["waiting"];
    assert!(
        waiting[0]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("step-through")),
        "{waiting}"
    );

    let out = env.stepwise(&["continue", &run, "--json"]);
    assert_eq!(out.code, 3, "{out}");
    assert_eq!(
        statuses(&env, &run),
        ["succeeded", "awaiting_approval", "pending"]
    );
    assert!(env.read("b.txt").is_none(), "b has not started");
    let text = env.stepwise(&["approvals", &run]).to_string();
    assert!(
        text.contains("step `b` (run_command) is about to start"),
        "{text}"
    );

    let out = env.stepwise(&["continue", &run, "--json"]);
    assert_eq!(out.code, 3, "{out}");
    assert_eq!(env.read("b.txt").as_deref(), Some("ran"));
    assert_eq!(
        statuses(&env, &run),
        ["succeeded", "succeeded", "awaiting_approval"]
    );

    let out = env.stepwise(&["continue", &run, "--all", "--json"]);
    assert_eq!(out.code, 0, "{out}");
    let events = env.events(&run);
    let granted: Vec<&Value> = of_type(&events, "ApprovalGranted")
        .into_iter()
        .filter(|e| e["data"]["mode"]["kind"] == "manual")
        .map(|e| &e["data"]["step"])
        .collect();
    assert_eq!(
        granted,
        ["a", "b"],
        "each continue is recorded as an approval"
    );
    assert_eq!(of_type(&events, "BreakpointsCleared").len(), 1);
    let replayed = env.stepwise(&["replay", &run]);
    assert_eq!(replayed.code, 0, "{replayed}");

    let out = env.stepwise(&["continue", &run]);
    assert_eq!(out.code, 2, "nothing waits to start: {out}");
}

#[test]
fn breakpoints_from_the_workflow_and_the_command_line_pause_only_there() {
    let env = Env::new();
    let wf = three_steps(&env, "breakpoints: [b]");
    let out = env.run(&wf, &["--break", "c"]);
    assert_eq!(out.code, 3, "{out}");
    let run = out.run_id();
    assert_eq!(
        statuses(&env, &run),
        ["succeeded", "awaiting_approval", "pending"]
    );
    assert!(
        out.json()["waiting"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("a breakpoint")),
        "{out}"
    );
    let out = env.stepwise(&["continue", &run, "b", "--json"]);
    assert_eq!(out.code, 3, "{out}");
    assert_eq!(
        statuses(&env, &run),
        ["succeeded", "succeeded", "awaiting_approval"]
    );
    // A pause is an approval: `approve` continues too, and `reject` would stop the step.
    let out = env.approve(&run, "c", &[]);
    assert_eq!(out.code, 0, "{out}");

    let out = env.run(&wf, &["--break", "zz"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.to_string().contains("names step `zz`"), "{out}");
    let bad = env.workflow(
        "bad.yaml",
        "name: bad\nbreakpoints: [nope]\nsteps:\n  - id: a\n    type: set\n    values: {}\n",
    );
    let out = env.stepwise(&["validate", bad.to_str().expect("utf-8")]);
    assert_ne!(out.code, 0, "{out}");
    assert!(
        out.to_string().contains("`breakpoints` names step `nope`"),
        "{out}"
    );
}

#[test]
fn continue_lets_every_step_waiting_side_by_side_start() {
    let env = Env::new();
    env.allow_everything();
    let wf = env.workflow(
        "pair.yaml",
        "name: pair\nsteps:\n  - id: left\n    type: run_command\n    command: \"printf l > l.txt\"\n  - id: right\n    type: run_command\n    command: \"printf r > r.txt\"\n",
    );
    let out = env.run(&wf, &["--step"]);
    assert_eq!(out.code, 3, "{out}");
    let run = out.run_id();
    assert_eq!(out.json()["waiting"].as_array().map(Vec::len), Some(2));
    let out = env.stepwise(&["continue", &run, "--json"]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(env.read("l.txt").as_deref(), Some("l"));
    assert_eq!(env.read("r.txt").as_deref(), Some("r"));
}
