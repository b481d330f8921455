//! Truthful words: a waiting step says why no rule vouched for it, `show` tells a finished
//! run's time from a running one's and a person's time from the work's, and template mistakes
//! are found at validation rather than as `null` at run time.

use std::time::Duration;

use crate::support::{Env, step};

#[test]
fn a_waiting_step_says_why_an_allow_rule_did_not_vouch_for_it() {
    let env = Env::new();
    for rule in [
        "  - allow: run_command\n",
        "  - allow: run_command\n    command: \"*\"\n",
    ] {
        env.workspace_policy(rule);
        let wf = env.workflow(
            "redirect.yaml",
            "name: redirect\nsteps:\n  - id: log\n    type: run_command\n    command: \"echo hi >> log.txt\"\n",
        );
        let out = env.run(&wf, &[]);
        assert_eq!(out.code, 3, "{rule}: {out}");
        let reason = env.approvals()[0]["approval"]["reason"]
            .as_str()
            .expect("a reason")
            .to_string();
        assert!(reason.contains("allow run_command"), "{reason}");
        assert!(reason.contains("redirections"), "{reason}");
        assert!(!reason.contains("by default"), "{reason}");
        assert_eq!(env.read("log.txt"), None, "nothing ran");
        env.stepwise(&["cancel", &out.run_id()]);
    }
}

#[test]
fn show_tells_time_so_far_from_time_taken_and_waiting_from_working() {
    let env = Env::new();
    let wf = env.workflow(
        "gate.yaml",
        "name: gate\nsteps:\n  - id: gate\n    type: approval\n    message: go?\n  - id: work\n    type: set\n    needs: [gate]\n    values: {x: 1}\n",
    );
    let run = env.run(&wf, &[]).run_id();
    std::thread::sleep(Duration::from_millis(1_100));
    let text = env.stepwise(&["show", &run]).stdout;
    assert!(text.contains("so far"), "{text}");
    assert!(!text.contains(" took "), "{text}");
    let waiting = env.show(&run);
    assert!(
        step(&waiting, "gate")["waiting_ms"].as_i64().unwrap_or(0) >= 1_000,
        "{waiting}"
    );

    assert_eq!(env.approve(&run, "gate", &[]).code, 0);
    let text = env.stepwise(&["show", &run]).stdout;
    assert!(text.contains("took "), "{text}");
    assert!(!text.contains("so far"), "{text}");
    let done = env.show(&run);
    let gate = step(&done, "gate");
    let waited = gate["waiting_ms"].as_i64().expect("waiting_ms");
    assert!(waited >= 1_000, "{gate}");
    assert!(
        gate["executing_ms"].as_i64().expect("executing_ms") < 1_000,
        "{gate}"
    );
    assert!(
        gate["duration_ms"].as_i64().expect("duration_ms") >= waited,
        "{gate}"
    );
}

#[test]
fn template_mistakes_are_validation_errors_naming_the_step() {
    let env = Env::new();
    let cases = [
        ("div.yaml", "values: {x: \"${1/0}\"}", "not a finite number"),
        (
            "filter.yaml",
            "values: {x: \"${'a' | nosuchfilter}\"}",
            "unknown filter `nosuchfilter`",
        ),
        (
            "test.yaml",
            "values: {x: \"${1 is nosuchtest}\"}",
            "unknown test `nosuchtest`",
        ),
    ];
    for (name, values, expected) in cases {
        let file = env.workflow(
            name,
            &format!("name: t\nsteps:\n  - id: compute\n    type: set\n    {values}\n"),
        );
        let out = env.stepwise(&["validate", file.to_str().expect("utf-8 path")]);
        assert_eq!(out.code, 2, "{name}: {out}");
        assert!(out.stdout.contains("step `compute`"), "{name}: {out}");
        assert!(out.stdout.contains(expected), "{name}: {out}");
        let out = env.run(&file, &[]);
        assert_eq!(out.code, 2, "{name}: {out}");
    }
    assert_eq!(env.run_count(), 0, "no run started");

    // Computed from an input, a division by zero fails the step in words; it is never null.
    let file = env.workflow(
        "input.yaml",
        "name: t\ninputs:\n  d: {type: integer, default: 0}\nsteps:\n  - id: compute\n    type: set\n    values: {x: \"${10 / inputs.d}\"}\n",
    );
    let out = env.run(&file, &[]);
    assert_eq!(out.code, 1, "{out}");
    let show = env.show(&out.run_id());
    let error = step(&show, "compute")["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(error.contains("not a finite number"), "{error}");
}
