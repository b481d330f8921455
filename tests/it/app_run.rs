//! The real app's Run and Runs views end to end: a command cut off by a crash, shown as
//! waiting for a person and resolved from the window; what a command changed in the files,
//! with its diff, in the step panel; and a long runs list read a page at a time.

use std::time::Duration;

use serde_json::json;
use stepwise_core::event::{EVENT_SCHEMA_VERSION, Event, RunStarted};
use stepwise_core::hash::content_hash;
use stepwise_core::ids::RunId;
use stepwise_store::{NewEvent, NewRun};

use crate::app::{LIVE, app_binary, app_env, wait_until};
use crate::support::{Env, step};
use crate::webdriver::{Display, Driver, Session};

#[test]
fn a_command_cut_off_by_a_crash_waits_in_the_window_until_a_person_resolves_it() {
    let env = Env::new();
    env.allow_everything();
    let workflow = env.workflow(
        "long.yaml",
        "name: long\nsteps:\n  - id: work\n    type: run_command\n    command: touch started && sleep 60\n  - id: after\n    type: set\n    needs: [work]\n    values:\n      done: true\n",
    );
    // The CLI drives the run and is killed while its command runs.
    let cli = env.spawn_run(&workflow);
    wait_until("the command to start", LIVE, || {
        env.read("started").is_some()
    });
    let run = env
        .first_run_id(LIVE)
        .expect("the run recorded before its command started");
    cli.kill();

    // The app, the holder of last resort, takes the run over: it cannot know what the command
    // did, so the step waits for a person.
    let display = Display::start();
    let driver = Driver::start(&display, &app_env(&env));
    let window = Session::open(&driver, &app_binary());
    window.script(
        "location.hash = '#/run/' + arguments[0] + '?step=work';",
        vec![json!(run)],
    );
    window.wait_for_text("the unknown outcome and what a person can do", LIVE, |t| {
        t.contains("Outcome unknown")
            && t.contains("It happened: mark done")
            && t.contains("Run it again")
            && t.contains("Skip the step")
    });
    let shown = window.script(
        "const row = document.querySelector('[data-testid=steps-list] [data-step=work]'); \
         return row ? row.innerText : '';",
        vec![],
    );
    assert!(
        shown
            .as_str()
            .is_some_and(|t| t.contains("outcome unknown")),
        "the step's row: {shown}"
    );
    assert_eq!(step(&env.show(&run), "work")["status"], "outcome_unknown");

    window.click("It happened: mark done");
    wait_until("the run to go on and finish", LIVE, || {
        env.show(&run)["status"] == "succeeded"
    });
    assert_eq!(step(&env.show(&run), "work")["status"], "succeeded");
    window.wait_for_text("the resolved run in the window", LIVE, |t| {
        t.contains("succeeded") && !t.contains("Outcome unknown")
    });
}

/// The step panel lists what a command changed in the workspace's files, as `show` words it,
/// and opens a text file's diff.
#[test]
fn the_step_panel_lists_the_files_a_command_changed_with_their_diffs() {
    let env = Env::new();
    env.allow_everything();
    env.write("src/lib.rs", "fn old() {}\n");
    env.write("tmp.log", "scratch\n");
    let workflow = env.workflow(
        "files.yaml",
        "name: files\nsteps:\n  - id: build\n    type: run_command\n    command: \"printf 'fn new() {}\\n' > src/lib.rs; rm tmp.log\"\n",
    );
    let out = env.run(&workflow, &[]);
    assert_eq!(out.code, 0, "{out}");
    let run = out.run_id();

    let display = Display::start();
    let driver = Driver::start(&display, &app_env(&env));
    let window = Session::open(&driver, &app_binary());
    window.script(
        "location.hash = '#/run/' + arguments[0] + '?step=build';",
        vec![json!(run)],
    );
    // Section titles are set in capitals by the style.
    window.wait_for_text("the step's changed files", LIVE, |t| {
        t.to_lowercase().contains("files 2 changed")
            && t.contains("wrote src/lib.rs")
            && t.contains("deleted tmp.log")
    });
    // A person opens the file's diff (a disclosure, not a button).
    window.script(
        "[...document.querySelectorAll('[data-testid=file-changes] summary')] \
           .find(s => s.innerText.trim() === 'wrote src/lib.rs').click();",
        vec![],
    );
    let diff = window.script(
        "const pre = document.querySelector('[data-testid=file-changes] details[open] pre'); \
         return pre ? pre.innerText : '';",
        vec![],
    );
    assert!(
        diff.as_str()
            .is_some_and(|d| d.contains("-fn old() {}") && d.contains("+fn new() {}")),
        "the diff shown: {diff}"
    );
}

/// Records `n` finished runs of a one-step workflow straight into the database, oldest first.
fn record_runs(env: &Env, n: usize) -> Vec<RunId> {
    let yaml = "name: quick\nsteps:\n  - id: a\n    type: set\n    values:\n      x: 1\n";
    let mut store = env.database.open_to_write();
    (0..n)
        .map(|i| {
            let run_id = RunId::from(format!("{i:08x}-0000-4000-8000-000000000000"));
            let at = 1_700_000_000_000 + i as i64 * 60_000;
            let started = RunStarted {
                run_id: run_id.clone(),
                workflow_name: "quick".into(),
                workflow_path: "/quick.yaml".into(),
                workflow_hash: content_hash(yaml.as_bytes()),
                workflow_source: yaml.into(),
                workspace: env.ws.display().to_string(),
                inputs: json!({}),
                trigger: "test".into(),
                started_by: "ann".into(),
                max_parallel: 1,
                policy: Vec::new(),
                approvers: None,
                host: None,
                models: Default::default(),
                budget: None,
                checkpoint: Default::default(),
                pauses: Default::default(),
                fork: None,
                subworkflows: Default::default(),
                step_types: Vec::new(),
                parent: None,
                cause: None,
            };
            let row = NewRun {
                run_id: run_id.clone(),
                workflow_name: started.workflow_name.clone(),
                workflow_path: started.workflow_path.clone(),
                workflow_hash: started.workflow_hash.clone(),
                workspace: started.workspace.clone(),
                trigger: started.trigger.clone(),
                status: "succeeded".into(),
                created_at_ms: at,
                parent: None,
                cause: None,
            };
            let first = Event::RunStarted(started);
            let event = NewEvent {
                event_type: first.type_name().into(),
                schema_version: EVENT_SCHEMA_VERSION,
                recorded_at_ms: at,
                correlation_id: None,
                causation_seq: None,
                payload: first.to_payload().expect("a payload"),
            };
            store.create_run(&row, &[event]).expect("create a run");
            run_id
        })
        .collect()
}

#[test]
fn the_runs_list_holds_only_the_rows_it_shows_and_reads_the_rest_as_it_scrolls() {
    let env = Env::new();
    let runs = record_runs(&env, 1_000);
    let display = Display::start();
    let driver = Driver::start(&display, &app_env(&env));
    let window = Session::open(&driver, &app_binary());
    window.wait_for_text("every run counted", LIVE, |t| t.contains("1,000 of 1,000"));
    let rows = || {
        window
            .script(
                "return document.querySelectorAll('[data-testid=runs-list] [role=option]').length;",
                vec![],
            )
            .as_u64()
            .unwrap_or(0)
    };
    assert!(rows() < 100, "{} rows in the page", rows());
    let oldest = runs[0].as_str()[..8].to_string();
    assert!(
        !window.text().contains(&oldest),
        "the oldest run is far down"
    );
    // How many runs the window holds (it was sent): a screenful's pages, not the list.
    let held = || {
        window
            .script(
                "const list = document.querySelector('[data-testid=runs-list]'); \
                 return list ? Number(list.dataset.rowsHeld ?? -1) : -1;",
                vec![],
            )
            .as_i64()
            .unwrap_or(-1)
    };
    assert!(
        (1..=200).contains(&held()),
        "the window holds {} runs",
        held()
    );
    window.script(
        "const list = document.querySelector('[data-testid=runs-list]'); list.scrollTop = list.scrollHeight;",
        vec![],
    );
    window.wait_for_text(
        "the oldest run, read when scrolled to",
        Duration::from_secs(10),
        |t| t.contains(&oldest),
    );
    assert!(rows() < 100, "{} rows after scrolling", rows());
    assert!(
        (1..=300).contains(&held()),
        "the window holds {} runs after scrolling",
        held()
    );
}

/// A driver failing in the app is never silent: the window says which run stopped and why at
/// once, and a run the engine ended says so in its Run view (as `show` does).
#[test]
fn a_driver_failure_is_shown_in_the_window_with_its_run_and_why() {
    let env = Env::new();
    env.workspace_policy("  - ask: edit_file\n");
    let gone_later = env.root().join("gone-later");
    std::fs::create_dir(&gone_later).expect("a second workspace");
    let edit = env.workflow(
        "edit.yaml",
        "name: edit\nsteps:\n  - id: edit\n    type: edit_file\n    path: out.txt\n    content: hi\n",
    );
    // A run waits for a person, then its workspace goes away (moved, unmounted).
    let out = env.stepwise(&[
        "run",
        edit.to_str().expect("utf-8"),
        "--workspace",
        gone_later.to_str().expect("utf-8"),
        "--json",
    ]);
    assert_eq!(out.code, 3, "{out}");
    let waiting = out.run_id();
    std::fs::remove_dir_all(&gone_later).expect("remove the workspace");

    // A run the engine ended: its log could not be written (a fault injected in this process).
    let aborted = {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let engine =
                stepwise_engine::Engine::open(env.engine_config()).expect("open the engine");
            engine.test_hooks().fail_commits(None, 1);
            let chain = env.workflow(
                "chain.yaml",
                "name: chain\nsteps:\n  - id: a\n    type: set\n    values: {v: 1}\n",
            );
            let handle = engine
                .start_run(env.start_request(chain))
                .await
                .expect("start");
            let run = handle.run_id().to_string();
            assert!(handle.wait().await.is_err());
            engine.shutdown().await;
            run
        })
    };
    assert_eq!(env.show(&aborted)["status"], "failed");

    // The app adopts the waiting run, its driver fails to open the workspace: a toast says so.
    let display = Display::start();
    let driver = Driver::start(&display, &app_env(&env));
    let window = Session::open(&driver, &app_binary());
    window.wait_for_text("a toast naming the run that stopped and why", LIVE, |t| {
        t.contains(&format!("Run {} stopped", &waiting[..8])) && t.contains("gone-later")
    });
    // The run is left for later (the workspace may come back), not ended.
    assert_eq!(env.show(&waiting)["status"], "awaiting_approval");

    window.script(
        "location.hash = '#/run/' + arguments[0];",
        vec![json!(aborted)],
    );
    window.wait_for_text("the aborted run's note", LIVE, |t| {
        t.contains("the engine could not go on") && t.contains("the disk refused the write")
    });
}
