//! Engine benchmarks: `cargo bench -p stepwise-engine`.
//!
//! Prints, for the durable log at SQLite `synchronous=FULL` and `NORMAL`: per-step overhead of
//! a 1,000-step linear workflow of `set` steps (and, for contrast, of `read_file` steps, each a
//! real operation), a 100-wide fan-out and join, loading and replaying a 10,000-step run, the
//! in-process approval round trip, and bytes stored per step. Everything runs against real
//! SQLite files and a real workspace in a temp directory.
//!
//! Under `cargo test` (no `--bench` argument) it runs each scenario once at a tiny size, as a
//! smoke test, and prints nothing.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stepwise_core::event::Event;
use stepwise_core::run::{RunState, RunStatus, replay};
use stepwise_core::workflow::parse_workflow;
use stepwise_engine::record::decode;
use stepwise_engine::{
    Command, DriveOptions, Engine, EngineConfig, NoObserver, Observer, StartRun,
};
use stepwise_store::Durability;
use tokio::sync::Notify;

struct Sizes {
    linear: usize,
    reads: usize,
    fan_out: usize,
    replay: usize,
    approvals: usize,
}

const FULL_SIZES: Sizes = Sizes {
    linear: 1_000,
    reads: 200,
    fan_out: 100,
    replay: 10_000,
    approvals: 200,
};
const SMOKE_SIZES: Sizes = Sizes {
    linear: 5,
    reads: 3,
    fan_out: 4,
    replay: 10,
    approvals: 2,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let sizes = if benchmarking {
        FULL_SIZES
    } else {
        SMOKE_SIZES
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut report = String::new();
    for (label, durability) in [("FULL", Durability::Full), ("NORMAL", Durability::Normal)] {
        let results = runtime.block_on(scenarios(durability, &sizes))?;
        writeln!(report, "synchronous={label}")?;
        for (name, value) in results {
            writeln!(report, "  {name:<58} {value}")?;
        }
    }
    if benchmarking {
        print!("{report}");
    }
    Ok(())
}

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

async fn scenarios(durability: Durability, sizes: &Sizes) -> BenchResult<Vec<(String, String)>> {
    let mut out = Vec::new();

    // 1. Linear chain of pure `set` steps.
    let dir = tempfile::tempdir()?;
    let engine = open_engine(dir.path(), durability)?;
    let (took, run_id) = run_to_end(
        &engine,
        dir.path(),
        "linear",
        &linear_set_workflow(sizes.linear),
    )
    .await?;
    out.push((
        format!("linear {} set steps: per step", sizes.linear),
        per(took, sizes.linear),
    ));
    let bytes = stored_bytes(dir.path())?;
    let events = engine.store().run(&run_id)?.map_or(0, |r| r.last_seq);
    out.push((
        format!("linear {} set steps: bytes stored per step", sizes.linear),
        format!("{} B ({events} events)", bytes / sizes.linear as u64),
    ));

    // 2. Linear chain of read_file steps: each one a recorded operation.
    let dir = tempfile::tempdir()?;
    let engine = open_engine(dir.path(), durability)?;
    std::fs::write(dir.path().join("ws").join("input.txt"), "hello\n")?;
    let (took, _) = run_to_end(
        &engine,
        dir.path(),
        "reads",
        &linear_read_workflow(sizes.reads),
    )
    .await?;
    out.push((
        format!(
            "linear {} read_file steps (an operation each): per step",
            sizes.reads
        ),
        per(took, sizes.reads),
    ));

    // 3. Fan-out and join.
    let dir = tempfile::tempdir()?;
    let engine = open_engine(dir.path(), durability)?;
    let (took, _) =
        run_to_end(&engine, dir.path(), "fan", &fan_out_workflow(sizes.fan_out)).await?;
    out.push((
        format!("{}-wide fan-out and join: whole run", sizes.fan_out),
        format_duration(took),
    ));

    // 4. Load and replay a big run.
    let dir = tempfile::tempdir()?;
    let engine = open_engine(dir.path(), durability)?;
    let (_, run_id) = run_to_end(
        &engine,
        dir.path(),
        "big",
        &linear_set_workflow(sizes.replay),
    )
    .await?;
    let bytes = stored_bytes(dir.path())?;
    out.push((
        format!("linear {} set steps: bytes stored per step", sizes.replay),
        format!("{} B", bytes / sizes.replay as u64),
    ));
    // A fresh engine, so nothing is cached: what opening an old run costs, piece by piece.
    let engine = open_engine(dir.path(), durability)?;
    let start = Instant::now();
    let stored = engine.store().load_events(&run_id, 0)?;
    let read_took = start.elapsed();
    let start = Instant::now();
    let events: Vec<(u64, Event)> = stored
        .iter()
        .map(|s| decode(&run_id, s).map(|e| (s.seq, e)))
        .collect::<Result<_, _>>()?;
    let decode_took = start.elapsed();
    let start = Instant::now();
    let Some((_, Event::RunStarted(started))) = events.first() else {
        return Err("no RunStarted".into());
    };
    let workflow =
        Arc::new(parse_workflow("big.yaml", &started.workflow_source).map_err(|e| e.to_string())?);
    let compile_took = start.elapsed();
    let start = Instant::now();
    let state = RunState::load(Arc::clone(&workflow), &events)?;
    let fold_took = start.elapsed();
    assert_eq!(state.status(), RunStatus::Succeeded);
    let start = Instant::now();
    let report = replay(Arc::clone(&workflow), &events)?;
    let replay_took = start.elapsed();
    assert_eq!(report.status, RunStatus::Succeeded);
    let n = sizes.replay;
    out.push((
        format!("{n}-step run: read {} events from SQLite", stored.len()),
        format_duration(read_took),
    ));
    out.push((
        format!("{n}-step run: decode events"),
        format_duration(decode_took),
    ));
    out.push((
        format!("{n}-step run: compile its {n}-step workflow"),
        format_duration(compile_took),
    ));
    out.push((
        format!("{n}-step run: fold events into state"),
        format_duration(fold_took),
    ));
    out.push((
        format!("{n}-step run: replay (re-decide and compare every step)"),
        format_duration(replay_took),
    ));
    out.push((
        format!("{n}-step run: load history + replay (read + decode + replay)"),
        format_duration(read_took + decode_took + replay_took),
    ));

    // 5. Approval round trip, in-process.
    let dir = tempfile::tempdir()?;
    let engine = Arc::new(open_engine(dir.path(), durability)?);
    std::fs::write(dir.path().join("ws").join("input.txt"), "hello\n")?;
    let took = approval_round_trips(&engine, dir.path(), sizes.approvals).await?;
    out.push((
        "approval round trip (approve → recorded → step running)".to_string(),
        per(took, sizes.approvals),
    ));
    Ok(out)
}

fn open_engine(dir: &Path, durability: Durability) -> BenchResult<Engine> {
    std::fs::create_dir_all(dir.join("ws"))?;
    let mut config = EngineConfig::new(dir.join("bench.db"));
    config.durability = durability;
    Ok(Engine::open(config)?)
}

async fn run_to_end(
    engine: &Engine,
    dir: &Path,
    name: &str,
    yaml: &str,
) -> BenchResult<(Duration, String)> {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, yaml)?;
    let start = Instant::now();
    let run_id = engine.start_run(&StartRun {
        workflow_path: path,
        workspace: dir.join("ws"),
        inputs: Default::default(),
        trigger: "bench".into(),
        max_parallel: None,
    })?;
    let status = engine
        .drive(&run_id, None, &NoObserver, DriveOptions::default())
        .await?;
    let took = start.elapsed();
    if status != RunStatus::Succeeded {
        return Err(format!("{name} ended {status:?}").into());
    }
    Ok((took, run_id))
}

/// Wakes the benchmark whenever a step asks for approval.
struct ApprovalWatch {
    asked: Notify,
}

impl Observer for ApprovalWatch {
    fn events_appended(&self, _run_id: &str, events: &[(u64, i64, Event)]) {
        if events
            .iter()
            .any(|(_, _, e)| matches!(e, Event::ApprovalRequested { .. }))
        {
            self.asked.notify_one();
        }
    }
}

async fn approval_round_trips(
    engine: &Arc<Engine>,
    dir: &Path,
    count: usize,
) -> BenchResult<Duration> {
    let mut yaml = String::from("name: approvals\nmax_parallel: 1\nsteps:\n");
    for i in 0..count {
        let needs = if i == 0 {
            String::new()
        } else {
            format!("    needs: [r{}]\n", i - 1)
        };
        write!(
            yaml,
            "  - id: r{i}\n    type: read_file\n    approval: required\n    path: input.txt\n{needs}"
        )?;
    }
    let path = dir.join("approvals.yaml");
    std::fs::write(&path, yaml)?;
    let run_id = engine.start_run(&StartRun {
        workflow_path: path,
        workspace: dir.join("ws"),
        inputs: Default::default(),
        trigger: "bench".into(),
        max_parallel: None,
    })?;
    let watch = Arc::new(ApprovalWatch {
        asked: Notify::new(),
    });
    let driver = {
        let engine = Arc::clone(engine);
        let watch = Arc::clone(&watch);
        let run_id = run_id.clone();
        tokio::spawn(async move {
            let options = DriveOptions {
                stay_alive_while_waiting: true,
            };
            engine.drive(&run_id, None, watch.as_ref(), options).await
        })
    };
    let mut total = Duration::ZERO;
    for i in 0..count {
        watch.asked.notified().await;
        let start = Instant::now();
        let command = Command::Approve {
            step: format!("r{i}"),
            comment: None,
            edited: None,
            proposal: None,
        };
        let status = engine.send(&run_id, command, &NoObserver).await?;
        total += start.elapsed();
        if status.is_finished() && i + 1 < count {
            return Err(format!("run ended early: {status:?}").into());
        }
    }
    let status = driver.await??;
    if status != RunStatus::Succeeded {
        return Err(format!("approvals run ended {status:?}").into());
    }
    Ok(total)
}

fn linear_set_workflow(n: usize) -> String {
    let mut yaml =
        String::from("name: linear\nsteps:\n  - id: s0\n    type: set\n    values: { i: 0 }\n");
    for i in 1..n {
        let _ = write!(
            yaml,
            "  - id: s{i}\n    type: set\n    needs: [s{p}]\n    values: {{ i: \"${{steps.s{p}.output.i + 1}}\" }}\n",
            p = i - 1
        );
    }
    yaml
}

fn linear_read_workflow(n: usize) -> String {
    let mut yaml = String::from("name: reads\nsteps:\n");
    for i in 0..n {
        let needs = if i == 0 {
            String::new()
        } else {
            format!("    needs: [r{}]\n", i - 1)
        };
        let _ = write!(
            yaml,
            "  - id: r{i}\n    type: read_file\n    path: input.txt\n{needs}"
        );
    }
    yaml
}

fn fan_out_workflow(n: usize) -> String {
    let mut yaml =
        String::from("name: fan\nsteps:\n  - id: root\n    type: set\n    values: { x: 1 }\n");
    for i in 0..n {
        let _ = write!(
            yaml,
            "  - id: b{i}\n    type: set\n    needs: [root]\n    values: {{ v: \"${{steps.root.output.x + {i}}}\" }}\n"
        );
    }
    let needs: Vec<String> = (0..n).map(|i| format!("b{i}")).collect();
    let _ = write!(
        yaml,
        "  - id: join\n    type: set\n    needs: [{}]\n    values: {{ done: true }}\n",
        needs.join(", ")
    );
    yaml
}

/// The database's size once the WAL is folded back in.
fn stored_bytes(dir: &Path) -> BenchResult<u64> {
    let conn = rusqlite::Connection::open(dir.join("bench.db"))?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    let pages: u64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let size: u64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    Ok(pages * size)
}

fn per(total: Duration, n: usize) -> String {
    format_duration(total / u32::try_from(n.max(1)).unwrap_or(u32::MAX))
}

fn format_duration(d: Duration) -> String {
    let micros = d.as_micros();
    if micros < 10_000 {
        format!("{micros} µs")
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    }
}
