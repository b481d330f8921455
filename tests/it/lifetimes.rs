//! Who owns what the engine starts: dropping its last handle (or `shutdown`) stops every thread
//! and task it started, its feeds end, lock files of finished runs go; and a driver that fails
//! never fails silently: the run ends failed saying why, and whoever listens is told.

use std::time::{Duration, Instant};

use stepwise_core::event::Event;
use stepwise_core::ids::EventSeq;
use stepwise_core::run::RunStatus;
use stepwise_engine::{Engine, EngineError, RunUpdate};

use crate::support::{Env, runtime, threads};

const PATIENCE: Duration = Duration::from_secs(30);

fn engine(env: &Env, hold: bool) -> Engine {
    let mut config = env.engine_config();
    config.hold_waiting_runs = hold;
    Engine::open(config).expect("open the engine")
}

/// Opens an engine on the test's database, lets `arm` set its test hooks, starts `workflow`
/// and waits for its driver: the run, and how the driver ended.
fn drive_with(
    env: &Env,
    workflow: std::path::PathBuf,
    arm: impl FnOnce(&Engine),
) -> (stepwise_core::ids::RunId, Result<RunStatus, EngineError>) {
    runtime().block_on(async {
        let engine = engine(env, false);
        arm(&engine);
        let handle = engine
            .start_run(env.start_request(workflow))
            .await
            .expect("start");
        let run = handle.run_id().clone();
        let ended = tokio::time::timeout(PATIENCE, handle.wait())
            .await
            .expect("the driver stops");
        (run, ended)
    })
}

/// Runs this test alone in a process of its own (threads are counted per process, and the
/// harness runs tests side by side), and checks it passed there.
pub fn isolated(name: &str) -> bool {
    if std::env::var_os("STEPWISE_IT_ISOLATED").is_some() {
        return true;
    }
    let out = std::process::Command::new(std::env::current_exe().expect("the test binary"))
        .args([name, "--exact", "--test-threads=1", "--nocapture"])
        .env("STEPWISE_IT_ISOLATED", "1")
        .output()
        .expect("run the test alone");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("1 passed"),
        "the isolated run failed:\n{text}"
    );
    false
}

/// Waits up to `limit` for the thread count to come back to `baseline`; the count then.
fn threads_back_to(baseline: usize, limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    loop {
        let now = threads();
        if now <= baseline || Instant::now() >= deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn dropping_the_last_engine_leaves_no_thread_task_or_feed_behind() {
    if !isolated("lifetimes::dropping_the_last_engine_leaves_no_thread_task_or_feed_behind") {
        return;
    }
    let env = Env::new();
    env.allow_everything();
    // Another process holds a run (a long command), which the engine stands by for.
    let held = env.workflow(
        "held.yaml",
        "name: held\nsteps:\n  - id: wait\n    type: run_command\n    command: sleep 60\n",
    );
    let holder = env.spawn_run(&held);
    // (adopting stands by for it)
    env.first_run_id(PATIENCE)
        .expect("the other process starts its run");
    // This engine holds a run waiting for a person (an edit: its file is watched).
    env.workspace_policy("  - ask: edit_file\n");
    let waiting = env.workflow(
        "edit.yaml",
        "name: edit\nsteps:\n  - id: edit\n    type: edit_file\n    path: out.txt\n    content: hi\n",
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let baseline = threads();
    runtime.block_on(async {
        let engine = engine(&env, true);
        let adopting = engine.adopt_unheld_runs().await.expect("adopt");
        let handle = engine
            .start_run(env.start_request(waiting))
            .await
            .expect("start");
        let run = handle.run_id().clone();
        let mut feed = engine.subscribe_run(run.as_str(), EventSeq::ZERO);
        let mut runs = engine.subscribe_runs().await.expect("runs feed");
        let settle = engine.settle(run.as_str());
        assert_eq!(
            tokio::time::timeout(PATIENCE, settle)
                .await
                .expect("settles")
                .expect("settle"),
            RunStatus::AwaitingApproval
        );
        // The feeds are followed in tasks of the caller's, as an app does.
        let follow_run = tokio::spawn(async move {
            loop {
                match feed.next().await {
                    Some(Ok(_)) => continue,
                    Some(Err(error)) => return Some(error),
                    None => return None,
                }
            }
        });
        let follow_runs = tokio::spawn(async move {
            loop {
                if let Err(error) = runs.next().await {
                    return error;
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(threads() > baseline, "the engine runs threads of its own");

        let dropped_at = Instant::now();
        drop(engine);
        let ended = tokio::time::timeout(Duration::from_secs(1), async {
            let run_feed = follow_run.await.expect("the run feed's task");
            let runs_feed = follow_runs.await.expect("the runs feed's task");
            (run_feed, runs_feed)
        })
        .await
        .expect("every feed and wait ends within 1 s of the engine's last handle going");
        assert!(
            matches!(ended.0, Some(EngineError::ShutDown)),
            "{:?}",
            ended.0
        );
        assert!(matches!(ended.1, EngineError::ShutDown), "{:?}", ended.1);
        assert!(handle.wait().await.is_err(), "its driver let go of the run");
        assert!(adopting.await.is_ok(), "the adopt task ended on its own");
        let left = threads_back_to(
            baseline,
            Duration::from_secs(1).saturating_sub(dropped_at.elapsed()),
        );
        assert_eq!(left, baseline, "threads of the engine's are left behind");
    });
    holder.kill();
}

#[test]
fn shutdown_waits_for_everything_to_stop_and_the_engine_refuses_work_after() {
    if !isolated(
        "lifetimes::shutdown_waits_for_everything_to_stop_and_the_engine_refuses_work_after",
    ) {
        return;
    }
    let env = Env::new();
    env.allow_everything();
    let long = env.workflow(
        "long.yaml",
        "name: long\nsteps:\n  - id: wait\n    type: run_command\n    command: sleep 60\n",
    );
    // Another process holds a run too.
    let holder = env.spawn_run(&long);
    let held_run = env
        .first_run_id(PATIENCE)
        .expect("the other process starts its run");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let baseline = threads();
    let ours = runtime.block_on(async {
        let engine = engine(&env, false);
        let handle = engine
            .start_run(env.start_request(long))
            .await
            .expect("start");
        let run = handle.run_id().clone();
        // The command is running.
        let deadline = Instant::now() + PATIENCE;
        while engine
            .load_run(run.as_str())
            .await
            .expect("load")
            .state
            .unanswered_operations()
            .is_empty()
        {
            assert!(Instant::now() < deadline, "the command never started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A wait on a run another process holds, in a task of the caller's.
        let waiter = engine.clone();
        let held_run = held_run.clone();
        let settling = tokio::spawn(async move { waiter.settle(&held_run).await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let asked = Instant::now();
        tokio::time::timeout(Duration::from_secs(1), engine.shutdown())
            .await
            .expect("shutdown returns within 1 s, a running command killed");
        let settled = tokio::time::timeout(Duration::from_secs(1), settling)
            .await
            .expect("the wait ends")
            .expect("its task");
        assert!(matches!(settled, Err(EngineError::ShutDown)), "{settled:?}");
        assert!(asked.elapsed() < Duration::from_secs(1));
        assert!(matches!(handle.wait().await, Err(EngineError::ShutDown)));
        assert!(matches!(
            engine.list_runs(10).await,
            Err(EngineError::ShutDown)
        ));
        drop(engine);
        run
    });
    assert_eq!(threads_back_to(baseline, Duration::from_secs(1)), baseline);
    // The run was let go, not ended: another process takes it over and recovers it.
    let show = env.show(ours.as_str());
    assert_eq!(show["status"], "running", "{show}");
    holder.kill();
}

#[test]
fn a_finished_run_s_lock_file_is_removed() {
    let env = Env::new();
    let wf = env.workflow(
        "one.yaml",
        "name: one\nsteps:\n  - id: a\n    type: set\n    values: {v: 1}\n",
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let run = out.run_id();
    let locks = env.db.with_file_name("stepwise.db.locks");
    let left: Vec<String> = std::fs::read_dir(&locks)
        .expect("the locks directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&run))
        .collect();
    assert!(
        left.is_empty(),
        "lock files of a finished run are left: {left:?}"
    );
    // Asking about it, or driving it again, works all the same and leaves none.
    let again = env.stepwise(&["resume", &run]);
    assert!(again.code == 0 || again.code == 2, "{}", again.stderr);
    assert_eq!(env.show(&run)["status"], "succeeded");
}

#[test]
fn a_driver_that_cannot_write_the_log_ends_the_run_failed_saying_why_and_tells_listeners() {
    let env = Env::new();
    let wf = env.workflow(
        "chain.yaml",
        "name: chain\nsteps:\n  - id: a\n    type: set\n    values: {v: 1}\n  - id: b\n    type: set\n    values: {v: 2}\n    needs: [a]\n",
    );
    let runtime = runtime();
    let (run, failure, waited) = runtime.block_on(async {
        let engine = engine(&env, false);
        let mut failures = engine.subscribe_failures();
        // The disk refuses the first commit a driver makes (the one after `RunStarted`).
        engine.test_hooks().fail_commits(None, 1);
        let handle = engine.start_run(env.start_request(wf)).await.expect("start");
        let run = handle.run_id().clone();
        let waited = tokio::time::timeout(PATIENCE, handle.wait())
            .await
            .expect("the driver stops");
        let failure = tokio::time::timeout(PATIENCE, failures.recv())
            .await
            .expect("listeners are told")
            .expect("a failure");
        // A follower sees the run end with it.
        let mut feed = engine.follow_run(run.as_str(), EventSeq::ZERO);
        let mut last = None;
        tokio::time::timeout(PATIENCE, async {
            while let Some(update) = feed.next().await {
                last = Some(update.expect("the feed"));
            }
        })
        .await
        .expect("the feed ends with the run");
        assert!(
            matches!(&last, Some(RunUpdate::Event(e)) if e.ends_run() && matches!(e.event, Event::RunAborted { .. })),
            "{last:?}"
        );
        (run, failure, waited)
    });
    let error = waited.expect_err("the driver failed").to_string();
    assert!(error.contains("the disk refused the write"), "{error}");
    assert_eq!(failure.run_id, run);
    assert!(
        failure.message.contains("the disk refused the write"),
        "{failure:?}"
    );

    // Any process reading the run sees that it failed, and why.
    let show = env.show(run.as_str());
    assert_eq!(show["status"], "failed", "{show}");
    let aborted = show["aborted"].as_str().unwrap_or_default();
    assert!(aborted.contains("the disk refused the write"), "{show}");
    let text = env.stepwise(&["show", run.as_str()]);
    assert!(
        text.stdout.contains("the engine could not go on")
            && text.stdout.contains("the disk refused the write"),
        "{}",
        text.stdout
    );
    let events = env.events(run.as_str());
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(types, ["RunStarted", "RunAborted"], "{events:?}");
    // It stays failed: driving it again records nothing more.
    let again = env.stepwise(&["resume", run.as_str()]);
    assert_ne!(again.code, 0, "{}", again.stdout);
    assert_eq!(env.events(run.as_str()).len(), 2);
}

/// A command is prepared while its start is committed, and starts only once that commit is
/// durable: when the commit fails, it never runs.
#[test]
fn a_command_whose_start_cannot_be_recorded_never_runs() {
    let env = Env::new();
    env.allow_everything();
    let wf = env.workflow(
        "touch.yaml",
        "name: touch\nsteps:\n  - id: touch\n    type: run_command\n    command: \"echo ran > ran.txt\"\n",
    );
    let (run, ended) = drive_with(&env, wf, |engine| {
        // The disk refuses the commit holding the command's start, after a while: time for
        // the command, prepared meanwhile, to be waiting for it.
        engine
            .test_hooks()
            .slow_commits(None, Duration::from_millis(300));
        engine.test_hooks().fail_commits(None, 1);
    });
    assert!(ended.is_err(), "the driver failed");
    // Time enough for a command that was wrongly started to have written its file.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(env.read("ran.txt"), None, "the command ran");
    let events = env.events(run.as_str());
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(types, ["RunStarted", "RunAborted"], "{events:?}");
}

/// A command prepared while its start is committed starts only once that commit is durable:
/// with each commit held up 400 ms, it starts at least 400 ms after its start was decided.
#[test]
fn a_command_starts_only_once_its_start_is_durable() {
    let env = Env::new();
    env.allow_everything();
    let wf = env.workflow(
        "stamp.yaml",
        "name: stamp\nsteps:\n  - id: stamp\n    type: run_command\n    command: \"date +%s%3N > started.ms\"\n",
    );
    let held = Duration::from_millis(400);
    let (run, ended) = drive_with(&env, wf, |engine| {
        engine.test_hooks().slow_commits(None, held);
    });
    assert_eq!(ended.expect("the driver"), RunStatus::Succeeded);
    let started: i64 = env
        .read("started.ms")
        .and_then(|text| text.trim().parse().ok())
        .expect("the command wrote when it started");
    let events = env.events(run.as_str());
    let decided = events
        .iter()
        .find(|e| e["type"] == "OperationStarted")
        .and_then(|e| e["recorded_at_ms"].as_i64())
        .expect("the command's start, recorded");
    let held_ms = i64::try_from(held.as_millis()).unwrap_or(i64::MAX);
    assert!(
        started >= decided + held_ms,
        "the command started {} ms after its start was decided, before the commit was durable",
        started - decided
    );
}

/// The engine is a child subreaper (so that what a killed supervisor leaves comes to it) only
/// while a command runs: a supervisor kept between commands has no child to leave behind, and
/// the embedding process's own orphans (WebKit's, in the app) must not become the engine's.
#[test]
fn the_engine_is_a_child_subreaper_only_while_a_command_runs() {
    if !isolated("lifetimes::the_engine_is_a_child_subreaper_only_while_a_command_runs") {
        return;
    }
    let env = Env::new();
    env.allow_everything();
    let (ready, go) = (env.fifo("ready.fifo"), env.fifo("go.fifo"));
    let wf = env.workflow(
        "wait.yaml",
        "name: wait\nsteps:\n  - id: wait\n    type: run_command\n    command: \"echo started > ready.fifo; cat go.fifo\"\n",
    );
    let runtime = runtime();
    let subreaper = || nix::sys::prctl::get_child_subreaper().expect("prctl");
    assert!(!subreaper(), "a subreaper before any command");
    let engine = runtime.block_on(async { engine(&env, false) });
    let handle = runtime
        .block_on(engine.start_run(env.start_request(wf)))
        .expect("start");
    assert_eq!(
        crate::support::wait_for_fifo(&ready, PATIENCE).as_deref(),
        Some("started")
    );
    assert!(subreaper(), "not a subreaper while the command runs");
    crate::support::release(&go);
    let status = runtime
        .block_on(async { tokio::time::timeout(PATIENCE, handle.wait()).await })
        .expect("the run ends")
        .expect("the driver");
    assert_eq!(status, RunStatus::Succeeded);
    assert!(
        !subreaper(),
        "still a subreaper with only a kept supervisor left"
    );
    drop(engine);
}
