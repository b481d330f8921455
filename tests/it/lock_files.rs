//! The files the engine keeps for itself beside the database (the locks directory and the lock
//! files in it) are never reached through a link planted there, and a directory that others
//! could write, or that is another user's, is refused with words that say what to do.

use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use crate::support::Env;

fn gated_edit(env: &Env) -> PathBuf {
    env.workflow(
        "gated.yaml",
        "name: gated\nsteps:\n  - id: change\n    type: edit_file\n    path: out.txt\n    content: \"new\\n\"\n",
    )
}

fn lock_dir(env: &Env) -> PathBuf {
    env.root().join("stepwise.db.locks")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn a_link_planted_at_a_run_lock_is_refused_and_nothing_is_written_through_it() {
    let env = Env::new();
    let wf = gated_edit(&env);
    let first = env.run(&wf, &[]).run_id();
    let second = env.run(&wf, &[]).run_id();
    // One link to a file that exists (it would be truncated and overwritten with `pid N`),
    // one to a file that does not (it would be created).
    let victim = env.root().join("victim.txt");
    std::fs::write(&victim, "precious\n").expect("write the victim");
    let absent = env.root().join("made-through-a-link");
    for (run, target) in [(&first, &victim), (&second, &absent)] {
        let lock = lock_dir(&env).join(format!("{run}.lock"));
        std::fs::remove_file(&lock).expect("remove the run's lock file");
        symlink(target, &lock).expect("plant a link");
    }

    for args in [
        vec!["approve", first.as_str(), "change"],
        vec!["resume", first.as_str()],
        vec!["approve", second.as_str(), "change"],
    ] {
        let out = env.stepwise(&args);
        assert_eq!(out.code, 1, "{args:?}: {out}");
        let lock = lock_dir(&env).join(format!("{}.lock", args[1]));
        assert!(
            out.stderr.contains(&lock.display().to_string())
                && out.stderr.contains("symbolic link")
                && out.stderr.contains("remove it"),
            "{args:?}: {out}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&victim).expect("the victim is still there"),
        "precious\n"
    );
    assert!(!absent.exists(), "a file was created through the link");
    assert_eq!(env.read("out.txt"), None, "an approval went through");
}

#[test]
fn a_link_planted_at_the_runs_commands_lock_is_refused_and_the_command_never_runs() {
    let env = Env::new();
    // No policy: the command waits for a person, so the test knows where the log is.
    let wf = env.workflow(
        "cmd.yaml",
        "name: cmd\nsteps:\n  - id: touch\n    type: run_command\n    command: [sh, -c, \"echo ran > ran.txt\"]\n",
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 3, "{out}");
    let run = out.run_id();
    // A link (to a file that does not exist, which following it would create) where the run's
    // commands lock goes.
    let target = env.root().join("made-through-the-commands-lock");
    symlink(&target, lock_dir(&env).join(format!("{run}.commands.lock"))).expect("plant a link");
    let targets = [target];

    let out = env.approve(&run, "touch", &[]);
    assert_eq!(out.code, 1, "the step fails: {out}");
    let log = serde_json::to_string(&env.events(&run)).expect("events as text");
    assert!(
        log.contains("OperationFailed") && log.contains("symbolic link"),
        "the step's error says why: {log}"
    );
    assert_eq!(env.read("ran.txt"), None, "the command ran");
    for target in &targets {
        assert!(
            !target.exists(),
            "{} was created through a link",
            target.display()
        );
    }
}

#[test]
fn a_locks_directory_that_is_a_link_is_refused() {
    let env = Env::new();
    let elsewhere = env.root().join("elsewhere");
    std::fs::create_dir(&elsewhere).expect("create the directory elsewhere");
    symlink(&elsewhere, lock_dir(&env)).expect("plant a link");

    let out = env.run(&gated_edit(&env), &[]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr
            .contains(&format!("locks directory `{}`", lock_dir(&env).display()))
            && out.stderr.contains("symbolic link")
            && out.stderr.contains("remove the link"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_dir(&elsewhere).expect("list").count(),
        0,
        "something was made through the link"
    );
    assert_eq!(env.run_count(), 0, "a run started without its lock");
}

#[test]
fn the_locks_directory_is_private_and_one_others_can_write_or_own_is_refused() {
    let env = Env::new();
    let wf = gated_edit(&env);
    let run = env.run(&wf, &[]).run_id();
    let dir = lock_dir(&env);
    let meta = std::fs::symlink_metadata(&dir).expect("the locks directory");
    assert!(meta.is_dir());
    assert_eq!(
        meta.mode() & 0o777,
        0o700,
        "made readable by this user only"
    );

    // Writable by others: refused, with the command that fixes it.
    for mode in [0o777, 0o770, 0o702] {
        set_mode(&dir, mode);
        let out = env.stepwise(&["resume", &run]);
        assert_eq!(out.code, 1, "mode {mode:o}: {out}");
        assert!(
            out.stderr
                .contains(&format!("locks directory `{}`", dir.display()))
                && out.stderr.contains("other users")
                && out.stderr.contains(&format!("chmod 700 {}", dir.display())),
            "mode {mode:o}: {out}"
        );
    }
    set_mode(&dir, 0o700);

    // Another user's: refused (only root can give it away to test this).
    if is_root() {
        std::os::unix::fs::chown(&dir, Some(65534), None).expect("chown");
        let out = env.stepwise(&["resume", &run]);
        assert_eq!(out.code, 1, "{out}");
        assert!(
            out.stderr
                .contains(&format!("locks directory `{}`", dir.display()))
                && out.stderr.contains("another user"),
            "{out}"
        );
        std::os::unix::fs::chown(&dir, Some(0), None).expect("chown back");
    }
    // Private and this user's again: it works.
    let out = env.approve(&run, "change", &[]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(env.read("out.txt").as_deref(), Some("new\n"));
}

/// A holder killed while a command printed leaves that command's progress file behind (it had
/// no chance to remove it); the next holder of the run removes it, since nobody else can be
/// writing it, even though the command is not run again (its outcome is unknown).
#[test]
fn progress_a_killed_holder_left_behind_is_removed_by_the_next() {
    let env = Env::new();
    env.allow_everything();
    let wf = env.workflow(
        "talk.yaml",
        "name: talk\nsteps:\n  - id: talk\n    type: run_command\n    command: \"echo hello; sleep 60\"\n",
    );
    let driver = env.spawn_run(&wf);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let progress = || -> Vec<PathBuf> {
        std::fs::read_dir(lock_dir(&env))
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.to_string_lossy().ends_with(".progress"))
                    .collect()
            })
            .unwrap_or_default()
    };
    while progress().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the command's output went live"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    driver.kill();
    assert_eq!(progress().len(), 1, "left behind by the killed holder");
    let run = env
        .first_run_id(std::time::Duration::from_secs(5))
        .expect("the run");
    let resumed = env.stepwise(&["resume", &run]);
    assert_eq!(
        resumed.code, 3,
        "the command's outcome is unknown: {resumed}"
    );
    assert_eq!(progress(), Vec::<PathBuf>::new());
}

/// SQLite's own files beside the database (`-wal`, `-shm`) are checked before it opens them: a
/// link planted there, symbolic or hard, is refused naming it, even by a command that only
/// reads, and what it names is never written.
#[test]
fn links_planted_at_the_databases_side_files_are_refused() {
    let env = Env::new();
    let wf = gated_edit(&env);
    env.run(&wf, &[]);
    let victim = env.root().join("victim.txt");
    for (suffix, hard) in [
        ("-shm", true),
        ("-wal", true),
        ("-shm", false),
        ("-wal", false),
    ] {
        std::fs::write(&victim, "precious\n").expect("write the victim");
        let side = PathBuf::from(format!("{}{suffix}", env.db.display()));
        let _ = std::fs::remove_file(&side);
        if hard {
            std::fs::hard_link(&victim, &side).expect("hard link");
        } else {
            symlink(&victim, &side).expect("symlink");
        }
        for args in [vec!["runs"], vec!["approvals"]] {
            let out = env.stepwise(&args);
            assert_ne!(out.code, 0, "{suffix} hard={hard} {args:?}: {out}");
            assert!(
                out.stderr.contains(&side.display().to_string()),
                "{suffix} hard={hard}: {out}"
            );
        }
        assert_eq!(
            std::fs::read_to_string(&victim).expect("read").as_str(),
            "precious\n",
            "{suffix} hard={hard}: written through"
        );
        std::fs::remove_file(&side).expect("remove the link");
    }
    assert_eq!(
        env.stepwise(&["runs"]).code,
        0,
        "without links, it reads again"
    );
}
