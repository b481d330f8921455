//! One run, many processes: while one `stepwise` process drives a run, others approve, edit,
//! reject, pause, cancel and resolve through its inbox, follow it live, and take it over when
//! its holder dies. Every process here is the real binary on one real database; commands wait
//! on named pipes the test controls, so nothing depends on timing guesses.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;

use crate::support::{
    Env, cpu_ticks, of_step, of_type, os_user, read_pid, release, seq, wait_for_fifo,
    wait_until_ended,
};

/// Long enough for anything that should happen at once, short enough to fail a hung test.
const PATIENCE: Duration = Duration::from_secs(30);

/// A workspace where commands run without asking (edits still ask).
fn commands_allowed(env: &Env) {
    env.workspace_policy("  - allow: run_command\n    unchecked_shell: true\n");
}

/// How the inbox recorded each command of a run: (state, handled_by, handled − issued ms).
fn handled_commands(env: &Env, run: &str) -> Vec<(String, String, i64)> {
    env.database
        .commands()
        .into_iter()
        .filter(|command| command.run_id.as_str() == run)
        .map(|command| {
            (
                command.state.as_str().to_owned(),
                command.handled_by.unwrap_or_default(),
                command
                    .handled_at_ms
                    .map_or(-1, |at| at - command.issued_at_ms),
            )
        })
        .collect()
}

/// Waits, through the engine's own live feed of the approvals inbox, until `run` has `count`
/// questions waiting.
pub(crate) fn await_approvals(env: &Env, run: &str, count: usize) {
    use stepwise_engine::{ApprovalChange, Engine};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let engine = Engine::open(env.engine_config()).expect("open the engine");
    runtime.block_on(async {
        let watch = async {
            let mut feed = engine.subscribe_approvals().await.expect("subscribe");
            let mut waiting = std::collections::HashSet::new();
            while waiting.len() < count {
                match feed.next().await.expect("the feed") {
                    ApprovalChange::Waiting(a) if a.run_id == run => {
                        waiting.insert(a.step);
                    }
                    ApprovalChange::Settled { run_id, step, .. } if run_id == run => {
                        waiting.remove(&step);
                    }
                    _ => {}
                }
            }
        };
        tokio::time::timeout(PATIENCE, watch)
            .await
            .unwrap_or_else(|_| panic!("{count} approvals never waited in run {run}"));
    });
}

/// The only run in the database (the test started one).
fn only_run(env: &Env) -> String {
    env.database.first_run_id().expect("one run")
}

#[test]
fn a_second_process_approves_edits_and_rejects_while_the_first_drives() {
    let env = Env::new();
    commands_allowed(&env);
    let ready = env.fifo("ready.fifo");
    let go = env.fifo("go.fifo");
    let wf = env.workflow(
        "shared.yaml",
        r#"
name: shared
steps:
  - id: slow
    type: run_command
    command: "echo started > ready.fifo && cat go.fifo > /dev/null"
  - id: plain
    type: edit_file
    path: a.txt
    content: "a from the run\n"
  - id: edited
    type: edit_file
    path: b.txt
    content: "b from the run\n"
  - id: refused
    type: edit_file
    path: c.txt
    content: "c from the run\n"
"#,
    );
    let driver = env.spawn_run(&wf);
    assert_eq!(wait_for_fifo(&ready, PATIENCE).as_deref(), Some("started"));
    let run = only_run(&env);
    await_approvals(&env, &run, 3);

    let approved = env.approve(&run, "plain", &["--no-wait"]);
    assert_eq!(approved.code, 0, "{approved}");
    let edit = env.root().join("b-by-hand.txt");
    std::fs::write(&edit, "b as a person wrote it\n").expect("write the edit");
    let edited = env.approve(
        &run,
        "edited",
        &["--no-wait", "--edit", edit.to_str().expect("utf-8")],
    );
    assert_eq!(edited.code, 0, "{edited}");
    let rejected = env.stepwise(&[
        "reject",
        &run,
        "refused",
        "--reason",
        "not this file",
        "--no-wait",
        "--json",
    ]);
    assert_eq!(rejected.code, 0, "{rejected}");

    // The driving process applied all three, each within a second of its sending.
    let inbox = handled_commands(&env, &run);
    assert_eq!(inbox.len(), 3, "{inbox:?}");
    let holder = crate::backend::holder_text(driver.pid());
    for (state, handled_by, took_ms) in &inbox {
        assert_eq!(state, "applied");
        assert_eq!(handled_by, &holder);
        assert!((0..1000).contains(took_ms), "applied after {took_ms} ms");
    }

    release(&go);
    let out = driver.finish(PATIENCE);
    assert_eq!(out.code, 1, "a rejected step fails the run: {out}");
    assert_eq!(out.run_id(), run);
    assert_eq!(env.read("a.txt").as_deref(), Some("a from the run\n"));
    assert_eq!(
        env.read("b.txt").as_deref(),
        Some("b as a person wrote it\n")
    );
    assert_eq!(env.read("c.txt"), None);
    let events = env.events(&run);
    let granted: Vec<&Value> = of_type(&events, "ApprovalGranted")
        .into_iter()
        .filter(|g| g["data"]["mode"]["kind"] == "manual")
        .collect();
    assert_eq!(granted.len(), 2);
    for g in &granted {
        assert_eq!(g["data"]["by"], os_user());
        assert_eq!(g["data"]["mode"]["kind"], "manual");
    }
    let edited = of_step(&events, "ApprovalGranted", "edited");
    assert_eq!(
        edited[0]["data"]["edited"]["content"],
        "b as a person wrote it\n"
    );
    assert_ne!(
        edited[0]["data"]["approved_hash"],
        edited[0]["data"]["proposal_hash"]
    );
    let rejected = of_step(&events, "StepRejected", "refused");
    assert_eq!(rejected[0]["data"]["reason"], "not this file");
}

#[test]
fn a_second_process_pauses_a_driven_run_and_resume_continues_it() {
    let env = Env::new();
    commands_allowed(&env);
    let ready = env.fifo("ready.fifo");
    let go = env.fifo("go.fifo");
    let wf = env.workflow(
        "pause.yaml",
        r#"
name: pause
steps:
  - id: slow
    type: run_command
    command: "echo started > ready.fifo && cat go.fifo > /dev/null"
  - id: after
    type: run_command
    needs: [slow]
    command: "echo after >> log.txt"
"#,
    );
    let driver = env.spawn_run(&wf);
    assert_eq!(wait_for_fifo(&ready, PATIENCE).as_deref(), Some("started"));
    let run = only_run(&env);
    let holder = crate::backend::holder_text(driver.pid());

    let paused = env.stepwise(&["pause", &run, "--no-wait", "--json"]);
    assert_eq!(paused.code, 0, "{paused}");
    assert_eq!(paused.json()["command"], "pause");
    // The running command finishes; nothing new starts; the driver stops, paused.
    release(&go);
    let out = driver.finish(PATIENCE);
    assert_eq!(out.code, 3, "{out}");
    assert_eq!(out.json()["status"], "paused");
    assert_eq!(env.read("log.txt"), None);
    let inbox = handled_commands(&env, &run);
    assert_eq!((inbox[0].0.as_str(), &inbox[0].1), ("applied", &holder));

    let resumed = env.stepwise(&["resume", &run, "--json"]);
    assert_eq!(resumed.code, 0, "{resumed}");
    assert_eq!(resumed.json()["status"], "succeeded");
    assert_eq!(env.read("log.txt").as_deref(), Some("after\n"));
}

#[test]
fn a_second_process_cancels_a_driven_run_and_the_running_command_is_killed() {
    let env = Env::new();
    commands_allowed(&env);
    let ready = env.fifo("ready.fifo");
    let wf = env.workflow(
        "cancel.yaml",
        r#"
name: cancel
steps:
  - id: long
    type: run_command
    command: "echo $$ > long.pid; echo started > ready.fifo; exec sleep 600"
"#,
    );
    let driver = env.spawn_run(&wf);
    assert_eq!(wait_for_fifo(&ready, PATIENCE).as_deref(), Some("started"));
    let run = only_run(&env);
    let long = read_pid(&env.ws.join("long.pid"));
    let holder = crate::backend::holder_text(driver.pid());

    let cancelled = env.stepwise(&["cancel", &run, "--json"]);
    assert_eq!(cancelled.code, 1, "{cancelled}");
    assert_eq!(cancelled.json()["status"], "cancelled");
    assert!(
        wait_until_ended(long, PATIENCE),
        "the cancelled command is still running"
    );
    let out = driver.finish(PATIENCE);
    assert_eq!(out.code, 1, "{out}");
    let inbox = handled_commands(&env, &run);
    assert_eq!((inbox[0].0.as_str(), &inbox[0].1), ("applied", &holder));

    // Write-ahead: the cancel is in the log before the command was signalled.
    let events = env.events(&run);
    let requested = of_type(&events, "RunCancelRequested");
    let failed = of_type(&events, "OperationFailed");
    assert_eq!(failed[0]["data"]["error"]["kind"], "cancelled");
    assert!(seq(requested[0]) < seq(failed[0]));
    assert_eq!(of_type(&events, "RunCancelled").len(), 1);
}

#[test]
fn a_second_process_resolves_an_unknown_outcome_while_the_first_drives() {
    let env = Env::new();
    commands_allowed(&env);
    let x_ready = env.fifo("x.fifo");
    let y_ready = env.fifo("y.fifo");
    let y_go = env.fifo("y-go.fifo");
    let wf = env.workflow(
        "resolve.yaml",
        r#"
name: resolve
steps:
  - id: x
    type: run_command
    command: "echo started > x.fifo; exec sleep 600"
  - id: y
    type: run_command
    command: "echo started > y.fifo; cat y-go.fifo > /dev/null"
"#,
    );
    // A first driver dies with both commands running: their outcomes are unknown.
    let first = env.spawn_run(&wf);
    assert_eq!(
        wait_for_fifo(&x_ready, PATIENCE).as_deref(),
        Some("started")
    );
    assert_eq!(
        wait_for_fifo(&y_ready, PATIENCE).as_deref(),
        Some("started")
    );
    let run = only_run(&env);
    first.kill();

    // A second process retries `y` and drives it; a third marks `x` done meanwhile.
    let second = env.spawn(&["resolve", &run, "y", "--retry", "--json"]);
    assert_eq!(
        wait_for_fifo(&y_ready, PATIENCE).as_deref(),
        Some("started")
    );
    let resolved = env.stepwise(&["resolve", &run, "x", "--mark-done", "--no-wait", "--json"]);
    assert_eq!(resolved.code, 0, "{resolved}");
    let inbox = handled_commands(&env, &run);
    assert_eq!(inbox.len(), 2, "{inbox:?}");
    let holder = crate::backend::holder_text(second.pid());
    assert!(
        inbox
            .iter()
            .all(|(state, by, _)| state == "applied" && *by == holder)
    );

    release(&y_go);
    let out = second.finish(PATIENCE);
    assert_eq!(out.code, 0, "{out}");
    let events = env.events(&run);
    assert_eq!(of_type(&events, "OperationOutcomeUnknown").len(), 2);
    assert_eq!(of_type(&events, "OperationResolved").len(), 2);
    assert_eq!(of_type(&events, "RunSucceeded").len(), 1);
}

#[test]
fn a_sigkilled_holder_is_taken_over_by_the_process_waiting_on_it() {
    let env = Env::new();
    commands_allowed(&env);
    let ready = env.fifo("ready.fifo");
    let wf = env.workflow(
        "takeover.yaml",
        r#"
name: takeover
steps:
  - id: long
    type: run_command
    command: "echo $$ > long.pid; echo started > ready.fifo; exec sleep 600"
  - id: change
    type: edit_file
    path: doc.txt
    content: "v2\n"
"#,
    );
    let holder = env.spawn_run(&wf);
    assert_eq!(wait_for_fifo(&ready, PATIENCE).as_deref(), Some("started"));
    let run = only_run(&env);
    await_approvals(&env, &run, 1);
    let long = read_pid(&env.ws.join("long.pid"));
    let runs = env.stepwise(&["runs", "--json"]).json();
    assert_eq!(runs[0]["status"], "running");
    assert_eq!(
        runs[0]["held_by"],
        crate::backend::holder_text(holder.pid())
    );

    // The holder freezes, so the approval sent now stays in the inbox; then it dies.
    holder.freeze();
    let approver = env.spawn(&["approve", &run, "change", "--json"]);
    let pending = || {
        env.database
            .commands()
            .iter()
            .filter(|command| command.state == stepwise_store::CommandState::Pending)
            .count()
    };
    let deadline = std::time::Instant::now() + PATIENCE;
    while pending() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the approval never reached the inbox"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let approver_pid = approver.pid();
    holder.kill();

    // The waiting process takes the run over: the command it found running is of unknown
    // outcome (and was killed with its holder), its own approval is applied.
    let out = approver.finish(PATIENCE);
    assert_eq!(out.code, 3, "{out}");
    assert!(
        wait_until_ended(long, PATIENCE),
        "the command outlived its holder"
    );
    assert_eq!(env.read("doc.txt").as_deref(), Some("v2\n"));
    let inbox = handled_commands(&env, &run);
    assert_eq!(inbox[0].0, "applied");
    assert_eq!(inbox[0].1, crate::backend::holder_text(approver_pid));
    let events = env.events(&run);
    assert_eq!(of_type(&events, "OperationOutcomeUnknown").len(), 1);
    let runs = env.stepwise(&["runs", "--json"]).json();
    assert_eq!(runs[0]["status"], "awaiting_approval");
}

#[test]
fn a_run_whose_holder_died_is_listed_as_interrupted_until_resumed() {
    let env = Env::new();
    commands_allowed(&env);
    let ready = env.fifo("ready.fifo");
    let wf = env.workflow(
        "interrupted.yaml",
        r#"
name: interrupted
steps:
  - id: long
    type: run_command
    command: "echo started > ready.fifo; exec sleep 600"
"#,
    );
    let holder = env.spawn_run(&wf);
    assert_eq!(wait_for_fifo(&ready, PATIENCE).as_deref(), Some("started"));
    let run = only_run(&env);
    holder.kill();

    let runs = env.stepwise(&["runs", "--json"]).json();
    assert_eq!(runs[0]["status"], "interrupted");
    assert_eq!(runs[0]["recorded_status"], "running");
    assert_eq!(runs[0]["held_by"], Value::Null);
    let text = env.stepwise(&["runs"]);
    assert!(text.stdout.contains("interrupted"), "{text}");
    assert!(!text.stdout.contains(" running "), "{text}");

    let resumed = env.stepwise(&["resume", &run, "--json"]);
    assert_eq!(resumed.code, 3, "{resumed}");
    let runs = env.stepwise(&["runs", "--json"]).json();
    assert_eq!(runs[0]["status"], "awaiting_approval");
}

#[test]
fn events_follow_sees_an_approval_from_another_process_at_once_and_ends_with_the_run() {
    let env = Env::new();
    let wf = env.workflow(
        "follow.yaml",
        "name: follow\nsteps:\n  - id: change\n    type: edit_file\n    path: out.txt\n    content: \"v1\\n\"\n",
    );
    let run = env.run(&wf, &[]).run_id();
    let (follower, lines) = env.spawn_piped(&["events", &run, "--follow", "--json"]);
    lines
        .until(PATIENCE, |l| l.contains("\"ApprovalRequested\""))
        .expect("the follower prints what is already there");

    // Idle, it uses no CPU worth measuring.
    let before = cpu_ticks(follower.pid());
    std::thread::sleep(Duration::from_millis(1500));
    let idle = cpu_ticks(follower.pid()) - before;
    assert!(idle <= 2, "an idle follower used {idle} ticks in 1.5 s");

    let approved = env.approve(&run, "change", &[]);
    assert_eq!(approved.code, 0, "{approved}");
    let (seen_at, line) = lines
        .until(PATIENCE, |l| l.contains("\"ApprovalGranted\""))
        .expect("the follower sees the approval");
    let event: Value = serde_json::from_str(&line).expect("one JSON object per line");
    let recorded = event["recorded_at_ms"].as_i64().expect("a timestamp");
    let seen = i64::try_from(
        seen_at
            .duration_since(UNIX_EPOCH)
            .expect("after the epoch")
            .as_millis(),
    )
    .expect("ms");
    assert!(
        seen - recorded < 1000,
        "seen {} ms after it was recorded",
        seen - recorded
    );
    lines
        .until(PATIENCE, |l| l.contains("\"RunSucceeded\""))
        .expect("the follower prints the end");
    let out = follower.finish(PATIENCE);
    assert_eq!(out.code, 0, "the follower exits with the run: {out}");
}

#[test]
fn approvals_follow_shows_a_question_and_its_answer_from_another_process() {
    let env = Env::new();
    let wf = env.workflow(
        "follow.yaml",
        "name: follow\nsteps:\n  - id: change\n    type: edit_file\n    path: out.txt\n    content: \"v1\\n\"\n",
    );
    let run = env.run(&wf, &[]).run_id();
    let (follower, lines) = env.spawn_piped(&["approvals", &run, "--follow", "--json"]);
    let (_, first) = lines.next(PATIENCE).expect("the waiting question");
    let first: Value = serde_json::from_str(&first).expect("JSON");
    assert_eq!(first["change"], "waiting");
    assert_eq!(first["step"], "change");
    assert_eq!(first["run_id"], run.as_str());

    let rejected = env.reject(&run, "change", "wrong file");
    assert_eq!(rejected.code, 1, "{rejected}");
    let (_, settled) = lines.next(PATIENCE).expect("the answer");
    let settled: Value = serde_json::from_str(&settled).expect("JSON");
    assert_eq!(settled["change"], "settled");
    assert_eq!(settled["step"], "change");
    let how = settled["how"].as_str().expect("how it settled");
    assert!(
        how.starts_with("rejected by") && how.contains("wrong file"),
        "{how}"
    );
    let (_, ended) = lines.next(PATIENCE).expect("the run's end");
    let ended: Value = serde_json::from_str(&ended).expect("JSON");
    assert_eq!(ended["change"], "run_ended");
    let out = follower.finish(PATIENCE);
    assert_eq!(out.code, 1, "the run failed: {out}");
}

#[test]
fn a_cancel_waiting_in_the_inbox_holds_back_what_recovery_would_start() {
    let env = Env::new();
    commands_allowed(&env);
    let fifos: Vec<_> = (0..4).map(|i| env.fifo(&format!("r{i}.fifo"))).collect();
    let mut yaml = String::from("name: held\nmax_parallel: 4\nsteps:\n");
    for i in 0..4 {
        yaml.push_str(&format!(
            "  - id: long{i}\n    type: run_command\n    command: \"echo started > r{i}.fifo; exec sleep 600\"\n"
        ));
    }
    yaml.push_str("  - id: held\n    type: run_command\n    command: \"echo ran > held.txt\"\n");
    let wf = env.workflow("held.yaml", &yaml);
    let holder = env.spawn_run(&wf);
    for fifo in &fifos {
        assert_eq!(wait_for_fifo(fifo, PATIENCE).as_deref(), Some("started"));
    }
    let run = only_run(&env);

    // The holder freezes with four commands running and the fifth held back by max_parallel;
    // a cancel waits in the inbox when it dies.
    holder.freeze();
    let canceller = env.spawn(&["cancel", &run, "--json"]);
    let deadline = std::time::Instant::now() + PATIENCE;
    while handled_commands(&env, &run).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the cancel never reached the inbox"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    holder.kill();

    let out = canceller.finish(PATIENCE);
    assert_eq!(out.code, 1, "{out}");
    assert_eq!(out.json()["status"], "cancelled");
    assert_eq!(
        env.read("held.txt"),
        None,
        "the held-back step ran before the cancel"
    );
    let events = env.events(&run);
    assert!(of_step(&events, "OperationStarted", "held").is_empty());
}
