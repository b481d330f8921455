//! Runs belong to the machine they were started on, where their workspace is: a process on
//! another machine (here `STEPWISE_HOST` names two, on one database) follows a run whole from
//! the log and sends it decisions, which a process on the run's machine applies (at once when
//! one holds the run), but never drives it. Decisions record who made them and where.

use std::time::Duration;

use crate::support::{Env, of_step, of_type, release, wait_for_fifo};

const PATIENCE: Duration = Duration::from_secs(30);

fn on(env: &mut Env, host: &str) {
    env.vars = vec![("STEPWISE_HOST".into(), host.into())];
}

#[test]
fn another_machine_sends_decisions_but_never_drives_a_run() {
    let mut env = Env::new();
    let wf = env.workflow(
        "edit.yaml",
        "name: edit\nsteps:\n  - id: write\n    type: edit_file\n    path: out.txt\n    content: \"hi\\n\"\n",
    );
    on(&mut env, "alpha");
    let started = env.run(&wf, &[]);
    assert_eq!(started.code, 3, "waits for approval: {started}");
    let run = started.run_id();

    on(&mut env, "beta");
    // Beta sees it whole, and where it belongs.
    let shown = env.stepwise(&["show", &run]);
    assert_eq!(shown.code, 0, "{shown}");
    assert!(shown.stdout.contains("on alpha"), "{shown}");
    // Its approval waits in the run's inbox: nobody on alpha drives the run now.
    let approved = env.approve(&run, "write", &[]);
    assert_eq!(approved.code, 3, "{approved}");
    assert!(
        approved.stderr.contains("belongs to machine `alpha`"),
        "{approved}"
    );
    let events_before = env.event_count(Some(&run));
    let resumed = env.stepwise(&["resume", &run]);
    assert_eq!(resumed.code, 3, "{resumed}");
    assert!(resumed.stderr.contains("this is `beta`"), "{resumed}");
    assert_eq!(
        env.event_count(Some(&run)),
        events_before,
        "beta drove nothing"
    );
    assert_eq!(env.read("out.txt"), None);
    let pending: Vec<_> = env
        .database
        .commands()
        .into_iter()
        .filter(|c| c.run_id.as_str() == run && c.handled_at_ms.is_none())
        .collect();
    // The approval and the resume wait there, marked as sent from beta.
    assert_eq!(pending.len(), 2, "{pending:?}");
    assert!(
        pending
            .iter()
            .all(|c| c.issued_on.as_deref() == Some("beta"))
    );

    // On alpha the run goes on, with beta's approval.
    on(&mut env, "alpha");
    let resumed = env.stepwise(&["resume", &run, "--json"]);
    assert_eq!(resumed.code, 0, "{resumed}");
    assert_eq!(env.read("out.txt").as_deref(), Some("hi\n"));
    let events = env.events(&run);
    let granted = &of_step(&events, "ApprovalGranted", "write")[0]["data"];
    assert_eq!(granted["host"], "beta", "{granted}");
    assert_eq!(of_type(&events, "RunStarted")[0]["data"]["host"], "alpha");
}

#[test]
fn a_decision_from_another_machine_reaches_the_holder_at_once() {
    let mut env = Env::new();
    env.workspace_policy("  - allow: run_command\n    unchecked_shell: true\n");
    let ready = env.fifo("ready.fifo");
    let go = env.fifo("go.fifo");
    let wf = env.workflow(
        "held.yaml",
        r#"
name: held
steps:
  - id: slow
    type: run_command
    command: "echo started > ready.fifo && cat go.fifo > /dev/null"
  - id: write
    type: edit_file
    path: out.txt
    content: "from alpha\n"
"#,
    );
    on(&mut env, "alpha");
    let driver = env.spawn_run(&wf);
    assert_eq!(wait_for_fifo(&ready, PATIENCE).as_deref(), Some("started"));
    let run = env.database.first_run_id().expect("the run");
    crate::shared::await_approvals(&env, &run, 1);

    on(&mut env, "beta");
    let rejected = env.stepwise(&[
        "reject",
        &run,
        "write",
        "--reason",
        "not on a Friday",
        "--no-wait",
        "--json",
    ]);
    assert_eq!(rejected.code, 0, "{rejected}");
    let handled = env
        .database
        .commands()
        .into_iter()
        .find(|c| c.run_id.as_str() == run)
        .expect("the rejection");
    let took = handled.handled_at_ms.unwrap_or(i64::MAX) - handled.issued_at_ms;
    assert!((0..1000).contains(&took), "applied after {took} ms");
    assert!(
        handled
            .handled_by
            .as_deref()
            .is_some_and(|by| by.contains(&format!("pid {}", driver.pid()))),
        "{handled:?}"
    );

    release(&go);
    let out = driver.finish(PATIENCE);
    assert_eq!(out.code, 1, "a rejected step fails the run: {out}");
    let events = env.events(&run);
    let rejected = &of_step(&events, "ApprovalRejected", "write")[0]["data"];
    assert_eq!(rejected["host"], "beta");
    assert_eq!(rejected["reason"], "not on a Friday");
}
