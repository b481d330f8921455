//! `stepwise db copy`: a thousand runs moved from a SQLite file to a PostgreSQL database and
//! back, verified by the copy itself and by what the destination then answers (`runs`,
//! `verify`, `show`, `replay`). Needs the PostgreSQL test server (`STEPWISE_TEST_PG`), which
//! CI always has.

use serde_json::Value;

use crate::backend::{admin_url, new_database_on};
use crate::support::{Env, step};

/// A thousand small runs, and a few with blobs, commands, kept file versions and a signal.
fn fill(env: &Env) -> Vec<String> {
    let quick = env.workflow(
        "quick.yaml",
        "name: quick\ninputs:\n  n:\n    type: string\nsteps:\n  - id: a\n    type: set\n    values:\n      x: \"${inputs.n}\"\n",
    );
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let mut config = env.engine_config();
    config.shared = None;
    let engine = stepwise_engine::Engine::open(config).expect("open the engine");
    let mut runs = runtime.block_on(async {
        let mut runs = Vec::new();
        for n in 0..1_000 {
            let mut start = env.start_request(quick.clone());
            start.inputs = [("n".to_string(), n.to_string())].into();
            let handle = engine.start_run(start).await.expect("start");
            runs.push(handle.run_id().to_string());
            handle.wait().await.expect("drive");
        }
        engine.shutdown().await;
        runs
    });
    // A run with a large file (a blob in the log) whose edit waits for a person.
    env.write("big.txt", &"0123456789abcdef\n".repeat(400));
    let edit = env.workflow(
        "edit.yaml",
        "name: edit\nsteps:\n  - id: look\n    type: read_file\n    path: big.txt\n  - id: edit\n    type: edit_file\n    needs: [look]\n    path: big.txt\n    content: \"short now\\n\"\n",
    );
    let out = env.run(&edit, &[]);
    assert_eq!(out.code, 3, "the edit waits: {out}");
    // A second such run whose edit a person rejected (a handled command), and a signal.
    let rejected = env.run(&edit, &[]);
    let decided = env.reject(&rejected.run_id(), "edit", "not now");
    assert_eq!(decided.code, 1, "{decided}");
    let signalled = env.stepwise(&["signal", "deploy", "--data", "{\"to\": \"prod\"}"]);
    assert_eq!(signalled.code, 0, "{signalled}");
    runs.push(rejected.run_id());
    runs.push(out.run_id());
    runs
}

fn sqlite_stepwise(env: &Env, db: &std::path::Path, args: &[&str]) -> crate::support::Out {
    let mut command = env.command(args);
    command.env("STEPWISE_DB", db);
    crate::support::Out::from(command.output().expect("start stepwise"))
}

#[test]
fn a_thousand_runs_go_to_postgresql_and_back_verified_and_replayable() {
    if admin_url().is_none() {
        return;
    }
    let mut env = Env::new();
    // The source is a SQLite file, whichever backend the suite runs on.
    env.database = crate::backend::TestDb::sqlite(env.db.clone());
    let source = env.db.clone();
    let runs = fill(&env);
    let target = new_database_on(&admin_url().expect("the server"));
    let source_text = source.display().to_string();

    let out = env.stepwise(&[
        "db",
        "copy",
        "--from",
        &source_text,
        "--to",
        &target,
        "--json",
    ]);
    assert_eq!(out.code, 0, "{out}");
    let report = out.json();
    assert_eq!(report["copy"]["copied"], 1_002, "{report}");
    assert_eq!(report["copy"]["verified"], 1_002, "{report}");
    assert!(
        report["copy"]["events"].as_u64().expect("events") > 3_000,
        "{report}"
    );
    assert_eq!(report["copy"]["commands"], 1, "{report}");
    assert_eq!(report["copy"]["signals"], 1, "{report}");
    let replayed = report["replayed"].as_array().expect("replays");
    assert_eq!(replayed.len(), 10, "{report}");
    assert!(replayed.iter().all(|r| r["matches"] == true), "{report}");

    // The destination answers as the source did.
    let on_postgres = |args: &[&str]| {
        let mut command = env.command(args);
        command.env("STEPWISE_DB", &target);
        crate::support::Out::from(command.output().expect("start stepwise"))
    };
    let listed = on_postgres(&["runs", "--json", "--limit", "2000"]).json();
    assert_eq!(listed.as_array().expect("runs").len(), 1_002);
    let last = runs.last().expect("the edit run");
    let there = on_postgres(&["verify", last, "--json"]).json();
    let here = sqlite_stepwise(&env, &source, &["verify", last, "--json"]).json();
    assert_eq!(there["intact"], true, "{there}");
    assert_eq!(there["last_link"], here["last_link"], "the same chain");
    let show = on_postgres(&["show", last, "--json"]).json();
    assert_eq!(step(&show, "look")["status"], "succeeded", "{show}");
    // Its edit is approved there, and the run finishes there, in the same workspace.
    let approved = on_postgres(&["approve", last, "edit", "--json"]);
    assert_eq!(approved.code, 0, "{approved}");
    assert_eq!(env.read("big.txt").as_deref(), Some("short now\n"));

    // Copying again finds every run there already; a different run of the same id is refused.
    let again = env.stepwise(&[
        "db",
        "copy",
        "--from",
        &source_text,
        "--to",
        &target,
        "--json",
        "--replay",
        "0",
    ]);
    assert_eq!(again.code, 2, "the approved run's log differs now: {again}");
    assert!(
        again.stderr.contains(last.as_str()) && again.stderr.contains("another log"),
        "{again}"
    );

    // And back, into a new file.
    let back = env.root().join("back.db");
    let back_text = back.display().to_string();
    let out = env.stepwise(&[
        "db", "copy", "--from", &target, "--to", &back_text, "--json",
    ]);
    assert_eq!(out.code, 0, "{out}");
    let report: Value = out.json();
    assert_eq!(report["copy"]["copied"], 1_002, "{report}");
    assert_eq!(report["copy"]["verified"], 1_002, "{report}");
    let there = on_postgres(&["verify", last, "--json"]).json();
    let back_here = sqlite_stepwise(&env, &back, &["verify", last, "--json"]).json();
    assert_eq!(back_here["last_link"], there["last_link"]);
    assert_eq!(back_here["intact"], true);
}
