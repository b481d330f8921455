//! `stepwise validate FILE`: every problem reported as `FILE:LINE:COL: step `id`: message`,
//! exit code 2, and the line and column pointing at what is wrong.

use std::path::PathBuf;

use serde_json::json;

use crate::support::{Env, Out};

/// Validates one workflow written into a fresh temp dir; returns the file and the outcome.
fn validate(yaml: &str) -> (Env, PathBuf, Out) {
    let env = Env::new();
    let path = env.workflow("wf.yaml", yaml);
    let out = env.stepwise(&["validate", path.to_str().expect("utf-8")]);
    (env, path, out)
}

/// The lines validate printed.
fn lines(out: &Out) -> Vec<&str> {
    out.stdout.lines().collect()
}

#[test]
fn bad_yaml_syntax_is_reported_where_the_parser_stops() {
    let (_env, path, out) = validate(
        "name: t
steps:
  - id: a
    type: set
    values: {x: 1}}
  - id: b
    type: set
    values: {x: 2}
",
    );
    assert_eq!(out.code, 2, "{out}");
    let lines = lines(&out);
    assert_eq!(lines.len(), 1, "{out}");
    let prefix = format!("{}:5:19: ", path.display());
    assert!(lines[0].starts_with(&prefix), "{out}");
    let message = &lines[0][prefix.len()..];
    assert!(
        !message.is_empty() && !message.contains(" at line "),
        "the place is said once: {message}"
    );
}

#[test]
fn an_unknown_step_type_points_at_its_type() {
    let (_env, path, out) = validate(
        "name: t
steps:
  - id: a
    type: set
    values: {x: 1}
  - id: b
    type: launch_rocket
    needs: [a]
    timeout: 5s
",
    );
    assert_eq!(out.code, 2, "{out}");
    let lines = lines(&out);
    assert_eq!(lines.len(), 1, "{out}");
    let prefix = format!("{}:7:5: step `b`: ", path.display());
    assert!(lines[0].starts_with(&prefix), "{out}");
    assert!(lines[0].contains("`launch_rocket`"), "{out}");
    assert!(
        lines[0].contains("read_file, edit_file, run_command, set, approval"),
        "lists the types: {out}"
    );
}

#[test]
fn an_unknown_field_typo_points_at_the_typo() {
    let (_env, path, out) = validate(
        r#"name: t
steps:
  - id: a
    type: set
    values: {x: 1}
  - id: b
    type: run_command
    comand: ["echo", "hi"]
    timeout: 5s
    cwd: .
"#,
    );
    assert_eq!(out.code, 2, "{out}");
    let lines = lines(&out);
    assert_eq!(lines.len(), 1, "{out}");
    let prefix = format!("{}:8:5: step `b`: ", path.display());
    assert!(lines[0].starts_with(&prefix), "{out}");
    assert!(lines[0].contains("unknown field `comand`"), "{out}");
    assert!(
        lines[0].contains("command"),
        "suggests the fields it takes: {out}"
    );
    assert!(
        !lines[0].contains(" at line "),
        "the place is said once: {out}"
    );
}

#[test]
fn an_error_on_the_last_line_of_a_step_names_that_step_not_the_next() {
    let (_env, path, out) = validate(
        r#"name: t
steps:
  - id: a
    type: set
    values: {x: 1}
  - id: b
    type: run_command
    command: ["true"]
    comand: ["true"]
  - id: c
    type: set
    values: {x: 2}
"#,
    );
    assert_eq!(out.code, 2, "{out}");
    let lines = lines(&out);
    assert_eq!(lines.len(), 1, "{out}");
    assert!(
        lines[0].starts_with(&format!(
            "{}:9:5: step `b`: unknown field `comand`",
            path.display()
        )),
        "{out}"
    );
}

#[test]
fn a_missing_field_names_the_step_and_the_field() {
    let (_env, path, out) = validate(
        "name: t
steps:
  - id: a
    type: set
    values: {x: 1}
  - id: b
    type: read_file
    needs: [a]
    timeout: 5s
",
    );
    assert_eq!(out.code, 2, "{out}");
    let lines = lines(&out);
    assert_eq!(lines.len(), 1, "{out}");
    let prefix = format!("{}:6:5: step `b`: ", path.display());
    assert!(
        lines[0].starts_with(&prefix),
        "points at the step that lacks it: {out}"
    );
    assert!(lines[0].contains("missing field `path`"), "{out}");
}

#[test]
fn a_duplicate_step_id_points_at_the_second_one() {
    let (_env, path, out) = validate(
        "name: t
steps:
  - id: a
    type: set
    values: {x: 1}
  - id: a
    type: set
    values: {x: 2}
",
    );
    assert_eq!(out.code, 2, "{out}");
    assert_eq!(
        lines(&out),
        [format!(
            "{}:6:9: step `a`: duplicate step id `a` (first used on line 3)",
            path.display()
        )]
    );
}

#[test]
fn an_unknown_need_points_at_the_name_in_the_list() {
    let (_env, path, out) = validate(
        "name: t
steps:
  - id: a
    type: set
    values: {x: 1}
  - id: b
    type: set
    needs: [a, nope]
    values: {x: 2}
",
    );
    assert_eq!(out.code, 2, "{out}");
    assert_eq!(
        lines(&out),
        [format!(
            "{}:8:16: step `b`: `needs` names unknown step `nope`",
            path.display()
        )]
    );
}

#[test]
fn cyclic_needs_are_reported_with_the_cycle() {
    let (_env, path, out) = validate(
        "name: t
steps:
  - id: a
    type: set
    needs: [c]
    values: {x: 1}
  - id: b
    type: set
    needs: [a]
    values: {x: 2}
  - id: c
    type: set
    needs: [b]
    values: {x: 3}
  - id: free
    type: set
    values: {x: 4}
",
    );
    assert_eq!(out.code, 2, "{out}");
    assert_eq!(
        lines(&out),
        [format!(
            "{}:3:9: step `a`: `needs` form a cycle: a → c → b → a",
            path.display()
        )]
    );
}

#[test]
fn a_template_reading_a_step_that_is_not_upstream_is_refused() {
    let (_env, path, out) = validate(
        "name: t
steps:
  - id: a
    type: set
    values: {x: 1}
  - id: b
    type: set
    values: {x: 2}
  - id: c
    type: read_file
    needs: [a]
    path: ${steps.b.output.x}
",
    );
    assert_eq!(out.code, 2, "{out}");
    assert_eq!(
        lines(&out),
        [format!(
            "{}:12:5: step `c`: `path` reads `steps.b`, which is not upstream of `c`; add it (or a step after it) to `needs`",
            path.display()
        )]
    );
}

#[test]
fn a_template_reading_an_unknown_input_or_step_is_refused() {
    let (_env, path, out) = validate(
        "name: t
inputs:
  module: { type: string, default: a.py }
steps:
  - id: a
    type: read_file
    path: ${inputs.modul}
  - id: b
    type: set
    needs: [a]
    values:
      x: ${steps.ghost.output}
",
    );
    assert_eq!(out.code, 2, "{out}");
    let file = path.display();
    assert_eq!(
        lines(&out),
        [
            format!("{file}:7:5: step `a`: `path` reads unknown input `inputs.modul`"),
            format!("{file}:12:7: step `b`: `x` reads unknown step `steps.ghost`"),
        ]
    );
}

#[test]
fn an_invalid_expression_is_reported_on_its_field() {
    let (_env, path, out) = validate(
        "name: t
steps:
  - id: a
    type: set
    values: {x: 1}
  - id: b
    type: set
    needs: [a]
    when: ${steps.a.output.x ==}
    values: {x: 2}
",
    );
    assert_eq!(out.code, 2, "{out}");
    let lines = lines(&out);
    assert_eq!(lines.len(), 1, "{out}");
    let prefix = format!(
        "{}:9:5: step `b`: `when`: invalid expression `steps.a.output.x ==`",
        path.display()
    );
    assert!(lines[0].starts_with(&prefix), "{out}");
}

#[test]
fn a_workflow_policy_cannot_allow() {
    let (_env, path, out) = validate(
        "name: t
policy:
  rules:
    - allow: run_command
steps:
  - id: a
    type: set
    values: {x: 1}
",
    );
    assert_eq!(out.code, 2, "{out}");
    assert_eq!(
        lines(&out),
        [format!(
            "{}:2:1: workflow policy, rule 1: a workflow can only tighten policy; `allow` rules belong in .stepwise/policy.yaml",
            path.display()
        )]
    );
}

#[test]
fn a_step_cannot_opt_out_of_approval() {
    let (_env, path, out) = validate(
        r#"name: t
steps:
  - id: a
    type: run_command
    approval: never
    command: ["true"]
"#,
    );
    assert_eq!(out.code, 2, "{out}");
    assert_eq!(
        lines(&out),
        [format!(
            "{}:5:5: step `a`: approval `never` would loosen policy; a workflow can only tighten it: use `required`, or add an allow rule to .stepwise/policy.yaml",
            path.display()
        )]
    );
}

#[test]
fn several_errors_in_one_file_are_all_reported_in_file_order() {
    let (_env, path, out) = validate(
        r#"name: t
steps:
  - id: a
    type: set
    values: {x: 1}
  - id: b
    type: set
    needs: [zz]
    values: {x: 2}
  - id: c
    type: read_file
    path: ../x
  - id: d
    type: run_command
    timeout: forever
    command: ["true"]
  - id: e
    type: set
    when: ${inputs.missing}
    values: {x: 3}
"#,
    );
    assert_eq!(out.code, 2, "{out}");
    let file = path.display();
    let lines = lines(&out);
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(
        lines[0],
        format!("{file}:8:13: step `b`: `needs` names unknown step `zz`")
    );
    assert_eq!(
        lines[1],
        format!(
            "{file}:12:5: step `c`: `path`: path `../x` uses `..` and could leave the workspace"
        )
    );
    assert!(
        lines[2].starts_with(&format!(
            "{file}:15:5: step `d`: `timeout`: `forever` is not a duration"
        )),
        "{out}"
    );
    assert_eq!(
        lines[3],
        format!("{file}:19:5: step `e`: `when` reads unknown input `inputs.missing`")
    );
}

#[test]
fn a_valid_workflow_passes_with_exit_zero() {
    let (_env, path, out) = validate(
        r#"name: fine
inputs:
  n: { type: integer, default: 2 }
steps:
  - id: a
    type: set
    values: {x: "${inputs.n * 2}"}
  - id: b
    type: run_command
    needs: [a]
    when: ${steps.a.output.x > 3}
    command: ["echo", "${steps.a.output.x}"]
    retry: {max_attempts: 2, backoff: 10ms}
    timeout: 5s
"#,
    );
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(
        out.stdout.trim(),
        format!("ok: {} (fine, 2 steps)", path.display())
    );
}

#[test]
fn validate_json_lists_each_error_with_its_place() {
    let env = Env::new();
    let good = env.workflow(
        "good.yaml",
        "name: g\nsteps:\n  - id: a\n    type: set\n    values: {x: 1}\n",
    );
    let bad = env.workflow(
        "bad.yaml",
        "name: b\nsteps:\n  - id: a\n    type: set\n    needs: [a]\n    values: {x: 1}\n",
    );
    let out = env.stepwise(&[
        "validate",
        good.to_str().expect("utf-8"),
        bad.to_str().expect("utf-8"),
        "--json",
    ]);
    assert_eq!(out.code, 2, "one bad file fails the whole check: {out}");
    let bad_name = bad.display().to_string();
    assert_eq!(
        out.json(),
        json!([
            {"file": good.display().to_string(), "ok": true, "steps": 1},
            {"file": bad_name, "ok": false, "errors": [
                {"file": bad_name, "line": 5, "column": 13, "step": "a", "message": "a step cannot need itself"}
            ]}
        ])
    );
}

#[test]
fn run_refuses_an_invalid_workflow_before_recording_anything() {
    let env = Env::new();
    let wf = env.workflow(
        "bad.yaml",
        "name: b\nsteps:\n  - id: a\n    type: set\n    needs: [nope]\n    values: {x: 1}\n",
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr.contains("`needs` names unknown step `nope`"),
        "{out}"
    );
    assert_eq!(env.run_count(), 0);
}
