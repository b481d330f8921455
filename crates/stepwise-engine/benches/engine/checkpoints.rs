//! Workspace checkpoints against a workspace of many files (20,000 at full size, generated
//! here): what the engine's look before and after a command costs, cold (a fresh engine and
//! database: every file read, hashed and stored) and warm (only what moved read again), and
//! what the database grows by. Measured as users meet it: commands run by the engine, each
//! changing one file, against the same commands in a workspace of one file.

use std::time::Duration;

use stepwise_engine::Durability;

use crate::BenchResult;
use crate::bench::{Bench, count, median, micros, us};
use crate::workflows::chain_of;

/// Commands in the warm chain.
const WARM_STEPS: usize = 10;

/// A chain of `n` commands, command `i` appending a line to file `i` of the first directory.
fn changing_chain(name: &str, n: usize) -> String {
    chain_of(name, n, |i| {
        format!("    type: run_command\n    command: \"echo changed >> src/d000/f{i:03}.txt\"\n")
    })
}

/// `files` text files of about 1 KiB, 100 to a directory.
fn generate(bench: &Bench, files: usize) -> BenchResult<u64> {
    let ws = bench.dir.path().join("ws");
    let mut bytes = 0;
    for i in 0..files.max(WARM_STEPS) {
        let dir = ws.join("src").join(format!("d{:03}", i / 100));
        if i % 100 == 0 {
            std::fs::create_dir_all(&dir)?;
        }
        let line = format!("file {i}: the quick brown fox jumps over the lazy dog\n");
        let content = line.repeat(1024 / line.len() + 1);
        bytes += content.len() as u64;
        std::fs::write(dir.join(format!("f{:03}.txt", i % 100)), content)?;
    }
    Ok(bytes)
}

fn allow_shell(bench: &Bench) -> BenchResult<()> {
    let policy = bench.dir.path().join("ws").join(".stepwise");
    std::fs::create_dir_all(&policy)?;
    std::fs::write(
        policy.join("policy.yaml"),
        "rules:\n  - allow: run_command\n    unchecked_shell: true\n",
    )?;
    Ok(())
}

/// One round: a step's time (from its command's request to its result) in a fresh engine over
/// `files` files, per step in a warm chain over them, and per step over an empty workspace;
/// and the database's size at each point.
struct Round {
    first: Duration,
    warm: Duration,
    base: Duration,
    stored_first: u64,
    grown_per_step: u64,
    workspace_bytes: u64,
}

async fn round(durability: Durability, files: usize) -> BenchResult<Round> {
    let bench = Bench::open(durability, false)?;
    allow_shell(&bench)?;
    let workspace_bytes = generate(&bench, files)?;
    let before = bench.stored_bytes()?;
    let first = bench
        .run_to_end("first", &changing_chain("first", 1))
        .await?;
    let stored_first = bench.stored_bytes()?.saturating_sub(before);
    let warm = bench
        .run_to_end("warm", &changing_chain("warm", WARM_STEPS))
        .await?;
    let grown = bench.stored_bytes()?.saturating_sub(before + stored_first);

    let empty = Bench::open(durability, false)?;
    allow_shell(&empty)?;
    generate(&empty, 0)?;
    let base = empty
        .run_to_end("base", &changing_chain("base", WARM_STEPS))
        .await?;
    Ok(Round {
        first: first.operating,
        warm: warm.operating / count(WARM_STEPS),
        base: base.operating / count(WARM_STEPS),
        stored_first,
        grown_per_step: grown / WARM_STEPS as u64,
        workspace_bytes,
    })
}

pub(crate) async fn checkpoint_costs(
    durability: Durability,
    files: usize,
    rounds: usize,
) -> BenchResult<Vec<(String, String)>> {
    let mut warm_checkpoints = Vec::new();
    let mut first_checkpoints = Vec::new();
    let mut steps = Vec::new();
    let mut last = None;
    for _ in 0..rounds.max(1) {
        let r = round(durability, files).await?;
        // A step over the workspace takes two checkpoints; over an empty one, next to none.
        let warm = (micros(r.warm) - micros(r.base)).max(0) / 2;
        // The first step's first checkpoint is cold, its second warm.
        let first = micros(r.first) - micros(r.warm) + warm;
        warm_checkpoints.push(warm);
        first_checkpoints.push(first);
        steps.push(r.warm);
        last = Some(r);
    }
    let last = last.ok_or("no round ran")?;
    let ms = |micros: i64| format!("{:.1} ms", micros as f64 / 1000.0);
    Ok(vec![
        (
            format!("checkpoint of {files} files with one changed (target ≤ 50 ms)"),
            ms(median(warm_checkpoints)),
        ),
        (
            format!("first checkpoint of {files} files, fresh engine and database (target ≤ 2 s)"),
            ms(median(first_checkpoints)),
        ),
        (
            "  a command step changing one file, two checkpoints included".into(),
            us(median(steps)),
        ),
        (
            "  the same step in a workspace of one file".into(),
            us(last.base),
        ),
        (
            format!(
                "  stored by the first checkpoint (the workspace's {} KiB of content, once)",
                last.workspace_bytes / 1024
            ),
            format!("{} KiB", last.stored_first / 1024),
        ),
        (
            "  the database's growth per later command changing one 1 KiB file".into(),
            format!("{} KiB", last.grown_per_step / 1024),
        ),
    ])
}
