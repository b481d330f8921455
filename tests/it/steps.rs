//! Each step type, templates, conditions, retries, timeouts, parallelism and inputs, run
//! through the real `stepwise` binary against real files and processes.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Env, is_running, of_step, of_type, read_pid, seq, step, wait_until_ended};

#[test]
fn read_file_output_reaches_a_later_step_through_a_template() {
    let env = Env::new();
    env.allow_everything();
    env.write("notes/in.txt", "hello from a file\n");
    let wf = env.workflow(
        "read.yaml",
        r#"
name: read-then-use
steps:
  - id: read
    type: read_file
    path: notes/in.txt
  - id: shout
    type: set
    needs: [read]
    values:
      text: ${steps.read.output.content | trim | upper}
      path: ${steps.read.output.path}
  - id: copy
    type: edit_file
    needs: [read]
    path: notes/copy.txt
    content: "copied: ${steps.read.output.content}"
"#,
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 0, "{out}");
    let show = env.show(&out.run_id());
    assert_eq!(show["status"], "succeeded");
    let read = step(&show, "read");
    assert_eq!(read["output"]["content"], "hello from a file\n");
    assert!(read["output"]["hash"].as_str().is_some_and(|h| h.starts_with("sha256:")), "{read}");
    assert_eq!(step(&show, "shout")["output"], json!({"text": "HELLO FROM A FILE", "path": "notes/in.txt"}));
    assert_eq!(env.read("notes/copy.txt").as_deref(), Some("copied: hello from a file\n"));
}

#[test]
fn edit_file_with_whole_content_creates_the_file_and_its_parent_directories() {
    let env = Env::new();
    env.allow_everything();
    let wf = env.workflow(
        "create.yaml",
        r#"
name: create
steps:
  - id: write
    type: edit_file
    path: deep/er/new.txt
    content: |
      line one
      line two
"#,
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(env.read("deep/er/new.txt").as_deref(), Some("line one\nline two\n"));
    let show = env.show(&out.run_id());
    let output = &step(&show, "write")["output"];
    assert_eq!(output["path"], "deep/er/new.txt");
    assert_eq!(output["changed"], true);
    assert_eq!(output["before_hash"], Value::Null, "the file did not exist before");
    assert!(output["diff"].as_str().is_some_and(|d| d.contains("+line two")), "{output}");
}

fn find_replace_workflow(env: &Env, find: &str) -> std::path::PathBuf {
    env.workflow(
        "replace.yaml",
        &format!(
            r#"
name: replace
steps:
  - id: fix
    type: edit_file
    path: src/greet.txt
    find: "{find}"
    replace: "there"
"#
        ),
    )
}

#[test]
fn find_and_replace_changes_the_one_occurrence() {
    let env = Env::new();
    env.allow_everything();
    env.write("src/greet.txt", "hello world\nbye\n");
    let out = env.run(&find_replace_workflow(&env, "world"), &[]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(env.read("src/greet.txt").as_deref(), Some("hello there\nbye\n"));
}

#[test]
fn find_text_that_is_absent_fails_naming_the_file_and_writes_nothing() {
    let env = Env::new();
    env.allow_everything();
    env.write("src/greet.txt", "hello world\n");
    let out = env.run(&find_replace_workflow(&env, "planet"), &[]);
    assert_eq!(out.code, 1, "{out}");
    let show = env.show(&out.run_id());
    let fix = step(&show, "fix");
    assert_eq!(fix["status"], "failed");
    let error = fix["error"].as_str().expect("an error message");
    assert!(error.contains("not found") && error.contains("src/greet.txt"), "{error}");
    assert_eq!(env.read("src/greet.txt").as_deref(), Some("hello world\n"));
    assert!(of_type(&env.events(&out.run_id()), "ApprovalRequested").is_empty(), "nothing to approve");
}

#[test]
fn find_text_that_occurs_twice_fails_and_writes_nothing() {
    let env = Env::new();
    env.allow_everything();
    env.write("src/greet.txt", "world, world\n");
    let out = env.run(&find_replace_workflow(&env, "world"), &[]);
    assert_eq!(out.code, 1, "{out}");
    let show = env.show(&out.run_id());
    let error = step(&show, "fix")["error"].as_str().expect("an error message").to_string();
    assert!(error.contains("occurs 2 times") && error.contains("src/greet.txt"), "{error}");
    assert_eq!(env.read("src/greet.txt").as_deref(), Some("world, world\n"));
}

#[test]
fn commands_run_as_argv_without_a_shell_and_as_shell_lines_through_sh() {
    let env = Env::new();
    env.allow_everything();
    let wf = env.workflow(
        "commands.yaml",
        r#"
name: commands
steps:
  - id: argv
    type: run_command
    command: ["printf", "%s|%s", "a b; echo injected", "$HOME"]
  - id: shell
    type: run_command
    command: echo $((2 + 3)) | tr 5 F; echo to-stderr >&2
"#,
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 0, "{out}");
    let show = env.show(&out.run_id());
    let argv = &step(&show, "argv")["output"];
    // Each argv item is one argument: no word splitting, no `;`, no variable expansion.
    assert_eq!(argv["stdout"], "a b; echo injected|$HOME");
    assert_eq!(argv["exit_code"], 0);
    let shell = &step(&show, "shell")["output"];
    assert_eq!(shell["stdout"], "F\n");
    assert_eq!(shell["stderr"], "to-stderr\n");
}

#[test]
fn a_command_exiting_non_zero_fails_the_run_with_its_code_shown() {
    let env = Env::new();
    env.allow_everything();
    let wf = env.workflow(
        "fail.yaml",
        r#"
name: fail
steps:
  - id: boom
    type: run_command
    command: echo partial; exit 7
  - id: after
    type: set
    needs: [boom]
    values: {x: 1}
"#,
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 1, "{out}");
    let summary = out.json();
    assert_eq!(summary["status"], "failed");
    assert_eq!(summary["errors"][0]["step"], "boom");
    let show = env.show(&out.run_id());
    assert_eq!(show["status"], "failed");
    let boom = step(&show, "boom");
    assert_eq!(boom["status"], "failed");
    assert_eq!(boom["error"], "command exited with code 7");
    assert_eq!(boom["output"]["exit_code"], 7);
    assert_eq!(boom["output"]["stdout"], "partial\n");
    assert_eq!(step(&show, "after")["status"], "skipped");
}

#[test]
fn commands_get_a_scrubbed_environment_with_only_named_variables_added() {
    let mut env = Env::new();
    env.allow_everything();
    env.vars.push(("STEPWISE_IT_SECRET".into(), "hunter2".into()));
    env.vars.push(("STEPWISE_IT_PASSED".into(), "passed-through".into()));
    let wf = env.workflow(
        "env.yaml",
        r#"
name: env
inputs:
  greeting: { type: string, default: hi }
steps:
  - id: env
    type: run_command
    command: ["env"]
    env:
      GREETING: ${inputs.greeting} there
    pass_env: [STEPWISE_IT_PASSED]
"#,
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 0, "{out}");
    let show = env.show(&out.run_id());
    let stdout = step(&show, "env")["output"]["stdout"].as_str().expect("stdout").to_string();
    let vars: Vec<&str> = stdout.lines().collect();
    assert!(vars.contains(&"GREETING=hi there"), "{stdout}");
    assert!(vars.contains(&"STEPWISE_IT_PASSED=passed-through"), "{stdout}");
    assert!(!stdout.contains("STEPWISE_IT_SECRET") && !stdout.contains("hunter2"), "{stdout}");
    assert!(!stdout.contains("STEPWISE_DB"), "the engine's own variables stay out: {stdout}");
    // The request records the name of a passed variable, never its value.
    let events = env.events(&out.run_id());
    let started = of_step(&events, "OperationStarted", "env");
    assert_eq!(started.len(), 1);
    let request = &started[0]["data"]["request"];
    assert_eq!(request["pass_env"], json!(["STEPWISE_IT_PASSED"]));
    assert_eq!(request["env"], json!({"GREETING": "hi there"}));
    assert!(!request.to_string().contains("passed-through"), "{request}");
}

#[test]
fn a_command_runs_in_its_cwd_inside_the_workspace() {
    let env = Env::new();
    env.allow_everything();
    std::fs::create_dir_all(env.ws.join("sub/dir")).expect("mkdir");
    let wf = env.workflow(
        "cwd.yaml",
        r#"
name: cwd
steps:
  - id: root
    type: run_command
    command: ["pwd"]
  - id: sub
    type: run_command
    cwd: sub/dir
    command: ["pwd"]
"#,
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 0, "{out}");
    let show = env.show(&out.run_id());
    let ws = env.ws.to_str().expect("utf-8");
    assert_eq!(step(&show, "root")["output"]["stdout"], format!("{ws}\n"));
    assert_eq!(step(&show, "sub")["output"]["stdout"], format!("{ws}/sub/dir\n"));
}

#[test]
fn output_beyond_max_output_is_cut_and_marked_truncated() {
    let env = Env::new();
    env.allow_everything();
    let wf = env.workflow(
        "cap.yaml",
        r#"
name: cap
steps:
  - id: loud
    type: run_command
    command: head -c 100000 /dev/zero | tr '\0' a
    max_output: 100
  - id: quiet
    type: run_command
    command: ["echo", "short"]
    max_output: 100
"#,
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 0, "{out}");
    let show = env.show(&out.run_id());
    let loud = &step(&show, "loud")["output"];
    assert_eq!(loud["stdout"], "a".repeat(100));
    assert_eq!(loud["stdout_truncated"], true);
    let quiet = &step(&show, "quiet")["output"];
    assert_eq!(quiet["stdout"], "short\n");
    assert_eq!(quiet["stdout_truncated"], false);
}

#[test]
fn set_values_keep_their_types_and_inputs_are_typed() {
    let env = Env::new();
    let wf = env.workflow(
        "set.yaml",
        r#"
name: set
inputs:
  n: { type: integer }
  flag: { type: boolean, default: false }
  name: { type: string, default: world }
steps:
  - id: compute
    type: set
    values:
      next: ${inputs.n + 1}
      label: "n=${inputs.n}"
      flag: ${inputs.flag}
      list: ["${inputs.n}", "${inputs.name}"]
      literal: 3
"#,
    );
    let out = env.run(&wf, &["--input", "n=5", "--input", "flag=true"]);
    assert_eq!(out.code, 0, "{out}");
    let show = env.show(&out.run_id());
    assert_eq!(show["inputs"], json!({"n": 5, "flag": true, "name": "world"}));
    let output = &step(&show, "compute")["output"];
    assert_eq!(output["next"], json!(6), "a lone expression keeps its number type");
    assert!(output["next"].is_i64());
    assert_eq!(output["label"], json!("n=5"), "text around an expression makes a string");
    assert_eq!(output["flag"], json!(true));
    assert_eq!(output["list"], json!([5, "world"]));
    assert_eq!(output["literal"], json!(3));
}

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
    assert!(maybe["reason"].as_str().is_some_and(|r| r.contains("`when` is false")), "{maybe}");
    let dependent = step(&show, "dependent");
    assert_eq!(dependent["status"], "skipped");
    assert!(dependent["reason"].as_str().is_some_and(|r| r.contains("maybe")), "{dependent}");
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
    assert_eq!(env.read("count").as_deref(), Some("2\n"), "run exactly twice");
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
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    let show = env.show(&out.run_id());
    let slow = step(&show, "slow");
    assert_eq!(slow["status"], "failed");
    let error = slow["error"].as_str().expect("an error");
    assert!(error.contains("timed out after 1s"), "{error}");
    assert_eq!(slow["output"]["timed_out"], true);
    for file in ["pid", "bg.pid"] {
        let pid = read_pid(&env.ws.join(file));
        assert!(wait_until_ended(pid, Duration::from_secs(5)), "{file}: process {pid} still runs");
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
        (0..n).map(|i| format!("s{i}")).collect::<Vec<_>>().join(", ")
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
                assert!(in_flight.remove(&op), "answers an operation not in flight: {event}");
            }
            _ => {}
        }
        most = most.max(in_flight.len());
    }
    assert_eq!(started, 5, "two commands, an edit (snapshot + write) and a read");
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
    assert!(unknown.stderr.contains("unknown input `colour`"), "{unknown}");
    assert!(unknown.stderr.contains("label, n"), "names the declared inputs: {unknown}");

    let missing = env.run(&wf, &[]);
    assert_eq!(missing.code, 2, "{missing}");
    assert!(missing.stderr.contains("input `n` is required"), "{missing}");

    let wrong = env.run(&wf, &["--input", "n=five"]);
    assert_eq!(wrong.code, 2, "{wrong}");
    assert!(wrong.stderr.contains("input `n` must be an integer, got `five`"), "{wrong}");

    assert_eq!(env.run_count(), 0, "a refused start records no run");

    let ok = env.run(&wf, &["--input", "n=5"]);
    assert_eq!(ok.code, 0, "{ok}");
    assert_eq!(env.show(&ok.run_id())["inputs"], json!({"n": 5, "label": "x"}));
}
