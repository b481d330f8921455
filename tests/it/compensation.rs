//! Compensation (`compensate:`): when a run fails or is cancelled after steps succeeded, their
//! compensations run, the last to succeed first, each gated and recorded like any step; one
//! that fails is recorded and the rest still run; replay matches.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{Env, of_type, step};

const THREE: &str = r#"name: release
steps:
  - id: create
    type: run_command
    command: "echo created >> log.txt"
    compensate:
      id: undo_create
      type: run_command
      command: "echo undo-create >> log.txt"
  - id: update
    needs: [create]
    type: run_command
    command: "echo updated >> log.txt"
    compensate:
      id: undo_update
      type: run_command
      command: "echo undo-update ${steps.update.output.exit_code} >> log.txt; exit 3"
  - id: deploy
    needs: [update]
    type: run_command
    command: "echo deploying >> log.txt; exit 1"
"#;

#[test]
fn a_run_failing_at_its_third_step_undoes_the_first_two_in_reverse_and_replays() {
    let env = Env::new();
    env.allow_everything();
    let wf = env.workflow("release.yaml", THREE);
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 1, "{out}");
    let run = out.run_id();
    assert_eq!(
        env.read("log.txt").as_deref(),
        Some("created\nupdated\ndeploying\nundo-update 0\nundo-create\n")
    );
    let shown = env.show(&run);
    assert_eq!(shown["status"], "failed");
    // A compensation that fails is recorded; the next one still runs.
    assert_eq!(step(&shown, "undo_update")["status"], "failed");
    assert_eq!(step(&shown, "undo_create")["status"], "succeeded");
    assert_eq!(step(&shown, "undo_create")["compensates"], "create");
    let events = env.events(&run);
    let started = of_type(&events, "CompensationStarted");
    assert_eq!(started.len(), 1);
    assert_eq!(started[0]["data"]["steps"], json!(["update", "create"]));
    let failed = of_type(&events, "RunFailed");
    assert_eq!(failed[0]["data"]["steps"], json!(["deploy", "undo_update"]));
    let text = env.stepwise(&["show", &run]);
    assert!(text.stdout.contains("compensations"), "{text}");

    let replay = env.stepwise(&["replay", &run, "--json"]);
    assert_eq!(replay.code, 0, "{replay}");
    assert_eq!(replay.json()["matches"], true, "{replay}");
    // Followed in the terminal, the compensations are said as they start.
    let ws = env.ws.display().to_string();
    let followed = env.stepwise(&["run", wf.to_str().expect("utf-8"), "--workspace", &ws]);
    assert_eq!(followed.code, 1, "{followed}");
    assert!(
        followed
            .stdout
            .contains("↩ compensating: undoing `update`, `create` (the last to succeed first)"),
        "{followed}"
    );
    // A run that succeeds undoes nothing.
    let fine = env.workflow(
        "fine.yaml",
        "name: fine\nsteps:\n  - id: a\n    type: run_command\n    command: \"echo a >> fine.txt\"\n    compensate:\n      id: undo_a\n      type: run_command\n      command: \"echo undo >> fine.txt\"\n",
    );
    assert_eq!(env.run(&fine, &[]).code, 0);
    assert_eq!(env.read("fine.txt").as_deref(), Some("a\n"));
}

#[test]
fn a_cancelled_run_undoes_what_succeeded_and_its_compensations_wait_for_approval_like_any_step() {
    let env = Env::new();
    env.allow_everything();
    let wf = env.workflow(
        "long.yaml",
        r#"name: long
steps:
  - id: reserve
    type: run_command
    command: "echo reserved >> log.txt"
    compensate:
      id: release
      approval: required
      type: edit_file
      path: released.txt
      content: "released ${steps.reserve.output.exit_code}\n"
  - id: wait
    needs: [reserve]
    type: run_command
    command: ["sleep", "60"]
"#,
    );
    let background = env.spawn_run(&wf);
    let deadline = Instant::now() + Duration::from_secs(20);
    let run = loop {
        if let Some(run) = env.first_run_id(Duration::from_millis(100))
            && step(&env.show(&run), "wait")["status"] == "running"
        {
            break run;
        }
        assert!(
            Instant::now() < deadline,
            "the run never got to its long step"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let cancel = env.stepwise(&["cancel", &run, "--no-wait"]);
    assert_eq!(cancel.code, 0, "{cancel}");
    // The compensation asks for a person (`approval: required`), as any step would.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !env.approvals().iter().any(|a| a["step"] == "release") {
        assert!(
            Instant::now() < deadline,
            "the compensation never asked: {:?}",
            env.show(&run)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(step(&env.show(&run), "wait")["status"], "cancelled");
    let approved = env.approve(&run, "release", &[]);
    // Approving it lets the run end, cancelled, as it was asked to.
    assert_eq!(approved.json()["status"], "cancelled", "{approved}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while env.show(&run)["status"] != "cancelled" {
        assert!(
            Instant::now() < deadline,
            "the run never ended: {:?}",
            env.show(&run)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(background);
    assert_eq!(env.read("released.txt").as_deref(), Some("released 0\n"));
    let replay = env.stepwise(&["replay", &run, "--json"]);
    assert_eq!(replay.json()["matches"], true, "{replay}");
}

#[test]
fn a_compensation_is_checked_like_a_step() {
    let env = Env::new();
    let wf = env.workflow(
        "bad.yaml",
        r#"name: bad
steps:
  - id: a
    type: set
    values: {x: 1}
    compensate:
      id: a
      type: set
      values: {y: 1}
  - id: b
    type: set
    values: {x: 1}
    compensate:
      id: undo_b
      needs: [a]
      type: set
      values: {y: 1}
  - id: c
    type: set
    values: {x: 1}
    compensate:
      id: undo_c
      type: set
      values: {y: "${steps.d.output.x}"}
  - id: d
    needs: [c]
    type: set
    values: {x: 1}
"#,
    );
    let out = env.stepwise(&["validate", wf.to_str().expect("utf-8")]);
    assert_ne!(out.code, 0);
    let said = format!("{}{}", out.stdout, out.stderr);
    for expected in [
        "the compensation's id `a` is taken",
        "a compensation takes no `needs`",
        "`steps.d`, which is not upstream of `undo_c`",
    ] {
        assert!(said.contains(expected), "{expected}: {said}");
    }
}

#[test]
fn a_cancel_while_a_step_waits_for_a_person_runs_the_compensations_it_sets_off() {
    let env = Env::new();
    env.allow_everything();
    let wf = env.workflow(
        "confirm.yaml",
        r#"name: confirm
steps:
  - id: reserve
    type: run_command
    command: "echo reserved >> log.txt"
    compensate:
      id: release
      type: run_command
      command: "echo released >> log.txt"
  - id: confirm
    needs: [reserve]
    type: approval
    message: Go on?
"#,
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 3, "{out}");
    let run = out.run_id();
    // The compensation starts in the very commit of the cancel: the cancel must not stop it.
    let cancelled = env.stepwise(&["cancel", &run]);
    assert_eq!(cancelled.code, 1, "{cancelled}");
    let shown = env.show(&run);
    assert_eq!(shown["status"], "cancelled");
    assert_eq!(step(&shown, "release")["status"], "succeeded");
    assert_eq!(env.read("log.txt").as_deref(), Some("reserved\nreleased\n"));
}

#[test]
fn a_breakpoint_may_name_a_compensation_and_holds_it_until_continued() {
    let env = Env::new();
    env.allow_everything();
    let wf = env.workflow(
        "paused-undo.yaml",
        &THREE.replacen(
            "name: release\n",
            "name: release\nbreakpoints: [undo_create]\n",
            1,
        ),
    );
    let out = env.run(&wf, &[]);
    assert_eq!(
        out.code, 3,
        "the compensation waits at its breakpoint: {out}"
    );
    let run = out.run_id();
    assert_eq!(
        step(&env.show(&run), "undo_create")["status"],
        "awaiting_approval"
    );
    assert!(
        !env.read("log.txt")
            .unwrap_or_default()
            .contains("undo-create")
    );
    let continued = env.stepwise(&["continue", &run, "undo_create"]);
    assert_eq!(
        continued.code, 1,
        "the run ends failed, undone: {continued}"
    );
    assert!(
        env.read("log.txt")
            .unwrap_or_default()
            .contains("undo-create")
    );
    // `--break` may name one too; a name that is neither a step nor a compensation is refused.
    let plain = env.workflow("release.yaml", THREE);
    let by_flag = env.run(&plain, &["--break", "undo_update"]);
    assert_eq!(by_flag.code, 3, "{by_flag}");
    let unknown = env.run(&plain, &["--break", "undo_nothing"]);
    assert_eq!(unknown.code, 2, "{unknown}");
}
