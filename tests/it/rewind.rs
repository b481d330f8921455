//! Rewind: a run's edits and what its commands did to the files put back as they were when a
//! step started, byte for byte; a file changed since by someone else left alone as a conflict
//! unless included by name; the rewind approved by its proposal's hash and recorded in the
//! log; replay and the hash chain still hold; a waiting run rewound and then going on.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::support::{Env, of_type};

/// Every file of the workspace but `.stepwise/`, with its bytes.
fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut found = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read a directory") {
            let entry = entry.expect("an entry");
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .expect("inside")
                .to_string_lossy()
                .into_owned();
            if rel == ".stepwise" {
                continue;
            }
            if entry.file_type().expect("a type").is_dir() {
                dirs.push(path);
            } else {
                found.insert(rel, std::fs::read(&path).expect("read a file"));
            }
        }
    }
    found
}

/// A workspace whose run edits `a.txt`, then runs a command that modifies, creates, deletes
/// and renames files (one of them binary), then edits `a.txt` again.
fn finished_run(env: &Env) -> (String, BTreeMap<String, Vec<u8>>) {
    env.allow_everything();
    env.write("a.txt", "a one\n");
    env.write("b.txt", "b one\n");
    env.write("d.txt", "to delete\n");
    env.write("e.txt", "to rename\n");
    std::fs::write(env.ws.join("bin.dat"), [0u8, 159, 146, 150, 255]).expect("binary");
    let before = files(&env.ws);
    let wf = env.workflow(
        "work.yaml",
        r#"
name: work
steps:
  - id: edit
    type: edit_file
    path: a.txt
    content: "a two\n"
  - id: build
    needs: [edit]
    type: run_command
    command: |
      printf 'b two\n' > b.txt
      mkdir -p out && printf 'made\n' > out/c.txt
      rm d.txt
      mv e.txt f.txt
      printf '\001\002' > bin.dat
  - id: polish
    needs: [build]
    type: edit_file
    path: a.txt
    content: "a three\n"
"#,
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 0, "{out}");
    (out.run_id(), before)
}

fn propose(env: &Env, run: &str, to: &str, extra: &[&str]) -> Value {
    let mut args = vec!["rewind", run, "--to", to, "--json"];
    args.extend_from_slice(extra);
    let out = env.stepwise(&args);
    assert_eq!(out.code, 0, "{out}");
    out.json()
}

fn approve(env: &Env, run: &str, to: &str, proposal: &Value, extra: &[&str]) -> Value {
    let hash = proposal["proposal_hash"]
        .as_str()
        .expect("a hash")
        .to_string();
    let mut args = vec!["rewind", run, "--to", to, "--proposal", &hash, "--json"];
    args.extend_from_slice(extra);
    let out = env.stepwise(&args);
    assert_eq!(out.code, 0, "{out}");
    out.json()
}

#[test]
fn rewinding_to_the_first_step_puts_every_file_back_byte_for_byte_and_is_recorded() {
    let env = Env::new();
    let (run, before) = finished_run(&env);
    let proposal = propose(&env, &run, "edit", &[]);
    let actions: BTreeMap<String, String> = proposal["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap_or_default().to_string(),
                f["action"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let expected: BTreeMap<String, String> = [
        ("a.txt", "restore"),
        ("b.txt", "restore"),
        ("bin.dat", "restore"),
        ("d.txt", "recreate"),
        ("e.txt", "recreate"),
        ("f.txt", "delete"),
        ("out/c.txt", "delete"),
    ]
    .into_iter()
    .map(|(p, a)| (p.to_string(), a.to_string()))
    .collect();
    assert_eq!(actions, expected);
    let a = proposal["files"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["path"] == "a.txt"))
        .expect("a.txt");
    assert!(
        a["diff"]
            .as_str()
            .is_some_and(|d| d.contains("-a three") && d.contains("+a one")),
        "{a}"
    );
    // Showing it changed nothing.
    assert_eq!(env.read("a.txt").as_deref(), Some("a three\n"));

    let done = approve(&env, &run, "edit", &proposal, &[]);
    assert_eq!(done["failed"], Value::Array(vec![]), "{done}");
    let mut after = files(&env.ws);
    after.remove("out"); // an emptied directory is not a file
    assert_eq!(after, before, "every file as it was when `edit` started");
    assert!(env.ws.join("out").is_dir(), "directories are left");

    let events = env.events(&run);
    let approved = of_type(&events, "RewindApproved");
    assert_eq!(approved.len(), 1);
    assert_eq!(approved[0]["data"]["to"], "edit");
    assert_eq!(
        approved[0]["data"]["proposal_hash"],
        proposal["proposal_hash"]
    );
    assert_eq!(of_type(&events, "RewindFinished").len(), 1);
    let shown = env.show(&run);
    assert_eq!(shown["rewinds"][0]["to"], "edit");
    assert_eq!(
        shown["rewinds"][0]["restored"].as_array().map(Vec::len),
        Some(7)
    );
    let replayed = env.stepwise(&["replay", &run]);
    assert_eq!(replayed.code, 0, "{replayed}");
    let verified = env.stepwise(&["verify", &run]);
    assert_eq!(verified.code, 0, "{verified}");

    // Nothing is left to put back; rewinding again is refused, saying so.
    let again = propose(&env, &run, "edit", &[]);
    assert_eq!(again["files"], Value::Array(vec![]));
    let refused = env.stepwise(&["rewind", &run, "--to", "edit", "--yes"]);
    assert_eq!(refused.code, 2, "{refused}");
    assert!(
        refused.to_string().contains("nothing to put back"),
        "{refused}"
    );
}

#[test]
fn a_file_changed_since_by_someone_else_is_left_alone_unless_included() {
    let env = Env::new();
    let (run, _) = finished_run(&env);
    env.write("b.txt", "a person's change\n");
    let proposal = propose(&env, &run, "build", &[]);
    let b = proposal["files"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["path"] == "b.txt"))
        .expect("b.txt listed");
    assert_eq!(b["conflict"], true);
    assert_eq!(b["included"], false);
    let text = env.stepwise(&["rewind", &run, "--to", "build"]).to_string();
    assert!(text.contains("CONFLICT b.txt"), "{text}");

    // Rewinding to `build`: the edit before it stays, b.txt keeps the person's change.
    let done = approve(&env, &run, "build", &proposal, &[]);
    assert_eq!(done["left_alone"], serde_json::json!(["b.txt"]));
    assert_eq!(env.read("a.txt").as_deref(), Some("a two\n"));
    assert_eq!(env.read("b.txt").as_deref(), Some("a person's change\n"));
    assert_eq!(env.read("d.txt").as_deref(), Some("to delete\n"));
    assert!(env.read("f.txt").is_none());

    // Included by name, it is put back too (nothing else is left to do).
    let included = propose(&env, &run, "build", &["--include", "b.txt"]);
    let paths: Vec<&str> = included["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(|f| f["path"].as_str())
        .collect();
    assert_eq!(paths, ["b.txt"]);
    approve(&env, &run, "build", &included, &["--include", "b.txt"]);
    assert_eq!(env.read("b.txt").as_deref(), Some("b one\n"));
}

#[test]
fn an_approval_of_a_proposal_the_files_no_longer_match_is_refused() {
    let env = Env::new();
    let (run, _) = finished_run(&env);
    let proposal = propose(&env, &run, "edit", &[]);
    env.write("a.txt", "changed after looking\n");
    let hash = proposal["proposal_hash"].as_str().expect("hash");
    let out = env.stepwise(&["rewind", &run, "--to", "edit", "--proposal", hash]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.to_string().contains("look at it again"), "{out}");
    assert_eq!(
        env.read("a.txt").as_deref(),
        Some("changed after looking\n")
    );
    assert_eq!(env.read("d.txt"), None, "nothing was put back");
    assert!(of_type(&env.events(&run), "RewindApproved").is_empty());

    for (args, says) in [
        (vec!["rewind", &run, "--to", "nope"], "never started"),
        (
            vec!["rewind", &run, "--to", "edit", "--include", "zz.txt"],
            "not among the files",
        ),
        (
            vec!["rewind", &run, "--to", "edit", "--proposal", "12"],
            "does not name one proposal",
        ),
    ] {
        let out = env.stepwise(&args);
        assert_eq!(out.code, 2, "{args:?}: {out}");
        assert!(out.to_string().contains(says), "{args:?}: {out}");
    }
}

#[test]
fn a_waiting_run_is_rewound_and_then_goes_on() {
    let env = Env::new();
    env.allow_everything();
    env.write("notes.txt", "first\n");
    let wf = env.workflow(
        "gate.yaml",
        r#"
name: gate
steps:
  - id: scribble
    type: run_command
    command: "printf 'scribbled\n' > notes.txt; printf 'tmp\n' > tmp.txt"
  - id: check
    needs: [scribble]
    type: approval
    message: Does it look right?
"#,
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 3, "{out}");
    let run = out.run_id();
    let out = env.stepwise(&["rewind", &run, "--to", "scribble", "--yes"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.to_string().contains("restored notes.txt"), "{out}");
    assert_eq!(env.read("notes.txt").as_deref(), Some("first\n"));
    assert!(env.read("tmp.txt").is_none());
    assert_eq!(env.show(&run)["status"], "awaiting_approval");
    let out = env.approve(&run, "check", &[]);
    assert_eq!(out.code, 0, "{out}");
    let replayed = env.stepwise(&["replay", &run]);
    assert_eq!(replayed.code, 0, "{replayed}");
}
