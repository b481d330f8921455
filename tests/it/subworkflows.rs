//! Sub-workflows (`type: workflow`): a step runs another workflow file as a child run in the
//! same workspace. Its inputs go in, its `outputs` come back as the step's output; the child's
//! approvals are asked in the inbox with the parent named, and deciding them from the CLI
//! continues the parent; a pause or cancel of the parent is the child's too; replay of the
//! parent replays the child; recursion and too-deep nesting are refused at validation.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Env, of_type, step};

const CHILD: &str = r#"
name: child
inputs:
  who: {type: string}
  times: {type: integer, default: 1}
steps:
  - id: greet
    type: run_command
    command: "echo hello ${inputs.who} x${inputs.times} >> lines.txt; echo hello ${inputs.who}"
  - id: shout
    needs: [greet]
    type: set
    values:
      loud: ${steps.greet.output.stdout | trim | upper}
outputs:
  line: ${steps.shout.output.loud}
  times: ${inputs.times}
"#;

const PARENT: &str = r#"
name: parent
steps:
  - id: sub
    type: workflow
    path: child.yaml
    inputs:
      who: world
      times: "3"
  - id: after
    needs: [sub]
    type: set
    values:
      got: ${steps.sub.output.line}
      times: ${steps.sub.output.times}
"#;

/// The runs of `runs --json` whose trigger is `trigger`.
fn runs_by(env: &Env, trigger: &str) -> Vec<Value> {
    match env.stepwise(&["runs", "--json"]).json() {
        Value::Array(runs) => runs
            .into_iter()
            .filter(|r| r["trigger"] == trigger)
            .collect(),
        other => panic!("runs --json is not a list: {other}"),
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_child_run_takes_its_inputs_and_gives_back_its_outputs_and_replays_with_the_parent() {
    let env = Env::new();
    env.allow_everything();
    env.workflow("child.yaml", CHILD);
    let wf = env.workflow("parent.yaml", PARENT);
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 0, "{out}");
    let parent = out.run_id();
    let show = env.show(&parent);
    assert_eq!(
        step(&show, "after")["output"],
        json!({"got": "HELLO WORLD", "times": 3})
    );
    let child = show["children"][0]["run_id"]
        .as_str()
        .expect("the parent names its child")
        .to_string();
    assert_eq!(show["children"][0]["step"], "sub");
    assert_eq!(step(&show, "sub")["output"]["run_id"], child.as_str());
    assert_eq!(env.read("lines.txt").as_deref(), Some("hello world x3\n"));
    // The child names its parent, and the family shares the parent's id as its root.
    let child_show = env.show(&child);
    assert_eq!(child_show["parent"]["run_id"], parent.as_str());
    assert_eq!(child_show["parent"]["step"], "sub");
    assert_eq!(child_show["parent"]["depth"], 1);
    assert_eq!(child_show["parent"]["root"], parent.as_str());
    assert_eq!(child_show["run"]["parent"], parent.as_str());
    assert_eq!(child_show["inputs"], json!({"who": "world", "times": 3}));
    // Listed under its parent.
    let list = env.stepwise(&["runs"]);
    let lines: Vec<&str> = list.stdout.lines().collect();
    let at = |id: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(id))
            .expect("listed")
    };
    assert_eq!(at(&child), at(&parent) + 1, "{list}");
    assert!(lines[at(&child)].contains("└ child"), "{list}");
    // Replay of the parent replays the child too, without running anything.
    std::fs::remove_file(env.ws.join("lines.txt")).expect("remove");
    let replayed = env.stepwise(&["replay", &parent, "--recorded"]);
    assert_eq!(replayed.code, 0, "{replayed}");
    assert!(
        replayed
            .stdout
            .contains(&format!("child run {child} (step `sub`)")),
        "{replayed}"
    );
    assert!(replayed.stdout.contains("decisions match"), "{replayed}");
    assert_eq!(env.read("lines.txt"), None, "replay ran nothing");
}

#[test]
fn a_childs_approval_is_asked_with_its_parent_named_and_deciding_it_continues_the_parent() {
    let env = Env::new();
    env.workflow("child.yaml", CHILD);
    let wf = env.workflow("parent.yaml", PARENT);
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 3, "the family waits for a person: {out}");
    let parent = out.run_id();
    let children = out.json()["waiting_children"].clone();
    let child = children[0].as_str().expect("the waiting child").to_string();
    let text = env.stepwise(&["show", &parent]);
    assert!(text.stdout.contains(&child), "{text}");
    let approvals = env.approvals();
    assert_eq!(approvals.len(), 1, "{approvals:?}");
    assert_eq!(approvals[0]["run_id"], child.as_str());
    assert_eq!(approvals[0]["step"], "greet");
    assert_eq!(approvals[0]["parent"]["run_id"], parent.as_str());
    assert_eq!(approvals[0]["parent"]["step"], "sub");
    let listed = env.stepwise(&["approvals"]);
    assert!(
        listed
            .stdout
            .contains(&format!("child run of {parent} (its step `sub`)")),
        "{listed}"
    );
    // Nobody drives the parent, but it is not interrupted: it waits on its child.
    let parent_row = runs_by(&env, "cli")
        .into_iter()
        .find(|r| r["run_id"] == parent.as_str())
        .expect("the parent listed");
    assert_eq!(parent_row["status"], "waiting_on_child", "{parent_row}");
    let runs = env.stepwise(&["runs"]);
    assert!(
        runs.stdout.contains("waiting_on_child: a child run"),
        "{runs}"
    );
    assert!(!runs.stdout.contains("interrupted:"), "{runs}");
    // The parent goes on from what the child leaves in the files: no rewinding it meanwhile.
    let rewind = env.stepwise(&["rewind", &child, "--to", "greet", "--yes"]);
    assert_ne!(rewind.code, 0, "{rewind}");
    assert!(
        rewind.stderr.contains(&format!(
            "is a child run of {parent} (its step `sub`), which has not ended"
        )),
        "{rewind}"
    );
    let approved = env.approve(&child, "greet", &[]);
    assert_eq!(approved.code, 0, "{approved}");
    // The parent went on in the same process, to its end.
    let show = env.show(&parent);
    assert_eq!(show["status"], "succeeded", "{show}");
    assert_eq!(step(&show, "after")["output"]["got"], "HELLO WORLD");
    assert_eq!(env.read("lines.txt").as_deref(), Some("hello world x3\n"));
}

#[test]
fn pausing_and_cancelling_the_parent_pauses_and_cancels_its_child() {
    let env = Env::new();
    env.allow_everything();
    env.workflow(
        "slow.yaml",
        r#"
name: slow
steps:
  - id: first
    type: run_command
    command: "touch started; sleep 1"
  - id: second
    needs: [first]
    type: run_command
    command: "touch second; sleep 60"
"#,
    );
    let wf = env.workflow(
        "parent.yaml",
        "name: parent\nsteps:\n  - id: sub\n    type: workflow\n    path: slow.yaml\n",
    );
    let background = env.spawn_run(&wf);
    wait_for("the child's first command", || {
        env.ws.join("started").exists()
    });
    let parent = runs_by(&env, "cli")[0]["run_id"]
        .as_str()
        .expect("parent")
        .to_string();
    let child = runs_by(&env, "workflow")[0]["run_id"]
        .as_str()
        .expect("child")
        .to_string();
    let paused = env.stepwise(&["pause", &parent, "--json"]);
    assert!(paused.code == 0 || paused.code == 3, "{paused}");
    wait_for("the child paused", || {
        env.show(&child)["status"] == "paused"
    });
    let pause = of_type(&env.events(&child), "RunPauseRequested")
        .first()
        .map(|e| e["data"]["by"].clone());
    assert!(
        pause
            .as_ref()
            .and_then(Value::as_str)
            .is_some_and(|by| by.contains(&format!("through parent run {parent}"))),
        "{pause:?}"
    );
    // Paused after its first step: the second never started.
    std::thread::sleep(Duration::from_millis(500));
    assert!(!env.ws.join("second").exists());
    let resumed = env.stepwise(&["resume", &parent, "--no-wait", "--json"]);
    assert_eq!(resumed.code, 0, "{resumed}");
    wait_for("the child's second command", || {
        env.ws.join("second").exists()
    });
    let cancelled = env.stepwise(&["cancel", &parent, "--json"]);
    assert!(cancelled.code == 0 || cancelled.code == 1, "{cancelled}");
    wait_for("both runs cancelled", || {
        env.show(&parent)["status"] == "cancelled" && env.show(&child)["status"] == "cancelled"
    });
    let _ = background.finish(Duration::from_secs(20));
    crate::crash::wait_for_commands_to_die(&env.ws);
}

#[test]
fn a_workflow_that_runs_itself_or_nests_too_deep_is_refused_with_its_line_and_step() {
    let env = Env::new();
    env.workflow(
        "a.yaml",
        "name: a\nsteps:\n  - id: to_b\n    type: workflow\n    path: b.yaml\n",
    );
    env.workflow(
        "b.yaml",
        "name: b\nsteps:\n  - id: noop\n    type: set\n    values: {x: 1}\n  - id: back\n    type: workflow\n    path: a.yaml\n",
    );
    let a = env.root().join("a.yaml");
    let out = env.stepwise(&["validate", a.to_str().expect("utf-8")]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stdout.contains("b.yaml:6:1: step `back`"), "{out}");
    assert!(out.stdout.contains("would run itself"), "{out}");
    let run = env.run(&a, &[]);
    assert_eq!(
        run.code, 2,
        "a run is refused as validate refuses it: {run}"
    );
    // Ten files deep: refused, with the step that goes too deep.
    for level in 0..10 {
        env.workflow(
            &format!("d{level}.yaml"),
            &format!(
                "name: d{level}\nsteps:\n  - id: down\n    type: workflow\n    path: d{}.yaml\n",
                level + 1
            ),
        );
    }
    env.workflow(
        "d10.yaml",
        "name: d10\nsteps:\n  - id: leaf\n    type: set\n    values: {x: 1}\n",
    );
    let d0 = env.root().join("d0.yaml");
    let out = env.stepwise(&["validate", d0.to_str().expect("utf-8")]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stdout.contains("more than 8 deep"), "{out}");
    // Inputs the child does not declare, or lacks: named at the step.
    env.workflow("child.yaml", CHILD);
    let wrong = env.workflow(
        "wrong.yaml",
        "name: wrong\nsteps:\n  - id: sub\n    type: workflow\n    path: child.yaml\n    inputs:\n      whom: x\n",
    );
    let out = env.stepwise(&["validate", wrong.to_str().expect("utf-8")]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stdout
            .contains("step `sub`: `inputs`: `child.yaml` has no input `whom`"),
        "{out}"
    );
    assert!(out.stdout.contains("requires input `who`"), "{out}");
    // A file in the workspace's workflows/ is found there.
    env.write("workflows/lib/leaf.yaml", "name: leaf\nsteps:\n  - id: s\n    type: set\n    values: {v: 7}\noutputs:\n  v: ${steps.s.output.v}\n");
    let uses = env.workflow(
        "uses.yaml",
        "name: uses\nsteps:\n  - id: sub\n    type: workflow\n    path: lib/leaf.yaml\n",
    );
    let ws = env.ws.to_str().expect("utf-8");
    let out = env.stepwise(&["validate", uses.to_str().expect("utf-8"), "--workspace", ws]);
    assert_eq!(out.code, 0, "{out}");
    let ran = env.run(&uses, &[]);
    assert_eq!(ran.code, 0, "{ran}");
    assert_eq!(step(&env.show(&ran.run_id()), "sub")["output"]["v"], 7);
}
