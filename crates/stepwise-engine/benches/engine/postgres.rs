//! The same shapes of run on a PostgreSQL server, for the comparison with DBOS on the same
//! server (`benches/dbos/`): with `STEPWISE_BENCH_PG` naming an admin URL (a role that may
//! create databases), each scenario runs in a process of its own on a database of its own,
//! made before and dropped after; next to it, in the same process and round by round, the floor
//! it is judged against: one durable commit on that server (`BEGIN; INSERT one small row;
//! COMMIT` on a plain connection, as the DBOS bench measures it).

use std::time::{Duration, Instant};

use crate::bench::{Bench, count, median, micros, us};
use crate::workflows::{command_chain, fan_out_reads, fan_out_sets, linear_sets, read_chain};
use crate::{BenchResult, Lines, Sizes};

/// The scenarios run on PostgreSQL.
pub(crate) const SCENARIOS: [&str; 4] = ["pg-linear", "pg-reads", "pg-commands", "pg-fan-out"];

/// With `STEPWISE_BENCH_PG` set, runs each scenario of [`SCENARIOS`] in a process of this
/// binary (`me`) on a database of its own, adding what each prints to `report`.
pub(crate) fn run_all(
    me: &std::path::Path,
    benchmarking: bool,
    report: &mut String,
) -> BenchResult<()> {
    use std::fmt::Write as _;
    let Some(admin) = std::env::var("STEPWISE_BENCH_PG")
        .ok()
        .filter(|url| !url.is_empty())
    else {
        return Ok(());
    };
    writeln!(report, "postgresql (STEPWISE_BENCH_PG)")?;
    for name in SCENARIOS {
        let (url, database) = create_database(&admin)?;
        let mut child = std::process::Command::new(me);
        child.args(["--scenario", name, "--postgres", &url]);
        if benchmarking {
            child.arg("--full");
        }
        let out = child.output();
        drop_database(&admin, &database)?;
        let out = out?;
        if !out.status.success() {
            return Err(format!(
                "scenario {name} (postgresql) failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let (label, value) = line.split_once('\t').unwrap_or((line, ""));
            writeln!(report, "  {label:<68} {value}")?;
        }
    }
    Ok(())
}

/// A new database on the server `admin` names: its URL and name.
pub(crate) fn create_database(admin: &str) -> BenchResult<(String, String)> {
    let name = format!("stepwise_bench_{}", std::process::id());
    let mut client = postgres::Client::connect(admin, postgres::NoTls)?;
    client.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))?;
    client.batch_execute(&format!("CREATE DATABASE {name}"))?;
    Ok((with_database(admin, &name), name))
}

pub(crate) fn drop_database(admin: &str, name: &str) -> BenchResult<()> {
    let mut client = postgres::Client::connect(admin, postgres::NoTls)?;
    client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
    Ok(())
}

/// `url` naming database `name` instead of its own.
fn with_database(url: &str, name: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let path_start = url[after_scheme..]
        .find('/')
        .map_or(url.len(), |i| after_scheme + i);
    let query_start = url[path_start..]
        .find('?')
        .map_or(url.len(), |i| path_start + i);
    format!("{}/{name}{}", &url[..path_start], &url[query_start..])
}

/// One durable commit on the server: the median of `n`. The blocking client runs off the
/// async workers.
fn commit_floor(url: &str, n: usize) -> BenchResult<Duration> {
    tokio::task::block_in_place(|| commit_floor_here(url, n))
}

fn commit_floor_here(url: &str, n: usize) -> BenchResult<Duration> {
    let mut client = postgres::Client::connect(url, postgres::NoTls)?;
    client.batch_execute(
        "CREATE TABLE IF NOT EXISTS bench_floor (id BIGSERIAL PRIMARY KEY, body TEXT NOT NULL)",
    )?;
    let mut took = Vec::with_capacity(n);
    for i in 0..n.max(1) {
        let began = Instant::now();
        let mut tx = client.transaction()?;
        tx.execute(
            "INSERT INTO bench_floor (body) VALUES ($1)",
            &[&format!("row {i}")],
        )?;
        tx.commit()?;
        took.push(began.elapsed());
    }
    Ok(median(took))
}

pub(crate) async fn scenario(name: &str, url: &str, sizes: Sizes) -> BenchResult<Lines> {
    let mut per_step = Vec::new();
    let mut floors = Vec::new();
    let mut commits = 0.0;
    let (label, n) = match name {
        "pg-linear" => ("set", sizes.linear),
        "pg-reads" => ("read_file (small file)", sizes.reads),
        "pg-commands" => ("run_command (`true`, allowed by a rule)", sizes.commands),
        "pg-fan-out" => return fan_out(url, sizes).await,
        other => return Err(format!("no scenario `{other}`").into()),
    };
    for _ in 0..sizes.rounds {
        floors.push(commit_floor(url, sizes.floor)?);
        let bench = Bench::open_on(url)?;
        let yaml = match name {
            "pg-linear" => linear_sets(n),
            "pg-reads" => read_chain(n),
            _ => {
                bench.allow_commands()?;
                command_chain(n)
            }
        };
        let run = bench.run_to_end(name, &yaml).await?;
        // A chain of `set` steps has no operations: its figure is the whole run's.
        let step = if name == "pg-linear" {
            run.took / count(n)
        } else {
            run.operating / count(n - 1)
        };
        per_step.push(step);
        commits = run.commits as f64 / n as f64;
    }
    let step = median(per_step);
    let floor = median(floors);
    Ok(vec![
        (
            format!("linear {n} {label} steps on PostgreSQL: per step"),
            us(step),
        ),
        ("  commits per step".into(), format!("{commits:.3}")),
        (
            "  the floor: one durable commit on the same server".into(),
            us(floor),
        ),
        (
            "  per step beyond one commit".into(),
            format!("{:+} µs", micros(step) - micros(floor)),
        ),
    ])
}

async fn fan_out(url: &str, sizes: Sizes) -> BenchResult<Lines> {
    let mut reads = Vec::new();
    let mut sets = Vec::new();
    let mut floors = Vec::new();
    let mut commits = 0;
    for _ in 0..sizes.rounds {
        floors.push(commit_floor(url, sizes.floor)?);
        let bench = Bench::open_on(url)?;
        let run = bench
            .run_to_end("pg-fan-reads", &fan_out_reads(sizes.fan_out))
            .await?;
        reads.push(run.took);
        commits = run.commits;
        let run = bench
            .run_to_end("pg-fan-sets", &fan_out_sets(sizes.fan_out))
            .await?;
        sets.push(run.took);
    }
    Ok(vec![
        (
            format!(
                "{}-wide fan-out of read_file and join on PostgreSQL: whole run",
                sizes.fan_out
            ),
            us(median(reads)),
        ),
        (
            format!("  commits for its {} operations", sizes.fan_out),
            commits.to_string(),
        ),
        (
            format!(
                "{}-wide fan-out of set and join on PostgreSQL: whole run",
                sizes.fan_out
            ),
            us(median(sets)),
        ),
        (
            "  the floor: one durable commit on the same server".into(),
            us(median(floors)),
        ),
    ])
}
