//! The window as one of several people sharing runs: it shows who may answer a question, the
//! engine refuses an answer from anyone else in the window's words, and an approver's answer
//! from the window is applied by the process of another user that drives the run, at once.

use std::time::Duration;

use serde_json::json;

use crate::app::{LIVE, app_binary, app_env, wait_until};
use crate::support::{Env, of_step, release, wait_for_fifo};
use crate::teams::user_vars;
use crate::webdriver::{Display, Driver, Session};

const PATIENCE: Duration = Duration::from_secs(30);

/// The app's variables, acting for `user` with a home of its own.
fn app_as(env: &Env, user: &str) -> Vec<(String, String)> {
    let mine = user_vars(env, user);
    let mut vars = app_env(env);
    vars.retain(|(name, _)| !mine.iter().any(|(n, _)| n == name));
    vars.extend(mine);
    vars
}

fn open_question(window: &Session, run: &str) {
    window.script(
        "location.hash = '#/approvals?run=' + arguments[0] + '&step=publish';",
        vec![json!(run)],
    );
    window.wait_for_text("the question and who may answer it", LIVE, |t| {
        t.contains("release.txt") && t.contains("May answer lead.")
    });
}

#[test]
fn the_window_refuses_an_answer_its_user_may_not_give_and_an_approvers_is_applied_elsewhere() {
    let mut env = Env::new();
    env.workspace_policy("  - allow: run_command\n    unchecked_shell: true\n");
    let ready = env.fifo("ready.fifo");
    let go = env.fifo("go.fifo");
    let wf = env.workflow(
        "release.yaml",
        r#"
name: release
approvers: [lead]
steps:
  - id: slow
    type: run_command
    command: "echo started > ready.fifo && cat go.fifo > /dev/null"
  - id: publish
    type: edit_file
    path: release.txt
    content: "1.0\n"
"#,
    );
    // Ana starts the run from the CLI; her process drives it while its first step runs.
    env.vars = user_vars(&env, "ana");
    let driver = env.spawn_run(&wf);
    assert_eq!(wait_for_fifo(&ready, PATIENCE).as_deref(), Some("started"));
    let run = env.database.first_run_id().expect("the run");
    crate::shared::await_approvals(&env, &run, 1);

    let display = Display::start();
    {
        // Cy's window shows the question, but cannot answer it.
        let app = Driver::start(&display, &app_as(&env, "cy"));
        let window = Session::open(&app, &app_binary());
        open_question(&window, &run);
        window.click("Approve");
        window.wait_for_text("the refusal in the window", LIVE, |t| {
            t.contains("The decision was not recorded") && t.contains("`cy` may not answer")
        });
        assert_eq!(env.read("release.txt"), None);
    }
    // The lead's window answers it; Ana's process applies it within a second.
    let app = Driver::start(&display, &app_as(&env, "lead"));
    let window = Session::open(&app, &app_binary());
    open_question(&window, &run);
    window.click("Approve");
    wait_until("the approval in the inbox, handled", LIVE, || {
        env.database
            .commands()
            .iter()
            .any(|c| c.run_id.as_str() == run && c.handled_at_ms.is_some())
    });
    let commands = env.database.commands();
    let approval = commands
        .iter()
        .find(|c| c.run_id.as_str() == run)
        .expect("the approval");
    assert_eq!(approval.issued_by, "lead");
    assert_eq!(
        approval.handled_by.as_deref(),
        Some(crate::backend::holder_text(driver.pid()).as_str())
    );
    let took = approval.handled_at_ms.unwrap_or(i64::MAX) - approval.issued_at_ms;
    assert!((0..1000).contains(&took), "applied after {took} ms");

    release(&go);
    let out = driver.finish(PATIENCE);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(env.read("release.txt").as_deref(), Some("1.0\n"));
    let events = env.events(&run);
    assert_eq!(
        of_step(&events, "ApprovalGranted", "publish")[0]["data"]["by"],
        "lead"
    );
}

#[test]
fn the_window_shows_a_run_of_another_machine_from_its_log_and_leaves_driving_it_to_that_machine() {
    let mut env = Env::new();
    env.write("notes.txt", "a note\n");
    env.write("local-only.txt", "never touched by the run\n");
    let wf = env.workflow(
        "remote.yaml",
        r#"
name: remote
steps:
  - id: read
    type: read_file
    path: notes.txt
  - id: write
    type: edit_file
    needs: [read]
    path: result.txt
    content: "done\n"
"#,
    );
    env.vars = vec![("STEPWISE_HOST".into(), "alpha".into())];
    let started = env.run(&wf, &[]);
    assert_eq!(started.code, 3, "waits for approval: {started}");
    let run = started.run_id();

    let mut vars = app_env(&env);
    vars.push(("STEPWISE_HOST".into(), "beta".into()));
    let display = Display::start();
    let app = Driver::start(&display, &vars);
    let window = Session::open(&app, &app_binary());
    window.script("location.hash = '#/run/' + arguments[0];", vec![json!(run)]);
    window.wait_for_text("the run, as alpha's", LIVE, |t| {
        t.contains("This run belongs to")
            && t.contains("where its workspace is")
            && t.contains("on alpha")
    });
    window.script("location.hash = '#/workspace';", vec![]);
    window.wait_for_text("the files the run recorded", LIVE, |t| {
        t.contains("not this machine") && t.contains("notes.txt") && t.contains("result.txt")
    });
    let shown = window.text();
    assert!(
        !shown.contains("local-only.txt"),
        "a run of another machine shows what it recorded, not this disk: {shown}"
    );
    // The app drives the unheld runs of its own machine only: this one is left to alpha.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(env.show(&run)["held_by"], serde_json::Value::Null);
    assert_eq!(env.read("result.txt"), None);
}
