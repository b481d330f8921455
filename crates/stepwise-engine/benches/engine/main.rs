//! Engine benchmarks: `cargo bench -p stepwise-engine --bench engine`.
//!
//! Each scenario runs in a fresh process of this binary (so that one scenario's heap cannot
//! slow another's process spawns), once with SQLite `synchronous=FULL` and once with `NORMAL`,
//! against real SQLite files, a real workspace and real processes in a temp directory. Next to
//! what the engine costs it measures, in the same process and interleaved with it, the floors
//! it is judged against: one durable commit, one append of the events a step commits, and one
//! process spawn (`posix_spawn` of `true` with its output piped, what any engine pays; and,
//! for comparison, a fork-based spawn in its own group with a parent-death signal). Each
//! scenario's process forks the engine's command launcher first thing, as the CLI and the app
//! do. Figures are medians of several rounds.
//!
//! With `STEPWISE_BENCH_PG` naming a PostgreSQL admin URL (and the engine's `postgres`
//! feature: `cargo bench -p stepwise-engine --features postgres --bench engine`), chains and a
//! fan-out run on that server too, next to its commit floor (see `postgres`).
//!
//! Under `cargo test` (no `--bench` argument) every scenario runs once at a tiny size, as a
//! smoke test, and nothing is printed.

mod agent;
mod bench;
mod checkpoints;
mod floors;
mod postgres;
mod workflows;

use std::fmt::Write as _;
use std::process::Command as Process;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stepwise_core::event::Event;
use stepwise_core::ids::EventSeq;
use stepwise_core::run::{RunState, RunStatus, replay};
use stepwise_core::workflow::parse_workflow;
use stepwise_engine::{Command, Durability};
use stepwise_store::Store;

use bench::{Bench, count, median, median_of, micros, us};
use floors::{
    append_floor, append_floor_with, commit_floor, commit_floor_steady, spawn_as_engine,
    spawn_piped, spawn_plain,
};
use workflows::{
    command_chain, fan_out_reads, fan_out_sets, large_content, large_read_chain, linear_sets,
    read_chain,
};

pub(crate) type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// How big each scenario is.
#[derive(Clone, Copy)]
pub(crate) struct Sizes {
    rounds: usize,
    floor: usize,
    linear: usize,
    reads: usize,
    commands: usize,
    fan_out: usize,
    replay: usize,
    approvals: usize,
    agent_turns: usize,
    checkpoint_files: usize,
}

const FULL: Sizes = Sizes {
    rounds: 5,
    floor: 200,
    linear: 1_000,
    reads: 500,
    commands: 100,
    fan_out: 100,
    replay: 10_000,
    approvals: 200,
    agent_turns: 30,
    checkpoint_files: 20_000,
};
const SMOKE: Sizes = Sizes {
    rounds: 1,
    floor: 3,
    linear: 5,
    reads: 10,
    commands: 2,
    fan_out: 4,
    replay: 10,
    approvals: 2,
    agent_turns: 3,
    checkpoint_files: 200,
};

const SCENARIOS: [&str; 9] = [
    "agent",
    "checkpoints",
    "reads",
    "commands",
    "fan-out",
    "linear",
    "replay",
    "approvals",
    "floors",
];

fn main() -> BenchResult<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--scenario") {
        // As the CLI and the app do, before the process grows.
        stepwise_engine::start_command_launcher();
        // A child: run one scenario and print `name<TAB>value` lines.
        let name = args.get(i + 1).ok_or("--scenario needs a name")?;
        let durability = match args.iter().any(|a| a == "--normal") {
            true => Durability::Normal,
            false => Durability::Full,
        };
        let sizes = if args.iter().any(|a| a == "--full") {
            FULL
        } else {
            SMOKE
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let lines = match args.iter().position(|a| a == "--postgres") {
            Some(at) => {
                let url = args.get(at + 1).ok_or("--postgres needs a URL")?;
                runtime.block_on(postgres::scenario(name, url, sizes))?
            }
            None => runtime.block_on(scenario(name, durability, sizes))?,
        };
        for (label, value) in lines {
            println!("{label}\t{value}");
        }
        return Ok(());
    }
    let benchmarking = args.iter().any(|a| a == "--bench");
    let me = std::env::current_exe()?;
    let mut report = String::new();
    for sync in ["FULL", "NORMAL"] {
        writeln!(report, "synchronous={sync}")?;
        for name in SCENARIOS {
            let mut child = Process::new(&me);
            child.args(["--scenario", name]);
            if sync == "NORMAL" {
                child.arg("--normal");
            }
            if benchmarking {
                child.arg("--full");
            }
            let out = child.output()?;
            if !out.status.success() {
                return Err(format!(
                    "scenario {name} ({sync}) failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
                .into());
            }
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let (label, value) = line.split_once('\t').unwrap_or((line, ""));
                writeln!(report, "  {label:<68} {value}")?;
            }
        }
    }
    postgres::run_all(&me, benchmarking, &mut report)?;
    if benchmarking {
        print!("{report}");
    }
    Ok(())
}

pub(crate) type Lines = Vec<(String, String)>;

async fn scenario(name: &str, durability: Durability, sizes: Sizes) -> BenchResult<Lines> {
    match name {
        "floors" => floors(durability, sizes),
        "reads" => reads(durability, sizes).await,
        "commands" => commands(durability, sizes).await,
        "fan-out" => fan_out(durability, sizes).await,
        "linear" => linear(durability, sizes).await,
        "replay" => replay_big(durability, sizes).await,
        "approvals" => approvals(durability, sizes).await,
        "agent" => agent::agent_calls(durability, sizes).await,
        "checkpoints" => {
            checkpoints::checkpoint_costs(durability, sizes.checkpoint_files, sizes.rounds).await
        }
        other => Err(format!("no scenario `{other}`").into()),
    }
}

fn floors(durability: Durability, sizes: Sizes) -> BenchResult<Lines> {
    let commit = median_of(sizes.rounds, || commit_floor(durability, sizes.floor))?;
    let append = median_of(sizes.rounds, || append_floor(durability, sizes.floor))?;
    let spawn = median_of(sizes.rounds, || spawn_plain(sizes.floor))?;
    let piped = median_of(sizes.rounds, || spawn_piped(sizes.floor))?;
    let spawn_engine = median_of(sizes.rounds, || spawn_as_engine(sizes.floor))?;
    Ok(vec![
        (
            "floor: one durable commit of one small row".into(),
            us(commit),
        ),
        (
            "floor: one Store::append of the 4 events a read step records".into(),
            us(append),
        ),
        (
            "floor: spawn `true` and wait (posix_spawn)".into(),
            us(spawn),
        ),
        (
            "floor: spawn `true`, output piped (posix_spawn)".into(),
            us(piped),
        ),
        (
            "floor: spawn `true` in its own group, parent-death signal, output piped".into(),
            us(spawn_engine),
        ),
    ])
}

/// A chain of read_file steps, each round next to the commit it is judged against. Small
/// reads are done on the driver's thread and committed together with their results, so the
/// chain shares commits; a chain of large files (read on a blocking thread, one commit each)
/// shows the other path.
async fn reads(durability: Durability, sizes: Sizes) -> BenchResult<Lines> {
    let mut per_step = Vec::new();
    let mut per_large = Vec::new();
    let mut floor = Vec::new();
    let mut beyond = Vec::new();
    let mut beyond_large = Vec::new();
    let mut large_floors = Vec::new();
    let mut commits = 0.0;
    let mut commits_large = 0.0;
    for _ in 0..sizes.rounds {
        let f = commit_floor(durability, sizes.floor)?;
        floor.push(f);
        let bench = Bench::open(durability, false)?;
        let run = bench.run_to_end("reads", &read_chain(sizes.reads)).await?;
        let p = run.operating / count(sizes.reads - 1);
        per_step.push(p);
        commits = run.commits as f64 / sizes.reads as f64;
        beyond.push(micros(p) - micros(f));
        let bench = Bench::open(durability, false)?;
        bench.write_large_input()?;
        let run = bench
            .run_to_end("large-reads", &large_read_chain(sizes.reads / 5))
            .await?;
        let p = run.operating / count(sizes.reads / 5 - 1);
        per_large.push(p);
        commits_large = run.commits as f64 / (sizes.reads / 5) as f64;
        // Its commit stores the file's 100 KiB: judged against an append of the same.
        let large_floor = append_floor_with(durability, sizes.reads / 5, &large_content())?;
        large_floors.push(large_floor);
        beyond_large.push(micros(p) - micros(large_floor));
    }
    Ok(vec![
        (
            format!(
                "linear {} read_file steps (small file): per step, steady state",
                sizes.reads
            ),
            us(median(per_step)),
        ),
        ("  commits per read step".into(), format!("{commits:.3}")),
        (
            "  read step beyond one commit (target ≤ +30 µs at FULL)".into(),
            format!("{:+} µs", median(beyond)),
        ),
        (
            format!(
                "linear {} read_file steps (100 KiB file): per step, steady state",
                sizes.reads / 5
            ),
            us(median(per_large)),
        ),
        (
            "  commits per read step".into(),
            format!("{commits_large:.3}"),
        ),
        (
            "  read step beyond one append of the same 100 KiB (target ≤ +30 µs at FULL)".into(),
            format!("{:+} µs", median(beyond_large)),
        ),
        (
            "  the append it is judged against (the 4 events, 100 KiB content)".into(),
            us(median(large_floors)),
        ),
        (
            "  the commit it is judged against: one durable commit".into(),
            us(median(floor)),
        ),
    ])
}

/// A chain of command steps (allowed by a rule), each round next to its floors: the plain
/// spawn of `true` with its output piped (the target's floor) and the fork-based spawn the
/// engine measured itself against before (shown for comparison).
async fn commands(durability: Durability, sizes: Sizes) -> BenchResult<Lines> {
    let mut per_step = Vec::new();
    let mut beyond = Vec::new();
    let mut beyond_forked = Vec::new();
    let mut spawns = Vec::new();
    let mut commits = Vec::new();
    let mut steady_commits = Vec::new();
    let mut beyond_steady = Vec::new();
    let mut commits_per_step = 0.0;
    for _ in 0..sizes.rounds {
        let spawn = spawn_piped(sizes.commands)?;
        let forked = spawn_as_engine(sizes.commands)?;
        let commit = commit_floor(durability, sizes.commands)?;
        let steady = commit_floor_steady(durability, sizes.commands)?;
        let bench = Bench::open(durability, false)?;
        bench.allow_commands()?;
        let run = bench
            .run_to_end("commands", &command_chain(sizes.commands))
            .await?;
        let p = run.operating / count(sizes.commands - 1);
        per_step.push(p);
        spawns.push(spawn);
        commits.push(commit);
        steady_commits.push(steady);
        beyond.push(micros(p) - micros(spawn + commit * 2));
        beyond_steady.push(micros(p) - micros(spawn + steady * 2));
        beyond_forked.push(micros(p) - micros(forked + commit * 2));
        commits_per_step = run.commits as f64 / sizes.commands as f64;
    }
    Ok(vec![
        (
            format!(
                "linear {} run_command steps: per step (steady state)",
                sizes.commands
            ),
            us(median(per_step)),
        ),
        (
            "  command step beyond spawn + two commits (target ≤ 100 µs at FULL)".into(),
            format!("{:+} µs", median(beyond)),
        ),
        (
            "  the spawn it is judged against: `true`, output piped (posix_spawn)".into(),
            us(median(spawns)),
        ),
        (
            "  the commit it is judged against: one durable commit".into(),
            us(median(commits)),
        ),
        (
            "  beyond spawn + two commits to a log at its steady size".into(),
            format!("{:+} µs", median(beyond_steady)),
        ),
        (
            "  one durable commit to a log at its steady size (not growing)".into(),
            us(median(steady_commits)),
        ),
        (
            "  beyond a fork-based spawn (own group, parent-death signal) + two commits".into(),
            format!("{:+} µs", median(beyond_forked)),
        ),
        (
            "  commits per command step".into(),
            format!("{commits_per_step:.2}"),
        ),
    ])
}

async fn fan_out(durability: Durability, sizes: Sizes) -> BenchResult<Lines> {
    let mut took = Vec::new();
    let mut commits = 0;
    for _ in 0..sizes.rounds {
        let bench = Bench::open(durability, false)?;
        let run = bench
            .run_to_end("fan-reads", &fan_out_reads(sizes.fan_out))
            .await?;
        took.push(run.took);
        commits = run.commits;
    }
    let bench = Bench::open(durability, false)?;
    let sets = bench
        .run_to_end("fan", &fan_out_sets(sizes.fan_out))
        .await?;
    Ok(vec![
        (
            format!(
                "{}-wide fan-out of read_file and join: whole run",
                sizes.fan_out
            ),
            us(median(took)),
        ),
        (
            format!(
                "  commits for its {} operations (one per branch without group commit)",
                sizes.fan_out
            ),
            commits.to_string(),
        ),
        (
            format!("{}-wide fan-out of set and join: whole run", sizes.fan_out),
            us(sets.took),
        ),
    ])
}

/// A chain of `set` steps, started and run to its end. Starting it compiles the workflow, which
/// is most of the figure, so that share is shown too: a slowdown then says where it is.
async fn linear(durability: Durability, sizes: Sizes) -> BenchResult<Lines> {
    let bench = Bench::open(durability, false)?;
    let yaml = linear_sets(sizes.linear);
    let run = bench.run_to_end("linear", &yaml).await?;
    let began = Instant::now();
    parse_workflow("linear.yaml", &yaml).map_err(|e| e.to_string())?;
    let compile = began.elapsed();
    Ok(vec![
        (
            format!("linear {} set steps: per step (whole run)", sizes.linear),
            us(run.took / count(sizes.linear)),
        ),
        (
            "  of which compiling the workflow file (measured again after the run)".into(),
            us(compile / count(sizes.linear)),
        ),
        (
            format!("linear {} set steps: bytes stored per step", sizes.linear),
            format!("{} B", bench.stored_bytes()? / sizes.linear as u64),
        ),
    ])
}

/// What opening an old run costs, piece by piece, with nothing cached.
async fn replay_big(durability: Durability, sizes: Sizes) -> BenchResult<Lines> {
    let n = sizes.replay;
    let bench = Bench::open(durability, false)?;
    let run = bench.run_to_end("big", &linear_sets(n)).await?;
    let bytes = bench.stored_bytes()?;
    let store = Store::open_reader(&bench.dir.path().join("bench.db"))?;
    let began = Instant::now();
    let stored = store.load_events(&run.run_id, EventSeq::ZERO)?;
    let read_took = began.elapsed();
    let began = Instant::now();
    let events: Vec<(EventSeq, Event)> = stored
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
            format!("linear {n} set steps: bytes stored per step"),
            format!("{} B", bytes / n as u64),
        ),
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

/// Approvals sent in-process to a run the engine holds while it waits (as the app does).
async fn approvals(durability: Durability, sizes: Sizes) -> BenchResult<Lines> {
    let n = sizes.approvals;
    let bench = Bench::open(durability, true)?;
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
    let handle = bench
        .engine
        .start_run(bench.start("approvals", &yaml)?)
        .await?;
    let run_id = handle.run_id().clone();
    let mut events = bench.engine.subscribe_run(run_id.as_str(), EventSeq::ZERO);
    let mut total = Duration::ZERO;
    for i in 0..n {
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
            step: format!("r{i}").into(),
            comment: None,
            edited: None,
            proposal: None,
        };
        bench.engine.send(run_id.as_str(), command).await?;
        total += began.elapsed();
    }
    let status = handle.wait().await?;
    if status != RunStatus::Succeeded {
        return Err(format!("approvals run ended {status:?}").into());
    }
    Ok(vec![(
        "approval round trip (send → applied and recorded → step running)".into(),
        us(total / count(n)),
    )])
}
