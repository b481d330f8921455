//! Reviewing an edit hunk by hunk in the window, with its keys: `h` opens the review, `j`/`k`
//! move between hunks, `n` rejects one, `a` applies the rest, which is what lands on disk and
//! in the log.

use serde_json::json;

use crate::app::{LIVE, app_binary, app_env, wait_until};
use crate::hunks::{original, waiting_edit};
use crate::support::{Env, of_type};
use crate::webdriver::{Display, Driver, Session};

#[test]
fn the_window_applies_the_hunks_a_person_accepts_with_y_and_n() {
    let env = Env::new();
    let run = waiting_edit(&env);

    let display = Display::start();
    let driver = Driver::start(&display, &app_env(&env));
    let window = Session::open(&driver, &app_binary());
    window.click("Approvals");
    window.wait_for_text("the edit's diff", LIVE, |t| {
        t.contains("line two") && t.contains("line nineteen")
    });
    window.keys("h");
    window.wait_for_text("the review under way", LIVE, |t| {
        t.contains("hunk 1 of 3 · accepted")
    });
    // Accept the first, reject the second, leave the third accepted.
    window.keys("y");
    window.keys("n");
    window.wait_for_text("the second hunk rejected", LIVE, |t| {
        t.contains("hunk 2 of 3 · rejected")
    });
    let states = window.script(
        "return [...document.querySelectorAll('[data-hunk]')].map(h => h.dataset.hunkState);",
        vec![],
    );
    assert_eq!(states, json!(["accepted", "rejected", "accepted"]));
    window.keys("a");
    let expected = original()
        .replace("line 2\n", "line two\n")
        .replace("line 19\n", "line nineteen\n");
    wait_until("the accepted hunks on disk", LIVE, || {
        env.read("config.txt").as_deref() == Some(expected.as_str())
    });
    let events = env.events(&run);
    let granted = of_type(&events, "ApprovalGranted");
    assert_eq!(
        granted[0]["data"]["hunks"],
        json!({"applied": [1, 3], "rejected": [2]})
    );
}

#[test]
fn the_window_rewinds_a_step_s_files_and_forks_a_run_from_it() {
    let env = Env::new();
    env.allow_everything();
    env.write("notes.txt", "first\n");
    let wf = env.workflow(
        "notes.yaml",
        "name: notes\ninputs:\n  word: {type: string, default: one}\nsteps:\n  - id: scribble\n    type: run_command\n    command: \"printf '${inputs.word}\\n' > notes.txt\"\n",
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 0, "{out}");
    let run = out.run_id();
    assert_eq!(env.read("notes.txt").as_deref(), Some("one\n"));

    let display = Display::start();
    let driver = Driver::start(&display, &app_env(&env));
    let window = Session::open(&driver, &app_binary());
    window.script(
        "location.hash = '#/run/' + arguments[0] + '?step=scribble';",
        vec![json!(run)],
    );
    window.wait_for_text("the step panel", LIVE, |t| t.contains("Rewind to here"));
    window.click("Rewind to here…");
    window.wait_for_text("the rewind's proposal", LIVE, |t| {
        t.contains("notes.txt") && t.contains("Rewind 1 file")
    });
    window.click("Rewind 1 file");
    wait_until("the file put back", LIVE, || {
        env.read("notes.txt").as_deref() == Some("first\n")
    });
    assert_eq!(of_type(&env.events(&run), "RewindApproved").len(), 1);

    // Fork from the same step: the files are as they were, so it starts at once.
    window.click("Fork from here…");
    window.wait_for_text("the fork form", LIVE, |t| {
        t.contains("Fork the run from scribble")
    });
    window.click("Fork");
    wait_until("the fork's run", LIVE, || {
        let runs = env.stepwise(&["runs", "--json"]).json();
        runs.as_array()
            .is_some_and(|r| r.iter().any(|r| r["parent"] == run.as_str()))
    });
    window.wait_for_text("the fork's Run view", LIVE, |t| t.contains("fork of"));
    wait_until("the fork's command ran", LIVE, || {
        env.read("notes.txt").as_deref() == Some("one\n")
    });
}

#[test]
fn the_window_rewinds_a_run_it_holds_while_it_waits_and_the_run_goes_on() {
    let env = Env::new();
    env.allow_everything();
    env.write("notes.txt", "first\n");
    let wf = env.workflow(
        "gate.yaml",
        "name: gate\nsteps:\n  - id: scribble\n    type: run_command\n    command: \"printf 'scribbled\\n' > notes.txt\"\n  - id: check\n    needs: [scribble]\n    type: approval\n    message: Does it look right?\n",
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 3, "{out}");
    let run = out.run_id();

    // The app holds the waiting run (it adopts runs nobody drives).
    let display = Display::start();
    let driver = Driver::start(&display, &app_env(&env));
    let window = Session::open(&driver, &app_binary());
    wait_until("the app to hold the run", LIVE, || {
        env.show(&run)["held_by"].is_string()
    });
    window.script(
        "location.hash = '#/run/' + arguments[0] + '?step=scribble';",
        vec![json!(run)],
    );
    window.wait_for_text("the step panel", LIVE, |t| t.contains("Rewind to here"));
    window.click("Rewind to here…");
    window.wait_for_text("the proposal", LIVE, |t| t.contains("Rewind 1 file"));
    window.click("Rewind 1 file");
    wait_until("the file put back", LIVE, || {
        env.read("notes.txt").as_deref() == Some("first\n")
    });
    // The app took the run up again: an approval from the CLI reaches it and the run ends.
    wait_until("the app to hold the run again", LIVE, || {
        env.show(&run)["held_by"].is_string()
    });
    let out = env.approve(&run, "check", &[]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(env.show(&run)["status"], "succeeded");
}
