//! Loops over lists (`for_each`): one iteration per item (`item`, `index`), each an entry of
//! its own (`step[k]`) in the log and the approvals, at most `max_parallel` at once (checked
//! from the log), the outputs in order; a failed iteration fails the step unless
//! `continue_on_error`; bad lists and misplaced names are errors that say so.

use serde_json::{Value, json};

use crate::support::{Env, of_type, step};

/// The most operations of `prefix[…]` steps under way at once, walking the log in order.
fn most_at_once(events: &[Value], prefix: &str) -> usize {
    let mut open = std::collections::BTreeSet::new();
    let mut most = 0;
    for event in events {
        let seq = event["seq"].as_u64().unwrap_or(0);
        match event["type"].as_str() {
            Some("OperationStarted")
                if event["data"]["step"]
                    .as_str()
                    .is_some_and(|s| s.starts_with(prefix)) =>
            {
                open.insert(seq);
                most = most.max(open.len());
            }
            Some("OperationSucceeded" | "OperationFailed") => {
                if let Some(op) = event["data"]["op"].as_u64() {
                    open.remove(&op);
                }
            }
            _ => {}
        }
    }
    most
}

#[test]
fn a_hundred_items_run_at_most_eight_at_once_and_their_outputs_come_back_in_order() {
    let env = Env::new();
    env.allow_everything();
    let hundred: Vec<u32> = (0..100).collect();
    let wf = env.workflow(
        "many.yaml",
        &r#"
name: many
steps:
  - id: numbers
    type: set
    values:
      list: ${LIST}
  - id: square
    needs: [numbers]
    for_each: ${steps.numbers.output.list}
    max_parallel: 8
    type: run_command
    command: "sleep 0.0$((${item} % 3)); echo $((${item} * ${item}))"
  - id: total
    needs: [square]
    type: set
    values:
      count: ${steps.square.output | length}
      last: ${steps.square.output[99].stdout | trim}
"#
        .replace("LIST", &format!("{hundred:?}")),
    );
    let out = env.run(&wf, &["--max-parallel", "32"]);
    assert_eq!(out.code, 0, "{out}");
    let run = out.run_id();
    let show = env.show(&run);
    assert_eq!(
        step(&show, "total")["output"],
        json!({"count": 100, "last": "9801"})
    );
    assert_eq!(step(&show, "square[7]")["output"]["stdout"], "49\n");
    let events = env.events(&run);
    let most = most_at_once(&events, "square[");
    assert!(most <= 8, "{most} iterations ran at once");
    assert!(most >= 2, "iterations ran side by side ({most})");
    assert_eq!(of_type(&events, "StepExpanded").len(), 1);
    let replayed = env.stepwise(&["replay", &run]);
    assert_eq!(replayed.code, 0, "{replayed}");
}

#[test]
fn an_iteration_waits_for_its_own_approval_as_step_k() {
    let env = Env::new();
    let wf = env.workflow(
        "files.yaml",
        r#"
name: files
steps:
  - id: write
    for_each: ${["a.txt", "b.txt", "c.txt"]}
    type: edit_file
    path: ${item}
    content: "file ${index}\n"
"#,
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 3, "{out}");
    let run = out.run_id();
    let waiting: Vec<String> = env
        .approvals()
        .iter()
        .filter(|a| a["run_id"] == run.as_str())
        .filter_map(|a| a["step"].as_str().map(str::to_string))
        .collect();
    assert_eq!(waiting, ["write[0]", "write[1]", "write[2]"]);
    for k in 0..3 {
        let out = env.approve(&run, &format!("write[{k}]"), &[]);
        assert!(out.code == 0 || out.code == 3, "{out}");
    }
    assert_eq!(env.show(&run)["status"], "succeeded");
    assert_eq!(env.read("b.txt").as_deref(), Some("file 1\n"));
    let show = env.show(&run);
    let output = &step(&show, "write")["output"];
    assert_eq!(output.as_array().map(Vec::len), Some(3));
    // The files the iterations wrote go back when the run is rewound to the loop.
    let out = env.stepwise(&["rewind", &run, "--to", "write", "--yes", "--json"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(
        env.read("b.txt").is_none(),
        "b.txt did not exist before the loop"
    );
}

#[test]
fn a_failed_iteration_fails_the_step_unless_told_to_go_on() {
    let env = Env::new();
    env.allow_everything();
    for (go_on, code) in [(false, 1), (true, 0)] {
        let wf = env.workflow(
            "fail.yaml",
            &format!(
                "name: fail\nsteps:\n  - id: each\n    for_each: ${{[1, 2, 3]}}\n    continue_on_error: {go_on}\n    type: run_command\n    command: \"test ${{item}} != 2\"\n"
            ),
        );
        let out = env.run(&wf, &[]);
        assert_eq!(out.code, code, "continue_on_error {go_on}: {out}");
        let each = step(&env.show(&out.run_id()), "each").clone();
        if go_on {
            let outputs = each["output"].as_array().cloned().unwrap_or_default();
            assert_eq!(outputs.len(), 3);
            assert_eq!(outputs[1]["status"], "failed", "{each}");
            assert_eq!(outputs[2]["exit_code"], 0, "{each}");
        } else {
            assert!(
                each["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("iteration 1 (each[1]) failed")),
                "{each}"
            );
        }
    }
}

#[test]
fn bad_lists_and_misplaced_names_are_errors_that_say_so() {
    let env = Env::new();
    let wf = env.workflow(
        "notalist.yaml",
        "name: a\nsteps:\n  - id: a\n    for_each: ${'abc'}\n    type: set\n    values: {x: \"${item}\"}\n",
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        step(&env.show(&out.run_id()), "a")["error"]
            .as_str()
            .is_some_and(|e| e.contains("must give a list")),
        "{out}"
    );
    let many: Vec<u32> = (0..1001).collect();
    let big = env.workflow(
        "big.yaml",
        &format!("name: a\nsteps:\n  - id: a\n    for_each: ${{{many:?}}}\n    type: set\n    values: {{x: \"${{item}}\"}}\n"),
    );
    let out = env.run(&big, &[]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        step(&env.show(&out.run_id()), "a")["error"]
            .as_str()
            .is_some_and(|e| e.contains("at most 1000")),
        "{out}"
    );
    for (yaml, says) in [
        (
            "name: a\nsteps:\n  - id: a\n    type: set\n    values: {x: \"${item}\"}\n",
            "reads `item`, which exists only in a step that has `for_each`",
        ),
        (
            "name: a\nsteps:\n  - id: a\n    type: set\n    values: {}\n    max_parallel: 2\n",
            "belong to a step with `for_each`",
        ),
        (
            "name: a\nsteps:\n  - id: a\n    for_each: ${[1]}\n    when: ${item > 0}\n    type: set\n    values: {}\n",
            "nor its `when`",
        ),
    ] {
        let wf = env.workflow("bad.yaml", yaml);
        let out = env.stepwise(&["validate", wf.to_str().expect("utf-8")]);
        assert_ne!(out.code, 0, "{yaml}: {out}");
        assert!(out.to_string().contains(says), "{yaml}: {out}");
    }
}
