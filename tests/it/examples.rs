//! The example workflows in `workflows/`: every one validates, and each is run end to end the
//! way its README describes, with every approval given through `stepwise approve`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::support::{Env, Out, step};

pub(crate) fn workflows_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../workflows")
}

pub(crate) fn example(name: &str) -> PathBuf {
    let path = workflows_dir().join(name);
    assert!(path.exists(), "{} is missing", path.display());
    path
}

pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy");
    for entry in std::fs::read_dir(from).expect("list the demo") {
        let entry = entry.expect("a directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a demo file");
        }
    }
}

/// Approves whatever the run waits for, one approval at a time, until it stops waiting.
/// Returns the last outcome and the steps approved, in order.
pub(crate) fn approve_until_done(env: &Env, run: &str, first: Out) -> (Out, Vec<String>) {
    let mut out = first;
    let mut approved = Vec::new();
    for _ in 0..10 {
        if out.code != 3 {
            break;
        }
        let pending: Vec<String> = env
            .approvals()
            .iter()
            .filter(|a| a["run_id"] == run)
            .filter_map(|a| a["step"].as_str().map(str::to_string))
            .collect();
        let Some(next) = pending.first() else { break };
        out = env.approve(run, next, &[]);
        approved.push(next.clone());
    }
    (out, approved)
}

#[test]
fn every_example_workflow_validates() {
    let env = Env::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(workflows_dir())
        .expect("workflows/ exists")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 2,
        "expected the example workflows, found {files:?}"
    );
    let mut args = vec!["validate".to_string()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = env.stepwise(&args);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(
        out.stdout.lines().filter(|l| l.starts_with("ok: ")).count(),
        files.len(),
        "{out}"
    );
}

#[test]
fn fix_and_test_adds_factorial_and_its_tests_pass_once_everything_is_approved() {
    let env = Env::new();
    copy_dir(&workflows_dir().join("demo"), &env.ws);
    let out = env.run(&example("fix-and-test.yaml"), &[]);
    assert_eq!(out.code, 3, "the edit waits for approval: {out}");
    let run = out.run_id();
    assert!(
        !env.read("calc.py")
            .expect("calc.py")
            .contains("def factorial"),
        "nothing written yet"
    );

    let (out, approved) = approve_until_done(&env, &run, out);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(approved[0], "add_factorial");
    assert_eq!(
        approved.iter().cloned().collect::<BTreeSet<_>>(),
        ["add_factorial", "count_lines", "test"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    let calc = env.read("calc.py").expect("calc.py");
    assert!(calc.contains("def factorial(n):"), "{calc}");
    assert!(!calc.contains("# TODO: factorial"), "{calc}");

    let show = env.show(&run);
    assert_eq!(show["status"], "succeeded");
    assert_eq!(step(&show, "test")["status"], "succeeded");
    assert_eq!(step(&show, "test")["output"]["exit_code"], 0);
    let summary = &step(&show, "summary")["output"];
    assert_eq!(summary["tested"], true);
    assert_eq!(summary["module"], "calc.py");
    let lines = calc.lines().count();
    assert_eq!(summary["lines"], json!(lines), "{summary}");
}

#[test]
fn fix_and_test_without_tests_skips_them_and_still_summarises() {
    let env = Env::new();
    copy_dir(&workflows_dir().join("demo"), &env.ws);
    let out = env.run(
        &example("fix-and-test.yaml"),
        &["--input", "run_tests=false"],
    );
    assert_eq!(out.code, 3, "{out}");
    let run = out.run_id();
    let (out, approved) = approve_until_done(&env, &run, out);
    assert_eq!(out.code, 0, "{out}");
    assert!(
        !approved.contains(&"test".to_string()),
        "a skipped step asks nothing: {approved:?}"
    );
    let show = env.show(&run);
    assert_eq!(step(&show, "test")["status"], "skipped");
    assert_eq!(step(&show, "summary")["output"]["tested"], false);
}

#[test]
fn release_gate_waits_at_its_gate_then_at_the_edit_then_writes_the_note() {
    let env = Env::new();
    let out = env.run(&example("release-gate.yaml"), &["--input", "version=1.2.0"]);
    assert_eq!(out.code, 3, "{out}");
    let run = out.run_id();
    assert_eq!(out.json()["waiting"][0]["step"], "release_gate");
    assert_eq!(out.json()["waiting"][0]["waits_for"], "approval");
    let pending = env.approvals();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["step"], "release_gate");
    assert_eq!(
        pending[0]["approval"]["proposal"],
        json!({"kind": "gate", "message": "Ship v1.2.0? Approving lets the run write RELEASE.txt."})
    );
    assert!(env.read("RELEASE.txt").is_none());

    let gate = env.approve(&run, "release_gate", &["--comment", "ship it"]);
    assert_eq!(gate.code, 3, "now the edit waits: {gate}");
    assert_eq!(gate.json()["waiting"][0]["step"], "write_release");
    assert!(env.read("RELEASE.txt").is_none());
    let pending = env.approvals();
    let proposal = &pending[0]["approval"]["proposal"];
    assert_eq!(proposal["kind"], "edit_file");
    assert_eq!(proposal["path"], "RELEASE.txt");

    let edit = env.approve(&run, "write_release", &[]);
    assert_eq!(edit.code, 0, "{edit}");
    let note = env.read("RELEASE.txt").expect("RELEASE.txt was written");
    assert!(
        note.starts_with("Release 1.2.0 \"first light\"\n"),
        "{note}"
    );
    assert!(note.contains("Tag: v1.2.0"), "{note}");
    let show = env.show(&run);
    assert_eq!(show["status"], "succeeded");
    assert_eq!(
        step(&show, "release_gate")["output"],
        json!({"approved": true})
    );
}

#[test]
fn rejecting_the_release_gate_fails_the_run_with_the_reason() {
    let env = Env::new();
    let out = env.run(&example("release-gate.yaml"), &[]);
    assert_eq!(out.code, 3, "{out}");
    let run = out.run_id();
    let rejected = env.reject(&run, "release_gate", "not this week");
    assert_eq!(rejected.code, 1, "{rejected}");
    let show = env.show(&run);
    assert_eq!(show["status"], "failed");
    let gate = step(&show, "release_gate");
    assert_eq!(gate["status"], "rejected");
    assert_eq!(gate["reason"], "not this week");
    assert_eq!(step(&show, "write_release")["status"], "skipped");
    assert!(env.read("RELEASE.txt").is_none());
}
