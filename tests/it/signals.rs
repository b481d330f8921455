//! Signals into running runs: a `wait_signal` step waits until `stepwise signal NAME` records
//! one, and its data is the step's output. A signal is recorded once per name and key and
//! taken by one waiting step; a run nobody drives is continued by the process that sends the
//! signal; a wait past its timeout fails the step; replay answers the wait from the log.

use std::time::Duration;

use serde_json::json;

use crate::support::{Env, step};

const WAIT: &str = "name: wait-deploy
steps:
  - id: deployed
    type: wait_signal
    name: deploy/done
    timeout: 30s
  - id: after
    needs: [deployed]
    type: set
    values:
      version: ${steps.deployed.output.version}
";

fn wait_until_waiting(env: &Env, count: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let runs: Vec<String> = env
            .stepwise(&["runs", "--json"])
            .json()
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|r| r["status"] != "succeeded" && r["status"] != "failed")
            .filter_map(|r| r["run_id"].as_str().map(str::to_string))
            .collect();
        let waiting: Vec<String> = runs
            .into_iter()
            .filter(|run| step(&env.show(run), "deployed")["status"] == "running")
            .collect();
        if waiting.len() >= count {
            return waiting;
        }
        assert!(std::time::Instant::now() < deadline, "runs never waited");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_waiting_run_takes_a_signal_once_per_key_and_replays_without_it() {
    let env = Env::new();
    let wf = env.workflow("wait.yaml", WAIT);
    let first = env.spawn_run(&wf);
    let second = env.spawn_run(&wf);
    let waiting = wait_until_waiting(&env, 2);

    let sent = env.stepwise(&[
        "signal",
        "deploy/done",
        "--data",
        r#"{"version": "1.2.3"}"#,
        "--key",
        "d1",
        "--json",
    ]);
    assert_eq!(sent.code, 0, "{sent}");
    assert_eq!(sent.json()["recorded"], true);
    // Both runs are driven by their processes: this one drives none.
    assert_eq!(sent.json()["drives"], json!(null));
    // The same key again is the same signal: it wakes nobody else.
    let again = env.stepwise(&[
        "signal",
        "deploy/done",
        "--data",
        r#"{"version": "9"}"#,
        "--key",
        "d1",
        "--json",
    ]);
    assert_eq!(again.code, 0, "{again}");
    assert_eq!(again.json()["recorded"], false);
    assert_eq!(again.json()["signal_id"], sent.json()["signal_id"]);

    // Exactly one of the two runs took it, with its data as the step's output.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let done = loop {
        let done: Vec<&String> = waiting
            .iter()
            .filter(|run| env.show(run)["status"] == "succeeded")
            .collect();
        if !done.is_empty() || std::time::Instant::now() > deadline {
            break done.into_iter().cloned().collect::<Vec<_>>();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(done.len(), 1, "one run took the signal: {done:?}");
    std::thread::sleep(Duration::from_millis(1_500));
    let still: Vec<&String> = waiting
        .iter()
        .filter(|r| env.show(r)["status"] != "succeeded")
        .collect();
    assert_eq!(still.len(), 1, "the other still waits");
    let show = env.show(&done[0]);
    assert_eq!(
        step(&show, "deployed")["output"],
        json!({"version": "1.2.3"})
    );
    assert_eq!(step(&show, "after")["output"], json!({"version": "1.2.3"}));

    // A second signal (another key) goes to the one still waiting.
    let sent = env.stepwise(&["signal", "deploy/done", "--data", r#"{"version": "2.0"}"#]);
    assert_eq!(sent.code, 0, "{sent}");
    let _ = first.finish(Duration::from_secs(20));
    let _ = second.finish(Duration::from_secs(20));
    let other = env.show(still[0]);
    assert_eq!(other["status"], "succeeded", "{other}");
    assert_eq!(step(&other, "after")["output"], json!({"version": "2.0"}));

    // Replay answers the wait from the log.
    let replayed = env.stepwise(&["replay", &done[0], "--json"]);
    assert_eq!(replayed.code, 0, "{replayed}");
    assert_eq!(replayed.json()["matches"], true, "{replayed}");
}

#[test]
fn a_run_nobody_drives_is_continued_by_the_signal_and_a_wait_times_out() {
    let env = Env::new();
    let wf = env.workflow("wait.yaml", WAIT);
    let cli = env.spawn_run(&wf);
    let waiting = wait_until_waiting(&env, 1);
    cli.kill();
    let out = env.stepwise(&["signal", "deploy/done", "--data", r#"{"version": "3"}"#]);
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout.contains("nobody drives it: continuing it here"),
        "{out}"
    );
    let show = env.show(&waiting[0]);
    assert_eq!(show["status"], "succeeded", "{show}");
    assert_eq!(step(&show, "after")["output"], json!({"version": "3"}));

    let quick = env.workflow(
        "quick.yaml",
        "name: quick\nsteps:\n  - id: w\n    type: wait_signal\n    name: never\n    timeout: 1s\n",
    );
    let out = env.run(&quick, &[]);
    assert_eq!(out.code, 1, "{out}");
    let error = step(&env.show(&out.run_id()), "w")["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(error, "no signal `never` arrived within 1s");

    // A run with a second wait is driven through the first, then let go: no hang.
    let two = env.workflow(
        "two.yaml",
        "name: two\nsteps:\n  - id: a\n    type: wait_signal\n    name: first\n  - id: b\n    needs: [a]\n    type: wait_signal\n    name: second\n",
    );
    let cli = env.spawn_run(&two);
    let run = loop {
        let found = env
            .stepwise(&["runs", "--json"])
            .json()
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .find(|r| r["workflow_name"] == "two")
            .and_then(|r| r["run_id"].as_str().map(str::to_string));
        if let Some(run) = found.filter(|run| step(&env.show(run), "a")["status"] == "running") {
            break run;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    cli.kill();
    let out = env.stepwise(&["signal", "first"]);
    assert_eq!(out.code, 3, "{out}");
    assert!(out.stdout.contains("waits for another signal"), "{out}");
    let show = env.show(&run);
    assert_eq!(step(&show, "a")["status"], "succeeded", "{show}");
    assert_eq!(step(&show, "b")["status"], "running", "{show}");
    let out = env.stepwise(&["signal", "second"]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(env.show(&run)["status"], "succeeded");

    // Bad names and data are refused with what is wrong.
    let bad = env.workflow(
        "bad.yaml",
        "name: bad\nsteps:\n  - id: w\n    type: wait_signal\n    name: \"has space\"\n",
    );
    let out = env.stepwise(&["validate", bad.to_str().unwrap()]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stdout
            .contains(":5:5: step `w`: `name` `has space` is not a signal's name"),
        "{out}"
    );
    let out = env.stepwise(&["signal", "deploy/done", "--data", "{not json"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("--data is not JSON"), "{out}");
    let out = env.stepwise(&["signal", "bad name"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("is not a signal's name"), "{out}");
}

#[test]
fn pausing_a_run_nobody_drives_while_it_waits_returns_and_resume_takes_the_signal() {
    let env = Env::new();
    let wf = env.workflow("wait.yaml", WAIT);
    let following = env.spawn_run(&wf);
    let run = wait_until_waiting(&env, 1).remove(0);
    // Its process dies: nobody drives the run, which waits for its signal.
    following.kill();
    let asked = std::time::Instant::now();
    let paused = env.stepwise(&["pause", &run]);
    assert_eq!(paused.code, 3, "{paused}");
    assert!(
        asked.elapsed() < Duration::from_secs(15),
        "pause returned only after {:?}",
        asked.elapsed()
    );
    let shown = env.show(&run);
    assert_eq!(shown["status"], "paused");
    assert_eq!(shown["held_by"], json!(null), "nobody holds a paused run");
    // A signal now is recorded; the paused run does not take it until it is resumed.
    let sent = env.stepwise(&["signal", "deploy/done", "--data", r#"{"version": "2"}"#]);
    assert_eq!(sent.code, 0, "{sent}");
    assert_eq!(env.show(&run)["status"], "paused");
    let resumed = env.stepwise(&["resume", &run]);
    assert_eq!(resumed.code, 0, "{resumed}");
    let shown = env.show(&run);
    assert_eq!(shown["status"], "succeeded");
    assert_eq!(step(&shown, "after")["output"]["version"], "2");
}
