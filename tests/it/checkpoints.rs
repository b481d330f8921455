//! Workspace checkpoints: what a command, an edit and nothing else changed in the workspace's
//! files is part of the recorded result, exactly, with ignored folders left out; `show` lists
//! it with diffs; the contents before and after are kept as blobs; replay still matches.

use serde_json::Value;

use crate::support::{Env, step};

/// The `file_changes` of a step in `show --json`, as `(kind, path, from)`.
fn changes(show: &Value, id: &str) -> Vec<(String, String, Option<String>)> {
    step(show, id)["file_changes"]
        .as_array()
        .unwrap_or_else(|| panic!("no file_changes for {id}: {show}"))
        .iter()
        .map(|c| {
            (
                c["kind"].as_str().unwrap_or_default().to_string(),
                c["path"].as_str().unwrap_or_default().to_string(),
                c["from"].as_str().map(str::to_string),
            )
        })
        .collect()
}

fn change(kind: &str, path: &str, from: Option<&str>) -> (String, String, Option<String>) {
    (kind.into(), path.into(), from.map(str::to_string))
}

#[test]
fn a_command_s_recorded_changes_are_exactly_what_it_did_to_the_files_it_may_be_judged_by() {
    let env = Env::new();
    env.workspace_policy(
        "  - allow: edit_file\n  - allow: run_command\n    unchecked_shell: true\ncheckpoint:\n  ignore: [\"cache/\", \"**/*.tmp\"]\n",
    );
    env.write(".gitignore", "target/\n");
    env.write("src/lib.rs", "fn old() {}\n");
    env.write("notes.txt", "keep me\n");
    env.write("tmp.log", "scratch\n");
    env.write("old_name.txt", "moving\n");
    env.write("target/debug/big.o", "ignored by .gitignore\n");
    env.write("cache/x", "ignored by the policy\n");
    let wf = env.workflow(
        "files.yaml",
        r#"
name: files
steps:
  - id: build
    type: run_command
    command: |
      mkdir -p build && printf 'out\n' > build/out.txt
      printf 'fn new() {}\n' > src/lib.rs
      rm tmp.log
      mv old_name.txt new_name.txt
      printf 'x' > target/debug/big.o
      printf 'y' > cache/x
      printf 'z' > scratch.tmp
      mkdir -p .git && printf 'g' > .git/HEAD
  - id: quiet
    needs: [build]
    type: run_command
    command: "true"
  - id: edit
    needs: [quiet]
    type: edit_file
    path: notes.txt
    content: "kept, and more\n"
"#,
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 0, "{out}");
    let run = out.run_id();
    let show = env.show(&run);
    assert_eq!(
        changes(&show, "build"),
        [
            change("created", "build/out.txt", None),
            change("renamed", "new_name.txt", Some("old_name.txt")),
            change("modified", "src/lib.rs", None),
            change("deleted", "tmp.log", None),
        ]
    );
    // A command that changes nothing records nothing; an edit records its file.
    assert_eq!(changes(&show, "quiet"), []);
    assert_eq!(
        changes(&show, "edit"),
        [change("modified", "notes.txt", None)]
    );
    // Each version is named by its hash, and kept: the diff shows both sides.
    let lib = &step(&show, "build")["file_changes"][2];
    assert_eq!(
        lib["before"]["hash"].as_str(),
        Some(stepwise_core::hash::content_hash(b"fn old() {}\n").as_str())
    );
    let diff = lib["diff"].as_str().expect("a text file's diff");
    assert!(
        diff.contains("-fn old() {}") && diff.contains("+fn new() {}"),
        "{diff}"
    );
    let deleted = &step(&show, "build")["file_changes"][3];
    assert!(deleted["diff"].as_str().unwrap_or("").contains("-scratch"));
    let kept = env
        .database
        .with(|store| store.get_blob(&stepwise_core::hash::content_hash(b"fn old() {}\n")))
        .expect("the database")
        .expect("read the blob");
    assert_eq!(
        kept.as_deref(),
        Some(&b"fn old() {}\n"[..]),
        "the content before the command is kept"
    );

    // People read it in `show`.
    let text = env.stepwise(&["show", &run]);
    assert!(
        text.stdout.contains(
            "files: created build/out.txt, renamed old_name.txt to new_name.txt, wrote src/lib.rs, deleted tmp.log"
        ),
        "{text}"
    );
    assert!(text.stdout.contains("+kept, and more"), "{text}");

    let replayed = env.stepwise(&["replay", &run, "--json"]);
    assert_eq!(replayed.code, 0, "{replayed}");
}

#[test]
fn a_bad_checkpoint_setting_in_the_policy_file_is_named_and_nothing_runs() {
    let env = Env::new();
    env.workspace_policy("  - allow: run_command\ncheckpoint:\n  ignore: [\"src/[\"]\n");
    let wf = env.workflow(
        "one.yaml",
        "name: one\nsteps:\n  - id: a\n    type: run_command\n    command: \"touch ran\"\n",
    );
    let out = env.run(&wf, &[]);
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.contains("src/["), "{out}");
    assert!(out.stderr.contains("policy.yaml"), "{out}");
    assert!(env.read("ran").is_none());
}

/// A command cancelled mid-way: what it had changed in the files is recorded with its failure.
#[test]
fn what_a_cancelled_command_changed_is_recorded_with_its_failure() {
    let env = Env::new();
    env.allow_everything();
    let wf = env.workflow(
        "slow.yaml",
        "name: slow\nsteps:\n  - id: slow\n    type: run_command\n    command: \"echo half > made.txt; sleep 60\"\n",
    );
    let engine = env.spawn_run(&wf);
    let patience = std::time::Duration::from_secs(30);
    let deadline = std::time::Instant::now() + patience;
    while env.read("made.txt").is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the command never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let run = env.first_run_id(patience).expect("the run");
    let cancelled = env.stepwise(&["cancel", &run]);
    assert!(cancelled.code == 0 || cancelled.code == 1, "{cancelled}");
    engine.finish(patience);
    let show = env.show(&run);
    assert_eq!(step(&show, "slow")["status"], "cancelled", "{show}");
    assert_eq!(
        changes(&show, "slow"),
        [change("created", "made.txt", None)]
    );
}
