//! Triggers: `stepwise watch` starts runs of the workspace's workflows whose `on:` says so —
//! a file created or changed, a cron slot passing, a signal recorded — exactly one per firing
//! however many watchers share the database, each run recording its cause; a run's own edits
//! start nothing.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Background, Env, Lines, step};

const ON_CHANGE: &str = r#"name: on-change
on:
  files:
    paths: ["src/**"]
    debounce: 300ms
inputs:
  trigger: {type: object, default: {}}
steps:
  - id: note
    type: set
    values:
      what: ${inputs.trigger.summary}
"#;

/// Starts `stepwise watch --json` on the test's workspace and waits until it watches.
fn watcher(env: &Env) -> (Background, Lines) {
    let ws = env.ws.display().to_string();
    let (watch, lines) = env.spawn_piped(&["watch", "--workspace", &ws, "--json"]);
    lines
        .until(Duration::from_secs(20), |line| {
            line.contains(r#""event":"watching""#)
        })
        .expect("the watcher reports what it watches");
    (watch, lines)
}

fn started(lines: &Lines, limit: Duration) -> Option<(Instant, Value)> {
    let (_, line) = lines.until(limit, |line| line.contains(r#""event":"started""#))?;
    Some((
        Instant::now(),
        serde_json::from_str(&line).expect("a JSON line"),
    ))
}

/// A workflow that writes `content` into `src/generated.txt` whenever `src/` changes.
fn generate(content: &str, include_own: bool) -> String {
    format!(
        "name: generate\non:\n  files:\n    paths: [\"src/**\"]\n    debounce: 300ms\n    include_own: {include_own}\nsteps:\n  - id: write\n    type: edit_file\n    path: src/generated.txt\n    content: \"{content}\\n\"\n"
    )
}

/// Waits until every run has finished.
fn all_finished(env: &Env) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while env.runs().iter().any(|run| {
        !["succeeded", "failed", "cancelled"].contains(&run["status"].as_str().unwrap_or(""))
    }) {
        assert!(
            Instant::now() < deadline,
            "runs never finished: {:?}",
            env.runs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_new_file_starts_one_run_with_its_cause_and_a_burst_of_writes_starts_one() {
    let env = Env::new();
    env.write("workflows/on-change.yaml", ON_CHANGE);
    env.write("src/old.txt", "there before the watcher");
    let (_watch, lines) = watcher(&env);

    let created = Instant::now();
    env.write("src/a.txt", "hello");
    let (at, event) = started(&lines, Duration::from_secs(3)).expect("a run within 3 s");
    assert!(at.duration_since(created) < Duration::from_secs(3));
    assert_eq!(event["cause"]["kind"], "files");
    assert_eq!(event["cause"]["summary"], "create src/a.txt");
    let run = event["run_id"].as_str().expect("a run id").to_string();
    all_finished(&env);
    let shown = env.show(&run);
    assert_eq!(shown["run"]["trigger"], "watch");
    assert_eq!(shown["run"]["cause"], "create src/a.txt");
    assert_eq!(shown["cause"]["summary"], "create src/a.txt");
    assert_eq!(step(&shown, "note")["output"]["what"], "create src/a.txt");
    let listed = env.stepwise(&["runs"]);
    assert!(
        listed.stdout.contains("started by: create src/a.txt"),
        "{listed}"
    );

    // Fifty writes in a burst: one run, once they are quiet.
    for i in 0..50 {
        env.write("src/b.txt", &format!("version {i}"));
    }
    let (_, event) = started(&lines, Duration::from_secs(5)).expect("a run for the burst");
    assert_eq!(event["cause"]["summary"], "create src/b.txt");
    assert!(
        started(&lines, Duration::from_secs(2)).is_none(),
        "one burst, one run"
    );
    // A file outside the patterns, and one saved with what it held, start nothing.
    env.write("notes.txt", "not watched");
    env.write("src/old.txt", "there before the watcher");
    assert!(started(&lines, Duration::from_secs(2)).is_none());
    all_finished(&env);
    assert_eq!(env.runs().len(), 2);
}

#[test]
fn two_watchers_on_one_database_start_one_run_per_firing() {
    let env = Env::new();
    env.write("workflows/on-change.yaml", ON_CHANGE);
    let (_first, first_lines) = watcher(&env);
    let (_second, second_lines) = watcher(&env);
    for (i, name) in ["one", "two", "three"].iter().enumerate() {
        env.write(&format!("src/{name}.txt"), name);
        let first = started(&first_lines, Duration::from_secs(3));
        let second = started(&second_lines, Duration::from_secs(1));
        assert!(
            first.is_some() != second.is_some(),
            "exactly one watcher starts the run of firing {name}"
        );
        all_finished(&env);
        assert_eq!(env.runs().len(), i + 1);
    }
    let causes: Vec<Value> = env.runs().iter().map(|run| run["cause"].clone()).collect();
    assert_eq!(causes.len(), 3);
    // Each firing is one signal, recorded once.
    assert_eq!(
        changed_paths(&env),
        ["src/one.txt", "src/three.txt", "src/two.txt"]
    );

    // Changes close together, which each watcher may group its own way: each change is in
    // one firing, whichever watcher recorded it.
    for round in 0..3 {
        env.write(&format!("src/a{round}.txt"), "a");
        std::thread::sleep(Duration::from_millis(280 + 20 * round));
        env.write(&format!("src/b{round}.txt"), "b");
        std::thread::sleep(Duration::from_millis(150));
        env.write(&format!("src/a{round}.txt"), "a again");
    }
    std::thread::sleep(Duration::from_secs(2));
    all_finished(&env);
    // A path is in as many firings as it had versions at most (`a` two, `b` one), never in
    // two firings for one version.
    let paths = changed_paths(&env);
    for round in 0..3 {
        let count = |name: &str| {
            paths
                .iter()
                .filter(|p| **p == format!("src/{name}{round}.txt"))
                .count()
        };
        assert!((1..=2).contains(&count("a")), "{paths:?}");
        assert_eq!(count("b"), 1, "{paths:?}");
    }
    let fired = file_firings(&env).len();
    assert_eq!(env.runs().len(), fired, "one run per firing");
}

/// The payloads of every file trigger's firings, oldest first.
fn file_firings(env: &Env) -> Vec<Value> {
    let mut signals = env
        .database
        .with(|store| store.signals(usize::MAX).expect("read the signals"))
        .unwrap_or_default();
    signals.reverse();
    signals
        .into_iter()
        .filter(|signal| signal.name.starts_with("files:"))
        .map(|signal| signal.payload)
        .collect()
}

/// The paths of every file firing's changes, in order, a path once per change.
fn changed_paths(env: &Env) -> Vec<String> {
    let mut paths: Vec<String> = file_firings(env)
        .iter()
        .flat_map(|payload| {
            payload["changes"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|change| change["path"].as_str().unwrap_or_default().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    paths.sort();
    paths
}

#[test]
fn a_firing_recorded_by_a_watcher_killed_before_its_run_started_is_started_by_the_next() {
    let env = Env::new();
    let wf = env.write("workflows/on-change.yaml", ON_CHANGE);
    // What a watcher killed between recording a firing and starting its run leaves.
    env.stepwise(&["runs"]);
    let name = format!("files:{}", wf.display());
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis();
    env.database
        .open_to_write()
        .record_signal(&stepwise_store::NewSignal {
            name,
            payload: serde_json::json!({"summary": "create src/lost.txt", "changes": []}),
            idempotency_key: "k".into(),
            correlation_id: None,
            source: "watch (killed)".into(),
            created_at_ms: i64::try_from(now_ms).expect("a time"),
        })
        .expect("a recorded firing");
    let (_watch, lines) = watcher(&env);
    let (_, event) = started(&lines, Duration::from_secs(5)).expect("the firing's run");
    assert_eq!(event["cause"]["summary"], "create src/lost.txt");
    // A second watcher does not start it again.
    let (_second, second_lines) = watcher(&env);
    assert!(started(&second_lines, Duration::from_secs(2)).is_none());
    all_finished(&env);
    assert_eq!(env.runs().len(), 1);
}

#[test]
fn with_include_own_a_runs_edit_starts_a_run_once_and_the_same_content_again_nothing() {
    let env = Env::new();
    env.allow_everything();
    env.write("workflows/generate.yaml", &generate("generated", true));
    let (_watch, lines) = watcher(&env);
    env.write("src/input.txt", "input");
    let (_, first) = started(&lines, Duration::from_secs(3)).expect("a run");
    assert_eq!(first["cause"]["summary"], "create src/input.txt");
    let (_, second) = started(&lines, Duration::from_secs(5)).expect("a run for its own edit");
    assert_eq!(second["cause"]["summary"], "create src/generated.txt");
    // The second run writes what is there already: no change, no third run.
    assert!(started(&lines, Duration::from_secs(2)).is_none());
    all_finished(&env);
    assert_eq!(env.runs().len(), 2);
}

#[test]
fn a_runs_own_edit_starts_nothing_and_a_persons_edit_of_that_file_does() {
    let env = Env::new();
    env.allow_everything();
    env.write(
        "workflows/generate.yaml",
        &generate("generated from the sources", false),
    );
    let (_watch, lines) = watcher(&env);
    env.write("src/input.txt", "input");
    let (_, event) = started(&lines, Duration::from_secs(3)).expect("a run");
    assert_eq!(event["cause"]["summary"], "create src/input.txt");
    all_finished(&env);
    assert_eq!(
        env.read("src/generated.txt").as_deref(),
        Some("generated from the sources\n")
    );
    assert!(
        started(&lines, Duration::from_secs(2)).is_none(),
        "the run's own edit started another run"
    );
    // A person changing the file the run wrote is a change like any other.
    env.write("src/generated.txt", "edited by hand\n");
    let (_, event) = started(&lines, Duration::from_secs(3)).expect("a run for the edit");
    assert_eq!(event["cause"]["summary"], "modify src/generated.txt");
    all_finished(&env);
    assert!(started(&lines, Duration::from_secs(2)).is_none());
    assert_eq!(env.runs().len(), 2);
}

const MINUTE_MS: i64 = 60_000;

#[test]
fn a_schedule_starts_one_run_per_slot_and_one_catch_up_after_a_gap() {
    let mut env = Env::new();
    for (name, catch_up) in [("tick", "latest"), ("tick-no-catch-up", "none")] {
        env.write(
            &format!("workflows/{name}.yaml"),
            &format!(
                "name: {name}\non:\n  schedule:\n    cron: \"* * * * *\"\n    catch_up: {catch_up}\nsteps:\n  - id: tick\n    type: set\n    values: {{ok: true}}\n"
            ),
        );
    }
    let clock = env.root().join("clock");
    let set_clock = |ms: i64| std::fs::write(&clock, ms.to_string()).expect("set the clock");
    // 10 s into a minute, in 2030.
    let start = 1_900_000_000_000 - 1_900_000_000_000 % MINUTE_MS + 10_000;
    set_clock(start);
    env.vars
        .push(("STEPWISE_WATCH_CLOCK".into(), clock.display().to_string()));
    env.vars.push(("TZ".into(), "UTC".into()));

    let (first, first_lines) = watcher(&env);
    let (second, second_lines) = watcher(&env);
    // A new schedule has missed nothing.
    assert!(started(&first_lines, Duration::from_secs(1)).is_none());
    set_clock(start + MINUTE_MS);
    let mut seen = Vec::new();
    while let Some((_, event)) = started(&first_lines, Duration::from_secs(3))
        .or_else(|| started(&second_lines, Duration::from_secs(1)))
    {
        seen.push(event);
    }
    assert_eq!(seen.len(), 2, "one run per slot and workflow: {seen:?}");
    for event in &seen {
        assert_eq!(event["cause"]["kind"], "schedule");
        assert_eq!(event["cause"]["summary"], "schedule 17:47");
    }
    // The same slot, later in it: nothing more.
    set_clock(start + MINUTE_MS + 20_000);
    assert!(started(&first_lines, Duration::from_secs(1)).is_none());
    assert!(started(&second_lines, Duration::from_secs(1)).is_none());
    drop((first, second));
    all_finished(&env);
    assert_eq!(env.runs().len(), 2);

    // Ten slots pass with no watcher: the next one to start catches up once, for the
    // workflow that wants it only.
    set_clock(start + 11 * MINUTE_MS);
    let (_third, third_lines) = watcher(&env);
    let (_, event) = started(&third_lines, Duration::from_secs(3)).expect("a catch-up run");
    assert_eq!(event["workflow"], "tick");
    assert_eq!(event["cause"]["summary"], "schedule 17:57 (catch-up)");
    assert!(started(&third_lines, Duration::from_secs(2)).is_none());
    // The next slot, on time: both.
    set_clock(start + 12 * MINUTE_MS);
    let both = [
        started(&third_lines, Duration::from_secs(3)),
        started(&third_lines, Duration::from_secs(3)),
    ];
    assert!(
        both.iter().all(|e| e
            .as_ref()
            .is_some_and(|(_, e)| e["cause"]["summary"] == "schedule 17:58")),
        "{both:?}"
    );
    all_finished(&env);
    assert_eq!(env.runs().len(), 5);
}

#[test]
fn a_signal_starts_a_run_with_its_data_once_per_key() {
    let env = Env::new();
    env.write(
        "workflows/on-deploy.yaml",
        r#"name: on-deploy
on:
  signal: deploy/done
inputs:
  trigger: {type: object, default: {}}
steps:
  - id: version
    type: set
    values:
      version: ${inputs.trigger.data.version}
"#,
    );
    let (_watch, lines) = watcher(&env);
    for _ in 0..2 {
        let sent = env.stepwise(&[
            "signal",
            "deploy/done",
            "--data",
            r#"{"version": "2.0"}"#,
            "--key",
            "release-2.0",
        ]);
        assert_eq!(sent.code, 0, "{sent}");
    }
    let (_, event) = started(&lines, Duration::from_secs(3)).expect("a run");
    assert_eq!(event["cause"]["summary"], "signal deploy/done");
    assert!(
        started(&lines, Duration::from_secs(2)).is_none(),
        "one run per key"
    );
    all_finished(&env);
    let run = event["run_id"].as_str().expect("a run id");
    assert_eq!(step(&env.show(run), "version")["output"]["version"], "2.0");
}

#[test]
fn watching_a_workspace_that_is_not_there_says_so() {
    let env = Env::new();
    let missing = env.root().join("no-such-workspace");
    let out = env.stepwise(&["watch", "--workspace", missing.to_str().expect("utf-8")]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("cannot watch workspace"), "{out}");
    assert!(out.stderr.contains("no-such-workspace"), "{out}");
}

#[test]
fn a_workflow_with_triggers_is_checked_like_any_other() {
    let env = Env::new();
    let wf = env.workflow(
        "bad.yaml",
        r#"name: bad
on:
  files:
    paths: ["../outside/**", "src/["]
    debounce: forever
  schedule:
    cron: "every day"
  signal: "no spaces allowed"
inputs:
  name: {type: string}
steps:
  - id: a
    type: set
    values: {x: 1}
"#,
    );
    let out = env.stepwise(&["validate", wf.to_str().expect("utf-8")]);
    assert_ne!(out.code, 0);
    for expected in [
        "`../outside/**` must be relative to the workspace",
        "`src/[` is not a path pattern",
        "`on.files.debounce` is `forever`",
        "`every day` is not a five-field cron schedule",
        "`on.signal`",
        "input `name` has no default",
    ] {
        assert!(
            out.stderr.contains(expected) || out.stdout.contains(expected),
            "{expected}: {out}"
        );
    }
}
