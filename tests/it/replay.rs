//! `stepwise replay RUN`: re-drives the core over the recorded log, answering every operation
//! from it. Finished runs match (succeeded, failed or rejected); a changed workflow is reported
//! at the first divergent event; nothing is performed.

use serde_json::json;

use crate::support::{Env, of_step, seq};

#[test]
fn replay_of_a_succeeded_run_matches_every_decision() {
    let env = Env::new();
    env.allow_everything();
    let wf = env.workflow(
        "ok.yaml",
        r#"
name: ok
steps:
  - id: write
    type: edit_file
    path: a.txt
    content: a
  - id: read
    type: read_file
    needs: [write]
    path: a.txt
  - id: echo
    type: run_command
    needs: [read]
    command: ["echo", "${steps.read.output.content}"]
  - id: sum
    type: set
    needs: [echo]
    values: {out: "${steps.echo.output.stdout | trim}"}
"#,
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 0, "{out}");
    let run = out.run_id();
    let events = env.events(&run);

    let text = env.stepwise(&["replay", &run]);
    assert_eq!(text.code, 0, "{text}");
    assert!(
        text.stdout.starts_with(&format!(
            "replayed {} events against {}: all ",
            events.len(),
            wf.display()
        )),
        "{text}"
    );
    assert!(
        text.stdout
            .contains("decisions match; run succeeded; nothing was performed"),
        "{text}"
    );

    let json = env.stepwise(&["replay", &run, "--json"]);
    assert_eq!(json.code, 0, "{json}");
    let report = json.json();
    assert_eq!(report["matches"], true);
    assert_eq!(report["workflow_changed"], false);
    assert_eq!(report["report"]["events"], events.len());
    assert_eq!(report["report"]["status"], "succeeded");
}

#[test]
fn replay_of_a_failed_run_matches() {
    let env = Env::new();
    env.allow_everything();
    let wf = env.workflow(
        "fail.yaml",
        r#"
name: fail
steps:
  - id: boom
    type: run_command
    command: exit 1
    retry: {max_attempts: 2, backoff: 10ms}
  - id: after
    type: set
    needs: [boom]
    values: {x: 1}
"#,
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 1, "{out}");
    let replay = env.stepwise(&["replay", &out.run_id(), "--json"]);
    assert_eq!(replay.code, 0, "{replay}");
    assert_eq!(replay.json()["matches"], true);
    assert_eq!(replay.json()["report"]["status"], "failed");
}

#[test]
fn replay_of_a_rejected_run_matches() {
    let env = Env::new();
    let wf = env.workflow(
        "reject.yaml",
        "name: reject\nsteps:\n  - id: change\n    type: edit_file\n    path: a.txt\n    content: a\n",
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 3, "{out}");
    let run = out.run_id();
    let rejected = env.reject(&run, "change", "not now");
    assert_eq!(rejected.code, 1, "{rejected}");
    let replay = env.stepwise(&["replay", &run, "--json"]);
    assert_eq!(replay.code, 0, "{replay}");
    assert_eq!(replay.json()["matches"], true);
    assert_eq!(replay.json()["report"]["status"], "failed");
}

const GREET: &str = r#"
name: greet
steps:
  - id: prepare
    type: set
    values: {word: hello}
  - id: greet
    type: run_command
    needs: [prepare]
    command: ["echo", "${steps.prepare.output.word}", "WORD"]
"#;

#[test]
fn replay_after_the_workflow_changed_names_the_first_divergent_event() {
    let env = Env::new();
    let wf = env.workflow("greet.yaml", &GREET.replace("WORD", "world"));
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 3, "{out}");
    let run = out.run_id();
    let approved = env.approve(&run, "greet", &[]);
    assert_eq!(approved.code, 0, "{approved}");
    let events = env.events(&run);
    let requested = of_step(&events, "ApprovalRequested", "greet");
    assert_eq!(requested.len(), 1);
    let requested_seq = seq(requested[0]);

    std::fs::write(&wf, GREET.replace("WORD", "moon")).expect("change the workflow");
    let replay = env.stepwise(&["replay", &run, "--json"]);
    assert_eq!(replay.code, 1, "{replay}");
    let report = replay.json();
    assert_eq!(report["matches"], false);
    assert_eq!(report["workflow_changed"], true);
    let divergence = &report["divergence"];
    assert_eq!(
        divergence["seq"], requested_seq,
        "the first decision that differs is the approval request"
    );
    assert_eq!(
        divergence["recorded"]["data"]["proposal"]["command"],
        json!({"argv": ["echo", "hello", "world"]})
    );
    assert_eq!(
        divergence["expected"]["data"]["proposal"]["command"],
        json!({"argv": ["echo", "hello", "moon"]})
    );

    let text = env.stepwise(&["replay", &run]);
    assert_eq!(text.code, 1, "{text}");
    assert!(
        text.stdout.starts_with(&format!(
            "replay against {} diverged at event {requested_seq}, step `greet`:",
            wf.display()
        )),
        "{text}"
    );

    let recorded = env.stepwise(&["replay", &run, "--recorded", "--json"]);
    assert_eq!(
        recorded.code, 0,
        "the recorded workflow still matches: {recorded}"
    );
    assert_eq!(recorded.json()["matches"], true);
}

#[test]
fn replay_after_a_read_path_changed_diverges_at_its_operation() {
    let env = Env::new();
    env.write("a.txt", "a");
    env.write("b.txt", "b");
    let yaml = "name: read\nsteps:\n  - id: first\n    type: set\n    values: {x: 1}\n  - id: read\n    type: read_file\n    needs: [first]\n    path: FILE\n";
    let wf = env.workflow("read.yaml", &yaml.replace("FILE", "a.txt"));
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 0, "{out}");
    let run = out.run_id();
    let started = seq(of_step(&env.events(&run), "OperationStarted", "read")[0]);

    std::fs::write(&wf, yaml.replace("FILE", "b.txt")).expect("change the workflow");
    let replay = env.stepwise(&["replay", &run, "--json"]);
    assert_eq!(replay.code, 1, "{replay}");
    let divergence = &replay.json()["divergence"];
    assert_eq!(divergence["seq"], started);
    assert_eq!(divergence["recorded"]["type"], "OperationStarted");
    assert_eq!(divergence["expected"]["data"]["request"]["path"], "b.txt");
}

#[test]
fn replay_performs_no_side_effects_and_writes_no_events() {
    let env = Env::new();
    env.allow_everything();
    let wf = env.workflow(
        "effects.yaml",
        r#"
name: effects
steps:
  - id: create
    type: edit_file
    path: created.txt
    content: made by the run
  - id: append
    type: run_command
    needs: [create]
    command: echo line >> log.txt
"#,
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 0, "{out}");
    let run = out.run_id();
    assert_eq!(env.read("log.txt").as_deref(), Some("line\n"));
    std::fs::remove_file(env.ws.join("created.txt")).expect("remove");
    let events_before = env.event_count(Some(&run));
    let runs_before = env.run_count();

    for _ in 0..2 {
        let replay = env.stepwise(&["replay", &run]);
        assert_eq!(replay.code, 0, "{replay}");
    }
    assert!(
        !env.ws.join("created.txt").exists(),
        "the edit was not performed again"
    );
    assert_eq!(
        env.read("log.txt").as_deref(),
        Some("line\n"),
        "the command did not run again"
    );
    assert_eq!(env.event_count(Some(&run)), events_before);
    assert_eq!(env.run_count(), runs_before);
}
