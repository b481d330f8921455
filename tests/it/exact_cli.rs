//! The CLI does exactly what it says: a proposal hash names one proposal, a missing or
//! wrong file is invalid input (exit 2), flags are checked as the YAML is, help describes
//! every argument, errors speak the user's language, and a read-only database still reads.

use crate::support::{Env, of_type};

fn gated_edit(env: &Env) -> std::path::PathBuf {
    env.workflow(
        "gated.yaml",
        "name: gated\nsteps:\n  - id: change\n    type: edit_file\n    path: out.txt\n    content: \"new\\n\"\n",
    )
}

#[test]
fn a_proposal_hash_must_have_at_least_eight_hex_digits() {
    let env = Env::new();
    let run = env.run(&gated_edit(&env), &[]).run_id();
    let hash = env.approvals()[0]["approval"]["proposal_hash"]
        .as_str()
        .expect("a proposal hash")
        .to_string();
    let digits = hash.strip_prefix("sha256:").expect("sha256: hash");

    for too_short in [
        "",
        "sha",
        "sha256",
        "sha256:",
        "sha256:1a2b",
        &digits[..7],
        "zzzzzzzzzz",
    ] {
        let out = env.approve(&run, "change", &["--proposal", too_short]);
        assert_eq!(out.code, 2, "--proposal {too_short:?}: {out}");
        assert!(out.stderr.contains("at least 8 hex digits"), "{out}");
        let out = env.stepwise(&[
            "reject",
            &run,
            "change",
            "--reason",
            "no",
            "--proposal",
            too_short,
        ]);
        assert_eq!(out.code, 2, "reject --proposal {too_short:?}: {out}");
    }
    // Nothing was decided by any of them.
    let events = env.events(&run);
    assert!(of_type(&events, "ApprovalGranted").is_empty());
    assert!(of_type(&events, "ApprovalRejected").is_empty());
    assert_eq!(env.read("out.txt"), None);

    // Eight digits (any case, with or without `sha256:`) name it.
    let prefix = digits[..8].to_uppercase();
    let out = env.approve(&run, "change", &["--proposal", &prefix]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(env.read("out.txt").as_deref(), Some("new\n"));
}

#[test]
fn missing_or_wrong_files_are_invalid_input_in_plain_words() {
    let env = Env::new();
    let out = env.stepwise(&["run", "missing.yaml"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("missing.yaml"), "{out}");
    assert!(out.stderr.contains("No such file or directory"), "{out}");
    assert_eq!(
        out.stderr.matches("No such file").count(),
        1,
        "said once: {out}"
    );
    assert!(!out.stderr.contains("os error"), "{out}");

    let root = env.root();
    let out = env.stepwise(&["run", root.to_str().expect("utf-8 path")]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("is a directory"), "{out}");

    std::fs::write(env.root().join("binary.yaml"), b"\xff\xfe\x00name: x").expect("write");
    let out = env.stepwise(&["run", "binary.yaml"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr.contains("binary.yaml: is not UTF-8 text"),
        "{out}"
    );
    assert!(!out.stderr.contains(":0:0:"), "{out}");

    let run = env.run(&gated_edit(&env), &[]).run_id();
    let out = env.stepwise(&["replay", &run, "--workflow", "missing.yaml"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("missing.yaml"), "{out}");
    assert_eq!(env.run_count(), 1, "nothing else was recorded");
}

#[test]
fn max_parallel_zero_and_a_repeated_input_are_errors_and_start_nothing() {
    let env = Env::new();
    let workflow = env.workflow(
        "inputs.yaml",
        "name: inputs\ninputs:\n  n: {type: integer, default: 1}\nsteps:\n  - id: a\n    type: set\n    values: {n: \"${inputs.n}\"}\n",
    );
    let workflow = workflow.to_str().expect("utf-8 path");
    let out = env.stepwise(&["run", workflow, "--max-parallel", "0"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("at least 1"), "{out}");

    let out = env.stepwise(&["run", workflow, "--input", "n=1", "--input", "n=2"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("`n` is given more than once"), "{out}");

    let out = env.stepwise(&["run", workflow, "--input", "=2"]);
    assert_eq!(out.code, 2, "{out}");
    assert_eq!(env.run_count(), 0);

    let out = env.stepwise(&["run", workflow, "--input", "n=2", "--max-parallel", "1"]);
    assert_eq!(out.code, 0, "{out}");
}

#[test]
fn help_describes_every_run_and_step_argument() {
    let env = Env::new();
    for command in [
        "approve", "reject", "resolve", "show", "events", "pause", "cancel", "replay",
    ] {
        let out = env.stepwise(&[command, "--help"]);
        assert_eq!(out.code, 0, "{out}");
        let run_line = out
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with("<RUN>"))
            .unwrap_or_else(|| panic!("{command} --help has no <RUN>:\n{out}"));
        assert!(
            run_line.contains("unique prefix") || run_line.contains("prefix of it"),
            "{command}: {run_line}"
        );
        if ["approve", "reject", "resolve"].contains(&command) {
            let step_line = out
                .stdout
                .lines()
                .find(|l| l.trim_start().starts_with("<STEP>"))
                .unwrap_or_else(|| panic!("{command} --help has no <STEP>:\n{out}"));
            assert!(step_line.contains("id"), "{command}: {step_line}");
        }
    }
}

/// Words only a programmer would understand.
const RUST_WORDS: &[&str] = &[
    "Depth {",
    "DuplicateKeyPolicy",
    "Option<",
    "untagged enum",
    "DatabaseTooFarAhead",
    "os error",
    "Error code",
    ":0:0:",
    "budget breached",
    "scalar",
    "invalid u",
    "panicked",
];

#[test]
fn validation_errors_speak_the_users_language() {
    let env = Env::new();
    let deep = format!(
        "name: x\nsteps:\n  - id: a\n    type: set\n    values: {}1{}\n",
        "{a: ".repeat(70),
        "}".repeat(70)
    );
    let cases: Vec<(&str, String)> = vec![
        ("deep.yaml", deep),
        ("dup.yaml", "name: x\nname: y\nsteps: []\n".into()),
        (
            "argv.yaml",
            "name: x\nsteps:\n  - id: a\n    type: run_command\n    command: [echo, [1]]\n".into(),
        ),
        ("string.yaml", "name: [x]\nsteps: []\n".into()),
        (
            "number.yaml",
            "name: x\nmax_parallel: -3\nsteps: []\n".into(),
        ),
        ("list.yaml", "- 1\n- 2\n".into()),
        ("empty.yaml", String::new()),
        (
            "rules.yaml",
            "name: x\npolicy: {rules: [{deny: run_command, command: {a: 1}}]}\nsteps: []\n".into(),
        ),
    ];
    for (name, text) in &cases {
        env.workflow(name, text);
        let out = env.stepwise(&["validate", name]);
        assert_eq!(out.code, 2, "{name}: {out}");
        let message = out.stdout.trim();
        assert!(message.starts_with(&format!("{name}:")), "{name}: {out}");
        for word in RUST_WORDS {
            assert!(!message.contains(word), "{name} says {word:?}: {message}");
        }
    }
    let out = env.stepwise(&["validate", "dup.yaml"]);
    assert!(out.stdout.contains("`name` is given twice"), "{out}");
    let out = env.stepwise(&["validate", "deep.yaml"]);
    assert!(out.stdout.contains("nested too deeply"), "{out}");

    // The same words for a broken policy file.
    env.workspace_policy("  - allow: run_command\n    command: [1]\n");
    let out = env.run(&gated_edit(&env), &[]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr
            .contains("expected a string or a list of strings"),
        "{out}"
    );
    for word in RUST_WORDS {
        assert!(
            !out.stderr.contains(word),
            "policy error says {word:?}: {out}"
        );
    }
}

#[test]
fn a_read_only_database_can_still_be_read() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let run = env.run(&gated_edit(&env), &[]).run_id();
    let db_dir = env.root().join("ro");
    std::fs::create_dir(&db_dir).expect("create ro");
    // Move the database (and its WAL, shm and lock files) into a directory made read-only.
    for entry in std::fs::read_dir(env.root()).expect("list root") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if name.starts_with("stepwise.db") {
            std::fs::rename(&path, db_dir.join(&name)).expect("move a database file");
        }
    }
    let db = db_dir.join("stepwise.db");
    let set_mode = |path: &std::path::Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    set_mode(&env.root(), 0o755);
    for entry in std::fs::read_dir(&db_dir).expect("list ro") {
        let path = entry.expect("entry").path();
        set_mode(&path, if path.is_dir() { 0o555 } else { 0o444 });
    }
    set_mode(&db_dir, 0o555);

    // As root, permissions do not bind: read as `nobody` instead.
    let as_reader = |args: &[&str]| {
        let mut command = if is_root() {
            let mut c = std::process::Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(crate::support::binary());
            c
        } else {
            std::process::Command::new(crate::support::binary())
        };
        command
            .args(args)
            .env("STEPWISE_DB", &db)
            .env("XDG_CONFIG_HOME", env.root().join("config"))
            .env_remove("STEPWISE_USER_POLICY")
            .current_dir("/");
        crate::support::Out::from(command.output().expect("start stepwise"))
    };
    for args in [
        vec!["runs"],
        vec!["show", &run],
        vec!["events", &run],
        vec!["approvals"],
        vec!["replay", &run, "--recorded"],
    ] {
        let out = as_reader(&args);
        assert_eq!(out.code, 0, "{args:?}: {out}");
        assert!(
            out.stdout.contains(&run[..8]) || args[0] == "replay",
            "{args:?}: {out}"
        );
    }
    // Writing is refused in words, and nothing changes.
    let out = as_reader(&["approve", &run, "change"]);
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.contains("read-only"), "{out}");
    for word in RUST_WORDS {
        assert!(!out.stderr.contains(word), "{word:?}: {out}");
    }
    set_mode(&db_dir, 0o755);
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
