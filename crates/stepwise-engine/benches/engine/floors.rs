//! The floors the engine is judged against, measured in the same process: a durable commit,
//! an append of the events a step records, and a process spawn.

use std::process::Command as Process;
use std::time::{Duration, Instant};

use stepwise_core::ids::EventSeq;
use stepwise_engine::Durability;
use stepwise_store::{NewEvent, NewRun, Store};

use crate::BenchResult;
use crate::bench::count;

/// One durable commit of one small row, with the engine's connection settings, in a fresh
/// database: each commit grows the write-ahead log.
pub fn commit_floor(durability: Durability, n: usize) -> BenchResult<Duration> {
    let dir = tempfile::tempdir()?;
    commit_floor_at(&dir.path().join("floor.db"), durability, n)
}

/// [`commit_floor`] once the write-ahead log has reached its steady size (as the engine grows
/// it ahead, `Store::grow_wal_ahead`): each commit writes over the log instead of growing it.
/// What a long-lived database pays.
pub fn commit_floor_steady(durability: Durability, n: usize) -> BenchResult<Duration> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("floor.db");
    let mut store = Store::open(&path, durability.into())?;
    store.grow_wal_ahead()?;
    // The store's connection stays open: the last one to close would delete the log.
    let floor = commit_floor_at(&path, durability, n);
    drop(store);
    floor
}

fn commit_floor_at(
    path: &std::path::Path,
    durability: Durability,
    n: usize,
) -> BenchResult<Duration> {
    let conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let sync = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync)?;
    conn.execute("CREATE TABLE t (x INTEGER NOT NULL)", [])?;
    let began = Instant::now();
    for i in 0..n {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        conn.execute("INSERT INTO t (x) VALUES (?1)", [i64::try_from(i)?])?;
        conn.execute_batch("COMMIT")?;
    }
    Ok(began.elapsed() / count(n))
}

/// One `Store::append` of the four events a `read_file` step commits: the previous read's
/// result and success, this step's start and its read request.
pub fn append_floor(durability: Durability, n: usize) -> BenchResult<Duration> {
    append_floor_with(durability, n, "hello\n")
}

/// [`append_floor`] for a file with this content.
pub fn append_floor_with(durability: Durability, n: usize, content: &str) -> BenchResult<Duration> {
    let dir = tempfile::tempdir()?;
    let mut store = Store::open(&dir.path().join("floor.db"), durability.into())?;
    let run = floor_run();
    store.create_run(&run, &[])?;
    let hash = stepwise_core::hash::content_hash(content.as_bytes());
    let event = |kind: &str, payload: serde_json::Value| NewEvent {
        event_type: kind.into(),
        schema_version: 1,
        recorded_at_ms: 1,
        correlation_id: Some("r1".into()),
        causation_seq: Some(EventSeq::FIRST),
        payload,
    };
    let events = [
        event(
            "OperationSucceeded",
            serde_json::json!({"op": 1, "result": {"kind": "file_read", "exists": true, "content": content, "hash": hash}}),
        ),
        event(
            "StepSucceeded",
            serde_json::json!({"step": "r1", "attempt": 1, "output": {"path": "input.txt", "content": content, "hash": hash}}),
        ),
        event(
            "StepStarted",
            serde_json::json!({"step": "r2", "attempt": 1}),
        ),
        event(
            "OperationStarted",
            serde_json::json!({"step": "r2", "attempt": 1, "request": {"kind": "read_file", "path": "input.txt"}}),
        ),
    ];
    let mut last = EventSeq::ZERO;
    let began = Instant::now();
    for _ in 0..n {
        last = store.append(&run.run_id, last, &events, Some("running"))?;
    }
    Ok(began.elapsed() / count(n))
}

/// `Store::append` of each of `commits` in turn, to one run of a fresh database whose
/// write-ahead log is at its steady size (as the engine's is): what recording them costs with
/// nothing of the engine around it. Per piece (each one tool call's, recorded in one commit
/// while its read is done inline).
pub fn append_each(durability: Durability, commits: &[Vec<NewEvent>]) -> BenchResult<Duration> {
    let dir = tempfile::tempdir()?;
    let mut store = Store::open(&dir.path().join("floor.db"), durability.into())?;
    store.grow_wal_ahead()?;
    let run = floor_run();
    store.create_run(&run, &[])?;
    let mut last = EventSeq::ZERO;
    let began = Instant::now();
    for events in commits {
        last = store.append(&run.run_id, last, events, Some("running"))?;
    }
    Ok(began.elapsed() / count(commits.len()))
}

/// The run the append floors append to.
fn floor_run() -> NewRun {
    NewRun {
        run_id: "floor".into(),
        workflow_name: "floor".into(),
        workflow_path: "floor.yaml".into(),
        workflow_hash: "sha256:0".into(),
        workspace: "/ws".into(),
        trigger: "bench".into(),
        status: "running".into(),
        created_at_ms: 0,
        parent: None,
        cause: None,
    }
}

/// Spawning `true` and waiting for it, as plainly as the standard library does it.
pub fn spawn_plain(n: usize) -> BenchResult<Duration> {
    let began = Instant::now();
    for _ in 0..n {
        if !Process::new("true").status()?.success() {
            return Err("`true` failed".into());
        }
    }
    Ok(began.elapsed() / count(n))
}

/// Spawning `true` with its output piped and read to the end, as plainly as the standard
/// library does it (`posix_spawn`): what any engine pays to run a command and keep what it
/// prints. The floor a command step is judged against.
pub fn spawn_piped(n: usize) -> BenchResult<Duration> {
    let began = Instant::now();
    for _ in 0..n {
        let out = Process::new("true")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .output()?;
        if !out.status.success() {
            return Err("`true` failed".into());
        }
    }
    Ok(began.elapsed() / count(n))
}

/// Spawning `true` the way any engine that must not leave processes behind and must record
/// what commands print has to: in a process group of its own, with a parent-death signal
/// (which needs a fork, not posix_spawn), its output captured through pipes.
#[allow(unsafe_code)]
pub fn spawn_as_engine(n: usize) -> BenchResult<Duration> {
    use std::os::unix::process::CommandExt;
    let began = Instant::now();
    for _ in 0..n {
        let mut child = Process::new("true");
        child
            .process_group(0)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            child.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        if !child.output()?.status.success() {
            return Err("`true` failed".into());
        }
    }
    Ok(began.elapsed() / count(n))
}
