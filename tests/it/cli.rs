//! The CLI contract: the JSON shapes of `runs`, `show` and `events`, run ids and prefixes,
//! `resume`, `cancel` and `pause`, and the exit codes of each.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::support::{Env, of_type, os_user, step};

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// A workflow that computes a value and then waits for approval of an edit.
fn waiting_workflow(env: &Env) -> std::path::PathBuf {
    env.workflow(
        "wait.yaml",
        r#"
name: wait
steps:
  - id: compute
    type: set
    values: {x: 1}
  - id: change
    type: edit_file
    needs: [compute]
    path: out.txt
    content: "written\n"
  - id: done
    type: set
    needs: [change]
    values: {ok: true}
"#,
    )
}

fn quick_workflow(env: &Env) -> std::path::PathBuf {
    env.workflow(
        "quick.yaml",
        "name: quick\nsteps:\n  - id: only\n    type: set\n    values: {x: 1}\n",
    )
}

#[test]
fn runs_json_lists_runs_newest_first_with_their_status() {
    let env = Env::new();
    let first = env.run(&quick_workflow(&env), &[]);
    assert_eq!(first.code, 0, "{first}");
    let second = env.run(&waiting_workflow(&env), &[]);
    assert_eq!(second.code, 3, "{second}");

    let out = env.stepwise(&["runs", "--json"]);
    assert_eq!(out.code, 0, "{out}");
    let runs = out.json();
    let runs = runs.as_array().expect("a list");
    assert_eq!(runs.len(), 2);
    assert_eq!(
        keys(&runs[0]),
        set(&[
            "run_id",
            "workflow_name",
            "workflow_path",
            "workflow_hash",
            "workspace",
            "trigger",
            "status",
            "created_at_ms",
            "updated_at_ms",
            "last_seq",
            "change_seq",
            "cost_micro_usd",
            "recorded_status",
            "held_by"
        ])
    );
    assert!(
        runs[0]["created_at_ms"].as_i64() >= runs[1]["created_at_ms"].as_i64(),
        "newest first"
    );
    let by_id = |id: &str| runs.iter().find(|r| r["run_id"] == id).expect("listed");
    let quick = by_id(&first.run_id());
    assert_eq!(quick["status"], "succeeded");
    assert_eq!(quick["workflow_name"], "quick");
    assert_eq!(quick["trigger"], "cli");
    assert_eq!(quick["workspace"], env.ws.display().to_string());
    assert!(
        quick["workflow_hash"]
            .as_str()
            .is_some_and(|h| h.starts_with("sha256:"))
    );
    assert_eq!(by_id(&second.run_id())["status"], "awaiting_approval");
}

#[test]
fn show_json_has_the_run_its_inputs_and_every_step() {
    let env = Env::new();
    let out = env.run(&waiting_workflow(&env), &[]);
    assert_eq!(out.code, 3, "{out}");
    let show = env.show(&out.run_id());
    assert_eq!(
        keys(&show),
        set(&[
            "run",
            "status",
            "aborted",
            "held_by",
            "inputs",
            "started_by",
            "host",
            "steps",
            "rewinds",
            "fork",
            "parent",
            "children",
            "cause"
        ])
    );
    assert!(
        show["aborted"].is_null(),
        "a run the engine did not stop: {show}"
    );
    assert_eq!(show["status"], "awaiting_approval");
    assert_eq!(show["started_by"], os_user());
    assert_eq!(show["inputs"], json!({}));
    assert_eq!(show["run"]["run_id"], out.run_id());
    let steps = show["steps"].as_array().expect("steps");
    assert_eq!(
        steps.iter().map(|s| s["id"].clone()).collect::<Vec<_>>(),
        [json!("compute"), json!("change"), json!("done")]
    );
    for s in steps {
        assert_eq!(
            keys(s),
            set(&[
                "id",
                "type",
                "status",
                "attempts",
                "duration_ms",
                "waiting_ms",
                "executing_ms",
                "output",
                "error",
                "reason",
                "pending_approval",
                "file_changes",
                "compensates"
            ]),
            "{s}"
        );
    }
    assert_eq!(step(&show, "compute")["status"], "succeeded");
    assert_eq!(step(&show, "compute")["type"], "set");
    let change = step(&show, "change");
    assert_eq!(change["status"], "awaiting_approval");
    assert_eq!(change["type"], "edit_file");
    assert_eq!(change["pending_approval"]["proposal"]["path"], "out.txt");
    assert_eq!(step(&show, "done")["status"], "pending");
}

#[test]
fn events_json_is_the_gapless_log_with_causes_and_correlations() {
    let env = Env::new();
    env.allow_everything();
    let wf = env.workflow(
        "log.yaml",
        "name: log\nsteps:\n  - id: say\n    type: run_command\n    command: [\"echo\", \"hi\"]\n  - id: after\n    type: set\n    needs: [say]\n    values: {x: 1}\n",
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 0, "{out}");
    let run = out.run_id();
    let events = env.events(&run);
    for (i, event) in events.iter().enumerate() {
        assert_eq!(
            keys(event),
            set(&[
                "seq",
                "type",
                "schema_version",
                "recorded_at_ms",
                "correlation_id",
                "causation_seq",
                "data"
            ])
        );
        assert_eq!(event["seq"], json!(i + 1), "seqs run from 1 without gaps");
        assert_eq!(event["schema_version"], 1);
        if let Some(cause) = event["causation_seq"].as_u64() {
            assert!(
                cause < (i as u64) + 1,
                "a cause comes before its effect: {event}"
            );
        }
        if let Some(step) = event["data"]["step"].as_str() {
            assert_eq!(event["correlation_id"], step, "{event}");
        }
    }
    assert_eq!(events[0]["type"], "RunStarted");
    assert_eq!(events[0]["causation_seq"], Value::Null);
    assert_eq!(events[0]["data"]["run_id"], run);
    assert_eq!(events.last().expect("events")["type"], "RunSucceeded");
    let started = of_type(&events, "OperationStarted");
    let answered = of_type(&events, "OperationSucceeded");
    assert_eq!((started.len(), answered.len()), (1, 1));
    assert_eq!(answered[0]["data"]["op"], started[0]["seq"]);
    assert_eq!(answered[0]["causation_seq"], started[0]["seq"]);
    assert!(
        started[0]["seq"].as_u64() < answered[0]["seq"].as_u64(),
        "write-ahead: the request is logged first"
    );

    let count = env
        .database
        .events()
        .iter()
        .filter(|(of, _)| *of == run)
        .count();
    assert_eq!(count, events.len());
    if env.database.url.is_none() {
        let db = env.db();
        let integrity: String = db
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity");
        assert_eq!(integrity, "ok");
        let journal: String = db
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("journal mode");
        assert_eq!(journal, "wal");
    }
    assert_eq!(env.show(&run)["run"]["last_seq"], json!(events.len()));
}

#[test]
fn an_unknown_run_id_is_invalid_input_for_every_command() {
    let env = Env::new();
    let first = env.run(&quick_workflow(&env), &[]);
    assert_eq!(first.code, 0, "{first}");
    let commands: [&[&str]; 9] = [
        &["show", "nope"],
        &["events", "nope"],
        &["approvals", "nope"],
        &["approve", "nope", "only"],
        &["reject", "nope", "only", "--reason", "r"],
        &["resume", "nope"],
        &["pause", "nope"],
        &["cancel", "nope"],
        &["replay", "nope"],
    ];
    for args in commands {
        let out = env.stepwise(args);
        assert_eq!(out.code, 2, "{args:?}: {out}");
        assert!(
            out.stderr.contains("run `nope` not found"),
            "{args:?}: {out}"
        );
    }
}

#[test]
fn a_unique_prefix_of_a_run_id_names_the_run() {
    let env = Env::new();
    let out = env.run(&waiting_workflow(&env), &[]);
    assert_eq!(out.code, 3, "{out}");
    let run = out.run_id();
    let prefix = &run[..8];
    assert_eq!(env.show(prefix)["run"]["run_id"], run);
    let approved = env.approve(prefix, "change", &[]);
    assert_eq!(approved.code, 0, "{approved}");
    assert_eq!(approved.run_id(), run);
    assert_eq!(env.read("out.txt").as_deref(), Some("written\n"));
}

#[test]
fn deciding_about_a_step_that_does_not_wait_is_invalid_input() {
    let env = Env::new();
    let out = env.run(&waiting_workflow(&env), &[]);
    assert_eq!(out.code, 3, "{out}");
    let run = out.run_id();
    let events = env.event_count(Some(&run));

    let not_waiting = env.approve(&run, "done", &[]);
    assert_eq!(not_waiting.code, 2, "{not_waiting}");
    assert!(
        not_waiting
            .stderr
            .contains("step `done` is pending, not awaiting approval"),
        "{not_waiting}"
    );
    let unknown = env.approve(&run, "ghost", &[]);
    assert_eq!(unknown.code, 2, "{unknown}");
    assert!(unknown.stderr.contains("has no step `ghost`"), "{unknown}");
    let no_reason = env.reject(&run, "change", "  ");
    assert_eq!(no_reason.code, 2, "{no_reason}");
    assert!(no_reason.stderr.contains("needs a reason"), "{no_reason}");
    assert_eq!(env.event_count(Some(&run)), events, "nothing was recorded");
}

#[test]
fn resuming_a_finished_run_reports_it_and_records_nothing() {
    let env = Env::new();
    let ok = env.run(&quick_workflow(&env), &[]);
    assert_eq!(ok.code, 0, "{ok}");
    let events = env.event_count(Some(&ok.run_id()));
    let resumed = env.stepwise(&["resume", &ok.run_id(), "--json"]);
    assert_eq!(resumed.code, 0, "{resumed}");
    assert_eq!(resumed.json()["status"], "succeeded");
    assert_eq!(env.event_count(Some(&ok.run_id())), events);

    env.allow_everything();
    let wf = env.workflow(
        "fail.yaml",
        "name: fail\nsteps:\n  - id: boom\n    type: run_command\n    command: exit 4\n",
    );
    let failed = env.run(&wf, &[]);
    assert_eq!(failed.code, 1, "{failed}");
    let resumed = env.stepwise(&["resume", &failed.run_id(), "--json"]);
    assert_eq!(resumed.code, 1, "{resumed}");
    assert_eq!(resumed.json()["status"], "failed");

    let approve = env.approve(&ok.run_id(), "only", &[]);
    assert_eq!(approve.code, 2, "{approve}");
    assert!(
        approve.stderr.contains("has already succeeded"),
        "{approve}"
    );
}

#[test]
fn cancelling_a_run_waiting_for_approval_cancels_it() {
    let env = Env::new();
    let out = env.run(&waiting_workflow(&env), &[]);
    assert_eq!(out.code, 3, "{out}");
    let run = out.run_id();
    let cancelled = env.stepwise(&["cancel", &run, "--json"]);
    assert_eq!(cancelled.code, 1, "{cancelled}");
    assert_eq!(cancelled.json()["status"], "cancelled");
    let show = env.show(&run);
    assert_eq!(show["status"], "cancelled");
    assert_eq!(step(&show, "compute")["status"], "succeeded");
    assert_eq!(step(&show, "change")["status"], "cancelled");
    assert_eq!(step(&show, "done")["status"], "cancelled");
    assert!(env.read("out.txt").is_none());
    assert!(
        env.approvals().is_empty(),
        "a cancelled run waits for no one"
    );
    let events = env.events(&run);
    let requested = of_type(&events, "RunCancelRequested");
    assert_eq!(requested.len(), 1);
    assert_eq!(requested[0]["data"]["by"], os_user());
    assert_eq!(events.last().expect("events")["type"], "RunCancelled");
    let replay = env.stepwise(&["replay", &run]);
    assert_eq!(replay.code, 0, "a cancelled run replays too: {replay}");
}

#[test]
fn a_paused_run_holds_approved_work_until_it_is_resumed() {
    let env = Env::new();
    let out = env.run(&waiting_workflow(&env), &[]);
    assert_eq!(out.code, 3, "{out}");
    let run = out.run_id();

    let paused = env.stepwise(&["pause", &run, "--json"]);
    assert_eq!(paused.code, 3, "{paused}");
    assert_eq!(paused.json()["status"], "paused");
    assert_eq!(env.show(&run)["status"], "paused");

    // Approving while paused records the decision but starts nothing.
    let approved = env.approve(&run, "change", &[]);
    assert_eq!(approved.code, 3, "{approved}");
    assert_eq!(approved.json()["status"], "paused");
    assert!(env.read("out.txt").is_none(), "nothing runs while paused");
    assert!(
        of_type(&env.events(&run), "OperationStarted")
            .iter()
            .all(|e| e["data"]["request"]["kind"] != "write_file")
    );

    let resumed = env.stepwise(&["resume", &run, "--json"]);
    assert_eq!(resumed.code, 0, "{resumed}");
    assert_eq!(resumed.json()["status"], "succeeded");
    assert_eq!(env.read("out.txt").as_deref(), Some("written\n"));
    let events = env.events(&run);
    assert_eq!(of_type(&events, "RunPauseRequested").len(), 1);
    assert_eq!(of_type(&events, "RunResumeRequested").len(), 1);
}

#[test]
fn a_run_driven_in_process_by_the_engine_is_seen_and_continued_by_the_cli() {
    use stepwise_engine::{Engine, StartRun};

    let env = Env::new();
    let wf = waiting_workflow(&env);
    let mut config = env.engine_config();
    config.user_policy = Some(env.user_policy.clone());
    let engine = Engine::open(config).expect("open the engine");
    let start = StartRun {
        workflow_path: wf,
        workspace: env.ws.clone(),
        inputs: Default::default(),
        trigger: "test".into(),
        max_parallel: None,
        budget_micro_usd: None,
        pauses: Default::default(),
        cause: None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let (run, status) = runtime.block_on(async {
        let handle = engine.start_run(start).await.expect("start");
        let run = handle.run_id().to_string();
        (run, handle.wait().await.expect("drive"))
    });
    assert_eq!(status.as_str(), "awaiting_approval");
    drop(engine);

    let pending = env.approvals();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["run_id"], run);
    let approved = env.approve(&run, "change", &[]);
    assert_eq!(approved.code, 0, "{approved}");
    let show = env.show(&run);
    assert_eq!(show["run"]["trigger"], "test");
    assert_eq!(show["status"], "succeeded");
}

/// Runs `stepwise ARGS` with a stdout nobody reads (the read end closed before it starts).
fn with_closed_stdout(env: &Env, args: &[&str]) -> std::process::Output {
    use std::process::Stdio;
    let mut child = env
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start stepwise");
    drop(child.stdout.take());
    child.wait_with_output().expect("wait for stepwise")
}

#[test]
fn a_closed_stdout_ends_a_reading_command_quietly_and_never_stops_a_run() {
    use std::os::unix::process::ExitStatusExt;
    let env = Env::new();
    let run = env.run(&waiting_workflow(&env), &[]).run_id();

    // Reading: ended by SIGPIPE as Unix tools are, without a panic.
    for args in [
        vec!["events", run.as_str()],
        vec!["runs"],
        vec!["approvals"],
        vec!["show", run.as_str()],
    ] {
        let out = with_closed_stdout(&env, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(
            out.status.signal() == Some(libc::SIGPIPE) || out.status.code() == Some(0),
            "{args:?}: {:?}",
            out.status
        );
    }

    // Driving: the run goes on to its end, whatever happens to stdout.
    let out = with_closed_stdout(&env, &["approve", &run, "change"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(env.show(&run)["status"], "succeeded");
}

#[test]
fn eight_processes_starting_runs_at_once_on_a_new_database_all_succeed() {
    for round in 0..3 {
        let env = Env::new();
        let wf = quick_workflow(&env);
        let children: Vec<_> = (0..8)
            .map(|_| {
                env.command(&[
                    "run",
                    wf.to_str().expect("utf-8"),
                    "--workspace",
                    env.ws.to_str().expect("utf-8"),
                    "--json",
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("start stepwise")
            })
            .collect();
        for child in children {
            let out = crate::support::Out::from(child.wait_with_output().expect("wait"));
            assert_eq!(out.code, 0, "round {round}: {out}");
        }
        assert_eq!(env.run_count(), 8, "round {round}");
    }
}

/// Records a run as an older or damaged stepwise might have left it: started, waiting, with a
/// workflow source that this version cannot compile.
fn record_unreadable_run(env: &Env) -> String {
    use stepwise_core::event::{EVENT_SCHEMA_VERSION, Event, RunStarted};
    use stepwise_core::ids::RunId;
    use stepwise_store::{NewEvent, NewRun};
    let run_id = RunId::from("0badc0de-0000-4000-8000-000000000000");
    let started = Event::RunStarted(RunStarted {
        run_id: run_id.clone(),
        workflow_name: "damaged".into(),
        workflow_path: "damaged.yaml".into(),
        workflow_hash: "sha256:00".into(),
        workflow_source: "name: damaged\nsteps: [ {id: a, type: nosuchtype".into(),
        workspace: env.ws.display().to_string(),
        inputs: json!({}),
        trigger: "test".into(),
        started_by: "test".into(),
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
    });
    let mut store = env.database.open_to_write();
    let row = NewRun {
        run_id: run_id.clone(),
        workflow_name: "damaged".into(),
        workflow_path: "damaged.yaml".into(),
        workflow_hash: "sha256:00".into(),
        workspace: env.ws.display().to_string(),
        trigger: "test".into(),
        status: "awaiting_approval".into(),
        created_at_ms: 1,
        parent: None,
        cause: None,
    };
    let first = NewEvent {
        event_type: started.type_name().into(),
        schema_version: EVENT_SCHEMA_VERSION,
        recorded_at_ms: 1,
        correlation_id: None,
        causation_seq: None,
        payload: started.to_payload().expect("a payload"),
    };
    store.create_run(&row, &[first]).expect("record the run");
    run_id.to_string()
}

#[test]
fn a_run_that_cannot_be_read_fails_the_inbox_naming_it_rather_than_hide_its_questions() {
    let env = Env::new();
    let good = env.run(&waiting_workflow(&env), &[]).run_id();
    let bad = record_unreadable_run(&env);

    // A list without the run's questions would say none of them waits: the inbox fails,
    // naming the run and what is wrong with it.
    for args in [vec!["approvals"], vec!["approvals", "--json"]] {
        let out = env.stepwise(&args);
        assert_eq!(out.code, 1, "{args:?}: {out}");
        assert_eq!(out.stdout.trim(), "", "{args:?}: {out}");
        assert!(
            out.stderr.contains(&format!("run `{bad}` cannot be read"))
                && out.stderr.contains("damaged.yaml"),
            "{args:?}: {out}"
        );
    }
    // The other run's questions are still there to be seen, run by run.
    let out = env.stepwise(&["approvals", &good, "--json"]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(out.json()[0]["run_id"], good.as_str(), "{out}");

    // The run itself says what is wrong with it, in words.
    let out = env.stepwise(&["show", &bad]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("damaged.yaml"), "{out}");
    assert!(env.stepwise(&["runs"]).stdout.contains(&bad));
}

#[test]
fn the_environment_is_read_once_by_the_engine_and_flags_win_over_it() {
    let env = Env::new();
    let wf = env.workflow(
        "one.yaml",
        "name: one\nsteps:\n  - id: a\n    type: set\n    values: {v: 1}\n",
    );
    let wf = wf.to_str().expect("utf-8");
    let ws = env.ws.to_str().expect("utf-8");
    let out = env
        .command(&["run", wf, "--workspace", ws])
        .env("STEPWISE_SYNC", "sometimes")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("STEPWISE_SYNC is `sometimes`; it may be `full` or `normal`"),
        "{stderr}"
    );
    // A flag wins over the variable; either value works.
    for (flag, var) in [("full", "sometimes"), ("normal", "full")] {
        let out = env
            .command(&["run", wf, "--workspace", ws, "--sync", flag])
            .env("STEPWISE_SYNC", var)
            .output()
            .expect("run");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = env
        .command(&["runs"])
        .env("STEPWISE_SYNC", "NORMAL")
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn steps_lists_every_step_type_with_its_fields() {
    let env = Env::new();
    let out = env.stepwise(&["steps", "--json"]);
    assert_eq!(out.code, 0, "{out}");
    let types = out.json();
    let find = |name: &str| {
        types
            .as_array()
            .and_then(|t| t.iter().find(|t| t["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("{name} is not listed: {types}"))
    };
    let command = find("run_command");
    assert_eq!(command["source"], "built-in");
    let field = command["fields"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["name"] == "command"))
        .cloned()
        .expect("its command field");
    assert_eq!(field["required"], true);
    for name in [
        "read_file",
        "edit_file",
        "set",
        "approval",
        "prompt",
        "agent",
        "plan",
    ] {
        find(name);
    }
    let text = env.stepwise(&["steps"]).to_string();
    assert!(text.contains("run_command  (built-in)"), "{text}");
}
