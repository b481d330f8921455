//! What stepwise says about a database is true even when the database is damaged, replaced
//! under a running holder, or read-only: a reader fails naming what it cannot read rather than
//! answer less, a holder stops rather than split a run between two files, and a read-only
//! database is read, and refused for writing, as its message says.

use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{Env, Out, wait_for_fifo};

const PATIENCE: Duration = Duration::from_secs(30);

fn gated_edit(env: &Env) -> PathBuf {
    env.workflow(
        "gated.yaml",
        "name: gated\nsteps:\n  - id: change\n    type: edit_file\n    path: out.txt\n    content: \"new\\n\"\n",
    )
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A complete, self-contained copy of the test's database (no write-ahead log beside it).
fn copy_database(env: &Env, to: &Path) {
    env.db()
        .execute("VACUUM INTO ?1", [to.to_str().expect("utf-8 path")])
        .expect("copy the database");
}

#[test]
fn a_damaged_page_makes_readers_fail_naming_the_run_never_answer_an_empty_inbox() {
    let env = Env::new();
    let wf = gated_edit(&env);
    let first = env.run(&wf, &[]).run_id();
    let second = env.run(&wf, &[]).run_id();
    assert_eq!(env.approvals().len(), 2);

    // Everything into the database file, then the middle of the events table's first page
    // overwritten.
    let (page_size, root): (u64, u64) = {
        let db = rusqlite::Connection::open(&env.db).expect("open the database");
        db.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .expect("checkpoint");
        let page_size = db
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .expect("page size");
        let root = db
            .query_row(
                "SELECT rootpage FROM sqlite_master WHERE name = 'events'",
                [],
                |r| r.get(0),
            )
            .expect("the events table");
        (page_size, root)
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(&env.db)
        .expect("open the database file");
    file.seek(SeekFrom::Start((root - 1) * page_size + 64))
        .expect("seek");
    file.write_all(&vec![
        0xA5;
        usize::try_from(page_size - 128).expect("a size")
    ])
    .expect("damage a page");
    drop(file);

    let named = |out: &Out| {
        (out.stderr.contains(&first) || out.stderr.contains(&second))
            && out.stderr.contains("cannot be read")
    };
    let out = env.stepwise(&["approvals"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(!out.stdout.contains("nothing waits"), "{out}");
    assert!(named(&out), "{out}");
    let out = env.stepwise(&["approvals", "--json"]);
    assert_eq!(out.code, 1, "{out}");
    assert_eq!(out.stdout.trim(), "", "no list is printed: {out}");
    assert!(named(&out), "{out}");
    for args in [["show", &first], ["events", &first], ["cost", &first]] {
        let out = env.stepwise(&args);
        assert_eq!(out.code, 1, "{args:?}: {out}");
        assert!(out.stderr.contains(&first), "{args:?}: {out}");
        assert!(
            out.stderr.contains(&env.db.display().to_string()),
            "{args:?}: the database is named: {out}"
        );
    }
    // The list of runs reads only their rows, which are whole: what it says is true.
    let out = env.stepwise(&["runs"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout.contains(&first) && out.stdout.contains(&second),
        "{out}"
    );
}

#[test]
fn a_holder_whose_database_file_is_replaced_stops_and_writes_nothing_to_the_new_file() {
    let env = Env::new();
    env.workspace_policy("  - allow: run_command\n    unchecked_shell: true\n");
    // The file that will be moved over the database: a copy holding one finished run.
    let quick = env.workflow(
        "quick.yaml",
        "name: quick\nsteps:\n  - id: hello\n    type: run_command\n    command: echo hello\n",
    );
    let out = env.run(&quick, &[]);
    assert_eq!(out.code, 0, "{out}");
    let quick_run = out.run_id();
    let copy = env.root().join("copy.db");
    copy_database(&env, &copy);

    let ready = env.fifo("ready.fifo");
    let waits = env.workflow(
        "waits.yaml",
        "name: waits\nsteps:\n  - id: wait\n    type: run_command\n    command: echo $$ > sleep.pid; echo started > ready.fifo; exec sleep 300\n  - id: after\n    needs: [wait]\n    type: run_command\n    command: echo after\n",
    );
    let holder = env.spawn_run(&waits);
    assert_eq!(wait_for_fifo(&ready, PATIENCE).as_deref(), Some("started"));
    let run: String = env
        .db()
        .query_row(
            "SELECT run_id FROM runs WHERE workflow_name = 'waits'",
            [],
            |r| r.get(0),
        )
        .expect("the holder's run");

    std::fs::rename(&copy, &env.db).expect("move the copy over the database");
    let out = holder.finish(PATIENCE);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr
            .contains(&format!("database `{}`", env.db.display()))
            && out.stderr.contains("was replaced"),
        "{out}"
    );
    // The command it was running went with it.
    let sleep = crate::support::read_pid(&env.ws.join("sleep.pid"));
    assert!(
        crate::support::wait_until_ended(sleep, PATIENCE),
        "the holder's command outlived it"
    );

    // The file now at the path holds what it held, and nothing of the holder's run.
    assert_eq!(env.event_count(Some(&run)), 0);
    let rows: i64 = env
        .db()
        .query_row("SELECT COUNT(*) FROM runs WHERE run_id = ?1", [&run], |r| {
            r.get(0)
        })
        .expect("count runs");
    assert_eq!(rows, 0);
    let out = env.stepwise(&["show", &quick_run, "--json"]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(out.json()["status"], "succeeded", "{out}");
    let out = env.stepwise(&["runs"]);
    assert!(!out.stdout.contains(&run), "{out}");
}

#[test]
fn a_database_this_user_cannot_write_is_read_truly_and_writing_says_why_not() {
    let env = Env::new();
    let run = env.run(&gated_edit(&env), &[]).run_id();
    set_mode(&env.root(), 0o755);

    // The database file alone, still in WAL mode but with every commit in it (no `-wal` or
    // `-shm` beside it), in a directory and a file this user may not write.
    let alone = env.root().join("alone");
    std::fs::create_dir(&alone).expect("create a directory");
    for suffix in ["", "-wal", "-shm"] {
        let name = format!("stepwise.db{suffix}");
        if env.root().join(&name).exists() {
            std::fs::copy(env.root().join(&name), alone.join(&name)).expect("copy");
        }
    }
    let db = alone.join("stepwise.db");
    {
        let conn = rusqlite::Connection::open(&db).expect("open the copy");
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .expect("checkpoint");
        // Closing it, the last connection, removes the log and its index.
    }
    assert!(!alone.join("stepwise.db-wal").exists() && !alone.join("stepwise.db-shm").exists());
    // The same file with a commit still in its write-ahead log, without the index (`-shm`)
    // that a reader here could not make.
    let logged = env.root().join("logged");
    std::fs::create_dir(&logged).expect("create a directory");
    std::fs::copy(&db, logged.join("stepwise.db")).expect("copy");
    {
        let conn = rusqlite::Connection::open(logged.join("stepwise.db")).expect("open the copy");
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .expect("keep the log on close");
        conn.execute_batch("CREATE TABLE later (x)")
            .expect("commit to the log");
    }
    std::fs::remove_file(logged.join("stepwise.db-shm")).expect("remove the index");
    assert!(
        logged
            .join("stepwise.db-wal")
            .metadata()
            .expect("the log")
            .len()
            > 0
    );
    for dir in [&alone, &logged] {
        for entry in std::fs::read_dir(dir).expect("list") {
            set_mode(&entry.expect("entry").path(), 0o444);
        }
        set_mode(dir, 0o555);
    }

    // As root, permissions do not bind: read as `nobody` instead.
    let as_reader = |db: &Path, args: &[&str]| {
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
            .env("STEPWISE_DB", db)
            .env("XDG_CONFIG_HOME", env.root().join("config"))
            .env_remove("STEPWISE_USER_POLICY")
            .env_remove("STEPWISE_SETTINGS")
            .current_dir("/");
        Out::from(command.output().expect("start stepwise"))
    };

    for args in [
        vec!["runs"],
        vec!["show", &run],
        vec!["events", &run],
        vec!["approvals"],
        vec!["cost", &run],
        vec!["replay", &run, "--recorded"],
    ] {
        let out = as_reader(&db, &args);
        assert_eq!(out.code, 0, "{args:?}: {out}");
        assert!(
            out.stdout.contains(&run[..8]) || args[0] == "replay",
            "{args:?}: {out}"
        );
    }
    let out = as_reader(&db, &["approvals", "--json"]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(out.json()[0]["step"], "change", "{out}");

    // Writing is refused, in words that agree with what reading does.
    let wf = gated_edit(&env);
    let (wf, ws) = (wf.to_str().expect("utf-8"), env.ws.to_str().expect("utf-8"));
    for args in [
        vec!["approve", &run, "change"],
        vec!["cancel", &run],
        vec!["resume", &run],
        vec!["run", wf, "--workspace", ws],
    ] {
        let out = as_reader(&db, &args);
        assert_eq!(out.code, 1, "{args:?}: {out}");
        assert!(
            out.stderr
                .contains(&format!("database `{}` is read-only", db.display()))
                && out
                    .stderr
                    .contains("runs, show, events, approvals, cost and replay can")
                && !out.stderr.contains("still work"),
            "{args:?}: {out}"
        );
    }

    // Commits this user cannot bring in: reading would show an older state, so it is refused,
    // saying why.
    let db = logged.join("stepwise.db");
    let out = as_reader(&db, &["approvals"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr.contains(&db.display().to_string()) && out.stderr.contains("write-ahead log"),
        "{out}"
    );
    assert!(!out.stdout.contains("nothing waits"), "{out}");

    for dir in [&alone, &logged] {
        set_mode(dir, 0o755);
    }
}
