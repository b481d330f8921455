//! How steps are driven: `when` conditions, retries, timeouts, parallel fan-out and the
//! `max_parallel` limit, and the typed inputs a run starts with.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Env, is_running, of_step, read_pid, seq, step, wait_until_ended};

fn when_workflow(env: &Env) -> std::path::PathBuf {
    env.workflow(
        "when.yaml",
        r#"
name: when
inputs:
  go: { type: boolean }
steps:
  - id: maybe
    type: set
    when: ${inputs.go}
    values: {x: 1}
  - id: dependent
    type: set
    needs: [maybe]
    values: {b: 2}
  - id: grandchild
    type: set
    needs: [dependent]
    values: {z: 3}
  - id: always
    type: set
    needs: [maybe]
    after: finished
    values:
      saw: ${steps.maybe.status}
"#,
    )
}

#[test]
fn a_false_when_skips_the_step_and_its_dependents_but_not_after_finished_ones() {
    let env = Env::new();
    let wf = when_workflow(&env);
    let out = env.run(&wf, &["--input", "go=false"]);
    assert_eq!(out.code, 0, "skipped steps do not fail a run: {out}");
    let show = env.show(&out.run_id());
    let maybe = step(&show, "maybe");
    assert_eq!(maybe["status"], "skipped");
    assert!(
        maybe["reason"]
            .as_str()
            .is_some_and(|r| r.contains("`when` is false")),
        "{maybe}"
    );
    let dependent = step(&show, "dependent");
    assert_eq!(dependent["status"], "skipped");
    assert!(
        dependent["reason"]
            .as_str()
            .is_some_and(|r| r.contains("maybe")),
        "{dependent}"
    );
    assert_eq!(step(&show, "grandchild")["status"], "skipped");
    let always = step(&show, "always");
    assert_eq!(always["status"], "succeeded");
    assert_eq!(always["output"], json!({"saw": "skipped"}));

    let out = env.run(&wf, &["--input", "go=true"]);
    assert_eq!(out.code, 0, "{out}");
    let show = env.show(&out.run_id());
    for id in ["maybe", "dependent", "grandchild", "always"] {
        assert_eq!(step(&show, id)["status"], "succeeded", "{id}");
    }
    assert_eq!(step(&show, "always")["output"], json!({"saw": "succeeded"}));
}

#[test]
fn a_command_failing_once_succeeds_on_retry_with_two_attempts() {
    let env = Env::new();
    env.allow_everything();
    let wf = env.workflow(
        "retry.yaml",
        r#"
name: retry
steps:
  - id: flaky
    type: run_command
    command: n=$(cat count 2>/dev/null || echo 0); n=$((n + 1)); echo $n > count; [ $n -ge 2 ]
    retry: {max_attempts: 3, backoff: 10ms}
"#,
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 0, "{out}");
    let show = env.show(&out.run_id());
    let flaky = step(&show, "flaky");
    assert_eq!(flaky["status"], "succeeded");
    assert_eq!(flaky["attempts"], 2);
    assert_eq!(
        env.read("count").as_deref(),
        Some("2\n"),
        "run exactly twice"
    );
    let events = env.events(&out.run_id());
    let retries = of_step(&events, "StepRetryScheduled", "flaky");
    assert_eq!(retries.len(), 1);
    assert_eq!(retries[0]["data"]["attempt"], 2);
    assert_eq!(retries[0]["data"]["delay_ms"], 10);
    assert_eq!(retries[0]["data"]["error"], "command exited with code 1");
}

#[test]
fn a_command_that_keeps_failing_fails_after_its_last_attempt() {
    let env = Env::new();
    env.allow_everything();
    let wf = env.workflow(
        "exhaust.yaml",
        r#"
name: exhaust
steps:
  - id: broken
    type: run_command
    command: echo x >> tries; exit 3
    retry: {max_attempts: 3, backoff: 10ms}
"#,
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 1, "{out}");
    let show = env.show(&out.run_id());
    let broken = step(&show, "broken");
    assert_eq!(broken["status"], "failed");
    assert_eq!(broken["attempts"], 3);
    assert_eq!(broken["error"], "command exited with code 3");
    assert_eq!(env.read("tries").as_deref(), Some("x\nx\nx\n"));
    let events = env.events(&out.run_id());
    assert_eq!(of_step(&events, "StepRetryScheduled", "broken").len(), 2);
    let delays: Vec<&Value> = of_step(&events, "StepRetryScheduled", "broken")
        .iter()
        .map(|e| &e["data"]["delay_ms"])
        .collect();
    assert_eq!(delays, [&json!(10), &json!(20)], "the backoff doubles");
}

#[test]
fn a_timeout_fails_the_step_and_kills_the_whole_process_group() {
    let env = Env::new();
    env.allow_everything();
    let wf = env.workflow(
        "timeout.yaml",
        r#"
name: timeout
steps:
  - id: slow
    type: run_command
    command: sleep 30 & echo $! > bg.pid; echo $$ > pid; sleep 30
    timeout: 1s
"#,
    );
    let started = Instant::now();
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let show = env.show(&out.run_id());
    let slow = step(&show, "slow");
    assert_eq!(slow["status"], "failed");
    let error = slow["error"].as_str().expect("an error");
    assert!(error.contains("timed out after 1s"), "{error}");
    assert_eq!(slow["output"]["timed_out"], true);
    for file in ["pid", "bg.pid"] {
        let pid = read_pid(&env.ws.join(file));
        assert!(
            wait_until_ended(pid, Duration::from_secs(5)),
            "{file}: process {pid} still runs"
        );
        assert!(!is_running(pid), "{file}: process {pid} still runs");
    }
}

/// Each of `n` steps drops a marker and waits (bounded) until all `n` markers exist.
fn rendezvous_workflow(env: &Env, n: usize, max_parallel: usize) -> std::path::PathBuf {
    let mut yaml = format!("name: fan-out\nmax_parallel: {max_parallel}\nsteps:\n");
    for i in 0..n {
        yaml.push_str(&format!(
            "  - id: s{i}\n    type: run_command\n    command: touch marker.{i}; i=0; \
             while [ $(ls marker.* | wc -l) -lt {n} ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i + 1)); done; \
             [ $(ls marker.* | wc -l) -ge {n} ]\n"
        ));
    }
    yaml.push_str(&format!(
        "  - id: join\n    type: set\n    needs: [{}]\n    values: {{done: true}}\n",
        (0..n)
            .map(|i| format!("s{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    env.workflow("fan-out.yaml", &yaml)
}

#[test]
fn independent_steps_really_run_at_the_same_time() {
    let env = Env::new();
    env.allow_everything();
    let out = env.run(&rendezvous_workflow(&env, 4, 4), &[]);
    // Each step only succeeds once every other one has started: they ran concurrently.
    assert_eq!(out.code, 0, "{out}");
    let show = env.show(&out.run_id());
    assert_eq!(step(&show, "join")["status"], "succeeded");
}

#[test]
fn max_parallel_one_keeps_at_most_one_operation_in_flight() {
    let env = Env::new();
    env.allow_everything();
    let wf = env.workflow(
        "serial.yaml",
        r#"
name: serial
max_parallel: 1
steps:
  - id: a
    type: run_command
    command: ["true"]
  - id: b
    type: run_command
    command: ["true"]
  - id: c
    type: edit_file
    path: c.txt
    content: c
  - id: d
    type: read_file
    path: .stepwise/policy.yaml
"#,
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 0, "{out}");
    let events = env.events(&out.run_id());
    let mut in_flight = std::collections::BTreeSet::new();
    let mut most = 0;
    let mut started = 0;
    for event in &events {
        match event["type"].as_str() {
            Some("OperationStarted") => {
                in_flight.insert(seq(event));
                started += 1;
            }
            Some("OperationSucceeded" | "OperationFailed") => {
                let op = event["data"]["op"].as_u64().expect("op");
                assert!(
                    in_flight.remove(&op),
                    "answers an operation not in flight: {event}"
                );
            }
            _ => {}
        }
        most = most.max(in_flight.len());
    }
    assert_eq!(
        started, 5,
        "two commands, an edit (snapshot + write) and a read"
    );
    assert_eq!(most, 1);
}

#[test]
fn typed_inputs_are_checked_and_unknown_or_missing_ones_are_refused() {
    let env = Env::new();
    let wf = env.workflow(
        "inputs.yaml",
        r#"
name: inputs
inputs:
  n: { type: integer }
  label: { type: string, default: x }
steps:
  - id: show
    type: set
    values: {value: "${inputs.n}"}
"#,
    );
    let unknown = env.run(&wf, &["--input", "n=1", "--input", "colour=red"]);
    assert_eq!(unknown.code, 2, "{unknown}");
    assert!(
        unknown.stderr.contains("unknown input `colour`"),
        "{unknown}"
    );
    assert!(
        unknown.stderr.contains("label, n"),
        "names the declared inputs: {unknown}"
    );

    let missing = env.run(&wf, &[]);
    assert_eq!(missing.code, 2, "{missing}");
    assert!(
        missing.stderr.contains("input `n` is required"),
        "{missing}"
    );

    let wrong = env.run(&wf, &["--input", "n=five"]);
    assert_eq!(wrong.code, 2, "{wrong}");
    assert!(
        wrong
            .stderr
            .contains("input `n` must be an integer, got `five`"),
        "{wrong}"
    );

    assert_eq!(env.run_count(), 0, "a refused start records no run");

    let ok = env.run(&wf, &["--input", "n=5"]);
    assert_eq!(ok.code, 0, "{ok}");
    assert_eq!(
        env.show(&ok.run_id())["inputs"],
        json!({"n": 5, "label": "x"})
    );
}
