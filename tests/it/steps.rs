//! Each step type and the templates between steps, run through the real `stepwise` binary
//! against real files and processes.

use serde_json::{Value, json};

use crate::support::{Env, of_step, of_type, step};

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
    assert!(
        read["output"]["hash"]
            .as_str()
            .is_some_and(|h| h.starts_with("sha256:")),
        "{read}"
    );
    assert_eq!(
        step(&show, "shout")["output"],
        json!({"text": "HELLO FROM A FILE", "path": "notes/in.txt"})
    );
    assert_eq!(
        env.read("notes/copy.txt").as_deref(),
        Some("copied: hello from a file\n")
    );
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
    assert_eq!(
        env.read("deep/er/new.txt").as_deref(),
        Some("line one\nline two\n")
    );
    let show = env.show(&out.run_id());
    let output = &step(&show, "write")["output"];
    assert_eq!(output["path"], "deep/er/new.txt");
    assert_eq!(output["changed"], true);
    assert_eq!(
        output["before_hash"],
        Value::Null,
        "the file did not exist before"
    );
    assert!(
        output["diff"]
            .as_str()
            .is_some_and(|d| d.contains("+line two")),
        "{output}"
    );
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
    assert_eq!(
        env.read("src/greet.txt").as_deref(),
        Some("hello there\nbye\n")
    );
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
    assert!(
        error.contains("not found") && error.contains("src/greet.txt"),
        "{error}"
    );
    assert_eq!(env.read("src/greet.txt").as_deref(), Some("hello world\n"));
    assert!(
        of_type(&env.events(&out.run_id()), "ApprovalRequested").is_empty(),
        "nothing to approve"
    );
}

#[test]
fn find_text_that_occurs_twice_fails_and_writes_nothing() {
    let env = Env::new();
    env.allow_everything();
    env.write("src/greet.txt", "world, world\n");
    let out = env.run(&find_replace_workflow(&env, "world"), &[]);
    assert_eq!(out.code, 1, "{out}");
    let show = env.show(&out.run_id());
    let error = step(&show, "fix")["error"]
        .as_str()
        .expect("an error message")
        .to_string();
    assert!(
        error.contains("occurs 2 times") && error.contains("src/greet.txt"),
        "{error}"
    );
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
    env.vars
        .push(("STEPWISE_IT_SECRET".into(), "hunter2".into()));
    env.vars
        .push(("STEPWISE_IT_PASSED".into(), "passed-through".into()));
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
    let stdout = step(&show, "env")["output"]["stdout"]
        .as_str()
        .expect("stdout")
        .to_string();
    let vars: Vec<&str> = stdout.lines().collect();
    assert!(vars.contains(&"GREETING=hi there"), "{stdout}");
    assert!(
        vars.contains(&"STEPWISE_IT_PASSED=passed-through"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("STEPWISE_IT_SECRET") && !stdout.contains("hunter2"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("STEPWISE_DB"),
        "the engine's own variables stay out: {stdout}"
    );
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
    assert_eq!(
        step(&show, "sub")["output"]["stdout"],
        format!("{ws}/sub/dir\n")
    );
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
    assert_eq!(
        show["inputs"],
        json!({"n": 5, "flag": true, "name": "world"})
    );
    let output = &step(&show, "compute")["output"];
    assert_eq!(
        output["next"],
        json!(6),
        "a lone expression keeps its number type"
    );
    assert!(output["next"].is_i64());
    assert_eq!(
        output["label"],
        json!("n=5"),
        "text around an expression makes a string"
    );
    assert_eq!(output["flag"], json!(true));
    assert_eq!(output["list"], json!([5, "world"]));
    assert_eq!(output["literal"], json!(3));
}
