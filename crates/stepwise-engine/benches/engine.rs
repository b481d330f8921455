//! Engine benchmarks: `cargo bench -p stepwise-engine --bench engine`.
//!
//! Prints, for the durable log at SQLite `synchronous=FULL` and `NORMAL`, the floors measured in
//! the same run (one minimal durable commit, one append of the size the engine makes, one
//! process spawn) and next to them what the engine costs: per step of a linear chain of `set`
//! steps, of `read_file` steps (one operation each) and of `run_command` steps; a 100-wide
//! fan-out of reads and how many commits it shares; loading and replaying a 10,000-step run;
//! the in-process approval round trip; and bytes stored per step. Everything runs against real
//! SQLite files, a real workspace and real processes in a temp directory.
//!
//! Under `cargo test` (no `--bench` argument) it runs each scenario once at a tiny size, as a
//! smoke test, and prints nothing.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stepwise_core::event::Event;
use stepwise_core::run::{RunState, RunStatus, replay};
use stepwise_core::workflow::parse_workflow;
use stepwise_engine::{Command, Durability, Engine, EngineConfig, StartRun};
use stepwise_store::{NewEvent, NewRun, Store};

struct Sizes {
    floor: usize,
    linear: usize,
    reads: usize,
    commands: usize,
    fan_out: usize,
    replay: usize,
    approvals: usize,
}

const FULL_SIZES: Sizes = Sizes {
    floor: 300,
    linear: 1_000,
    reads: 300,
    commands: 100,
    fan_out: 100,
    replay: 10_000,
    approvals: 200,
};
const SMOKE_SIZES: Sizes = Sizes {
    floor: 3,
    linear: 5,
    reads: 3,
    commands: 2,
    fan_out: 4,
    replay: 10,
    approvals: 2,
};

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> BenchResult<()> {
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
            writeln!(report, "  {name:<64} {value}")?;
        }
    }
    if benchmarking {
        print!("{report}");
    }
    Ok(())
}

async fn scenarios(durability: Durability, sizes: &Sizes) -> BenchResult<Vec<(String, String)>> {
    let mut out = Vec::new();

    // 0. Floors, measured now on this disk.
    let commit = commit_floor(durability, sizes.floor)?;
    out.push((
        "floor: one durable commit of one small row".into(),
        us(commit),
    ));
    let append = append_floor(durability, sizes.floor)?;
    out.push((
        "floor: one Store::append of 4 events (what a step commits)".into(),
        us(append),
    ));
    let spawn = spawn_floor(sizes.floor)?;
    out.push(("floor: spawn `true` and wait for it".into(), us(spawn)));

    // 1. Linear chain of pure `set` steps.
    let bench = Bench::new(durability)?;
    let run = bench
        .run_to_end("linear", &linear_set_workflow(sizes.linear))
        .await?;
    out.push((
        format!("linear {} set steps: per step", sizes.linear),
        us(run.took / count(sizes.linear)),
    ));
    let bytes = bench.stored_bytes()?;
    out.push((
        format!("linear {} set steps: bytes stored per step", sizes.linear),
        format!("{} B", bytes / sizes.linear as u64),
    ));

    // 2. Linear chain of read_file steps: one recorded operation each.
    let bench = Bench::new(durability)?;
    let run = bench
        .run_to_end("reads", &linear_read_workflow(sizes.reads))
        .await?;
    let per_read = run.took / count(sizes.reads);
    out.push((
        format!("linear {} read_file steps: per step", sizes.reads),
        us(per_read),
    ));
    out.push((
        "  read_file step beyond one commit (target ≤ 30 µs at FULL)".into(),
        beyond(per_read, commit),
    ));
    out.push((
        "  commits per read_file step".into(),
        format!("{:.2}", run.commits as f64 / sizes.reads as f64),
    ));

    // 3. Linear chain of commands (allowed by a workspace rule, so nobody is asked).
    let bench = Bench::new(durability)?;
    bench.allow_commands()?;
    let run = bench
        .run_to_end("commands", &linear_command_workflow(sizes.commands))
        .await?;
    let per_command = run.took / count(sizes.commands);
    out.push((
        format!("linear {} run_command steps: per step", sizes.commands),
        us(per_command),
    ));
    out.push((
        "  command step beyond spawn + two commits (target ≤ 100 µs at FULL)".into(),
        beyond(per_command, spawn + commit * 2),
    ));
    out.push((
        "  commits per command step".into(),
        format!("{:.2}", run.commits as f64 / sizes.commands as f64),
    ));

    // 4. Fan-out of reads and join: completions share commits.
    let bench = Bench::new(durability)?;
    let run = bench
        .run_to_end("fan-reads", &fan_out_read_workflow(sizes.fan_out))
        .await?;
    out.push((
        format!(
            "{}-wide fan-out of read_file and join: whole run",
            sizes.fan_out
        ),
        us(run.took),
    ));
    out.push((
        format!("  commits for its {} operations", sizes.fan_out),
        run.commits.to_string(),
    ));

    // 5. Fan-out of pure steps.
    let bench = Bench::new(durability)?;
    let run = bench
        .run_to_end("fan", &fan_out_set_workflow(sizes.fan_out))
        .await?;
    out.push((
        format!("{}-wide fan-out of set and join: whole run", sizes.fan_out),
        us(run.took),
    ));

    // 6. Load and replay a big run.
    let bench = Bench::new(durability)?;
    let run = bench
        .run_to_end("big", &linear_set_workflow(sizes.replay))
        .await?;
    out.push((
        format!("linear {} set steps: bytes stored per step", sizes.replay),
        format!("{} B", bench.stored_bytes()? / sizes.replay as u64),
    ));
    out.extend(load_and_replay(&bench, &run.run_id, sizes.replay)?);

    // 7. Approval round trip, in-process, with the run held while it waits (as the app does).
    let bench = Bench::new_holding(durability)?;
    let took = bench.approval_round_trips(sizes.approvals).await?;
    out.push((
        "approval round trip (send → applied and recorded → step running)".into(),
        us(took / count(sizes.approvals)),
    ));
    Ok(out)
}

/// One engine on a fresh database and workspace in a temp directory.
struct Bench {
    dir: tempfile::TempDir,
    engine: Engine,
}

/// How a run went.
struct Ran {
    run_id: String,
    took: Duration,
    commits: u64,
}

impl Bench {
    fn new(durability: Durability) -> BenchResult<Bench> {
        Bench::open(durability, false)
    }

    fn new_holding(durability: Durability) -> BenchResult<Bench> {
        Bench::open(durability, true)
    }

    fn open(durability: Durability, hold: bool) -> BenchResult<Bench> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join("ws"))?;
        std::fs::write(dir.path().join("ws").join("input.txt"), "hello\n")?;
        let mut config = EngineConfig::new(dir.path().join("bench.db"));
        config.durability = durability;
        config.hold_waiting_runs = hold;
        let engine = Engine::open(config)?;
        Ok(Bench { dir, engine })
    }

    fn allow_commands(&self) -> BenchResult<()> {
        let policy = self.dir.path().join("ws").join(".stepwise");
        std::fs::create_dir_all(&policy)?;
        std::fs::write(
            policy.join("policy.yaml"),
            "rules:\n  - allow: run_command\n",
        )?;
        Ok(())
    }

    fn start(&self, name: &str, yaml: &str) -> BenchResult<StartRun> {
        let path = self.dir.path().join(format!("{name}.yaml"));
        std::fs::write(&path, yaml)?;
        Ok(StartRun {
            workflow_path: path,
            workspace: self.dir.path().join("ws"),
            inputs: Default::default(),
            trigger: "bench".into(),
            max_parallel: Some(128),
        })
    }

    async fn run_to_end(&self, name: &str, yaml: &str) -> BenchResult<Ran> {
        let start = self.start(name, yaml)?;
        let commits = self.engine.stats().commits;
        let began = Instant::now();
        let handle = self.engine.start_run(start).await?;
        let run_id = handle.run_id().to_string();
        let status = handle.wait().await?;
        let took = began.elapsed();
        if status != RunStatus::Succeeded {
            return Err(format!("{name} ended {status:?}").into());
        }
        Ok(Ran {
            run_id,
            took,
            commits: self.engine.stats().commits - commits,
        })
    }

    async fn approval_round_trips(&self, n: usize) -> BenchResult<Duration> {
        let mut yaml = String::from("name: approvals\nmax_parallel: 1\nsteps:\n");
        for i in 0..n {
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
        let start = self.start("approvals", &yaml)?;
        let handle = self.engine.start_run(start).await?;
        let run_id = handle.run_id().to_string();
        let mut events = self.engine.subscribe_run(&run_id, 0);
        let mut total = Duration::ZERO;
        for i in 0..n {
            // Wait until the step asks.
            loop {
                match events.next().await {
                    Some(Ok(e)) if matches!(e.event, Event::ApprovalRequested { .. }) => break,
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e.into()),
                    None => return Err("the run ended early".into()),
                }
            }
            let began = Instant::now();
            let command = Command::Approve {
                step: format!("r{i}"),
                comment: None,
                edited: None,
                proposal: None,
            };
            self.engine.send(&run_id, command).await?;
            total += began.elapsed();
        }
        let status = handle.wait().await?;
        if status != RunStatus::Succeeded {
            return Err(format!("approvals run ended {status:?}").into());
        }
        Ok(total)
    }

    /// The database's size once the WAL is folded back in.
    fn stored_bytes(&self) -> BenchResult<u64> {
        let conn = rusqlite::Connection::open(self.dir.path().join("bench.db"))?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        let pages: u64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let size: u64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        Ok(pages * size)
    }
}

/// What opening an old run costs, piece by piece, with nothing cached.
fn load_and_replay(bench: &Bench, run_id: &str, n: usize) -> BenchResult<Vec<(String, String)>> {
    let store = Store::open_reader(&bench.dir.path().join("bench.db"))?;
    let began = Instant::now();
    let stored = store.load_events(run_id, 0)?;
    let read_took = began.elapsed();
    let began = Instant::now();
    let events: Vec<(u64, Event)> = stored
        .iter()
        .map(|s| {
            Event::from_payload(&s.event_type, s.schema_version, s.payload.clone())
                .map(|e| (s.seq, e))
        })
        .collect::<Result<_, _>>()?;
    let decode_took = began.elapsed();
    let began = Instant::now();
    let Some((_, Event::RunStarted(started))) = events.first() else {
        return Err("no RunStarted".into());
    };
    let workflow =
        Arc::new(parse_workflow("big.yaml", &started.workflow_source).map_err(|e| e.to_string())?);
    let compile_took = began.elapsed();
    let began = Instant::now();
    let state = RunState::load(Arc::clone(&workflow), &events)?;
    let fold_took = began.elapsed();
    if state.status() != RunStatus::Succeeded {
        return Err("the big run did not succeed".into());
    }
    let began = Instant::now();
    let report = replay(Arc::clone(&workflow), &events)?;
    let replay_took = began.elapsed();
    if report.status != RunStatus::Succeeded {
        return Err("the replay did not succeed".into());
    }
    Ok(vec![
        (
            format!("{n}-step run: read {} events from SQLite", stored.len()),
            us(read_took),
        ),
        (format!("{n}-step run: decode events"), us(decode_took)),
        (
            format!("{n}-step run: compile its {n}-step workflow"),
            us(compile_took),
        ),
        (
            format!("{n}-step run: fold events into state"),
            us(fold_took),
        ),
        (
            format!("{n}-step run: replay (re-decide and compare every step)"),
            us(replay_took),
        ),
        (
            format!("{n}-step run: load history + replay (read + decode + replay)"),
            us(read_took + decode_took + replay_took),
        ),
    ])
}

/// One durable commit of one small row, with the engine's connection settings.
fn commit_floor(durability: Durability, n: usize) -> BenchResult<Duration> {
    let dir = tempfile::tempdir()?;
    let conn = rusqlite::Connection::open(dir.path().join("floor.db"))?;
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

/// One `Store::append` of the four events a `read_file` step commits.
fn append_floor(durability: Durability, n: usize) -> BenchResult<Duration> {
    let dir = tempfile::tempdir()?;
    let mut store = Store::open(&dir.path().join("floor.db"), durability)?;
    let run = NewRun {
        run_id: "floor".into(),
        workflow_name: "floor".into(),
        workflow_path: "floor.yaml".into(),
        workflow_hash: "sha256:0".into(),
        workspace: "/ws".into(),
        trigger: "bench".into(),
        status: "running".into(),
        created_at_ms: 0,
    };
    store.create_run(&run, &[])?;
    let event = |kind: &str, payload: serde_json::Value| NewEvent {
        event_type: kind.into(),
        schema_version: 1,
        recorded_at_ms: 1,
        correlation_id: Some("r1".into()),
        causation_seq: Some(1),
        payload,
    };
    let events = [
        event(
            "OperationSucceeded",
            serde_json::json!({"op": 1, "result": {"kind": "file_read", "exists": true, "content": "hello\n", "hash": "sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"}}),
        ),
        event(
            "StepSucceeded",
            serde_json::json!({"step": "r1", "attempt": 1, "output": {"path": "input.txt", "content": "hello\n", "hash": "sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"}}),
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
    let mut last = 0;
    let began = Instant::now();
    for _ in 0..n {
        last = store.append("floor", last, &events, Some("running"))?;
    }
    Ok(began.elapsed() / count(n))
}

/// Spawning `true` and waiting for it, as plainly as the standard library does it.
fn spawn_floor(n: usize) -> BenchResult<Duration> {
    let began = Instant::now();
    for _ in 0..n {
        let status = std::process::Command::new("true").status()?;
        if !status.success() {
            return Err("`true` failed".into());
        }
    }
    Ok(began.elapsed() / count(n))
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

fn chain(name: &str, n: usize, step: &str) -> String {
    let mut yaml = format!("name: {name}\nsteps:\n");
    for i in 0..n {
        let needs = if i == 0 {
            String::new()
        } else {
            format!("    needs: [s{}]\n", i - 1)
        };
        let _ = write!(yaml, "  - id: s{i}\n{step}{needs}");
    }
    yaml
}

fn linear_read_workflow(n: usize) -> String {
    chain("reads", n, "    type: read_file\n    path: input.txt\n")
}

fn linear_command_workflow(n: usize) -> String {
    chain(
        "commands",
        n,
        "    type: run_command\n    command: [\"true\"]\n",
    )
}

fn fan_out_read_workflow(n: usize) -> String {
    let mut yaml = String::from("name: fan-reads\nsteps:\n");
    for i in 0..n {
        let _ = write!(
            yaml,
            "  - id: b{i}\n    type: read_file\n    path: input.txt\n"
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

fn fan_out_set_workflow(n: usize) -> String {
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

fn count(n: usize) -> u32 {
    u32::try_from(n.max(1)).unwrap_or(u32::MAX)
}

fn us(d: Duration) -> String {
    let micros = d.as_micros();
    if micros < 10_000 {
        format!("{micros} µs")
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    }
}

fn beyond(took: Duration, floor: Duration) -> String {
    let extra = took.as_micros() as i128 - floor.as_micros() as i128;
    format!("{extra:+} µs")
}
