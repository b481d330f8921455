//! The benchmark's engine (a fresh database and workspace in a temp directory, one run driven
//! to its end) and the figures' arithmetic.

use std::time::{Duration, Instant};

use stepwise_core::event::Event;
use stepwise_core::ids::RunId;
use stepwise_core::run::RunStatus;
use stepwise_engine::{Durability, Engine, EngineConfig, StartRun};

use crate::BenchResult;

/// One engine on a fresh database and workspace in a temp directory.
pub(crate) struct Bench {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) engine: Engine,
}

/// How a run went.
pub(crate) struct Ran {
    pub(crate) run_id: RunId,
    pub(crate) took: Duration,
    pub(crate) commits: u64,
    /// From the first operation's request to the last one's result, as recorded: the run's
    /// steady state, without starting it (compiling the workflow, creating the run).
    pub(crate) operating: Duration,
}

impl Bench {
    pub(crate) fn open(durability: Durability, hold: bool) -> BenchResult<Bench> {
        Bench::open_with(durability, hold, None)
    }

    /// [`Bench::open`] with these model settings (YAML).
    pub(crate) fn open_with(
        durability: Durability,
        hold: bool,
        settings: Option<&str>,
    ) -> BenchResult<Bench> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join("ws"))?;
        std::fs::write(dir.path().join("ws").join("input.txt"), "hello\n")?;
        let mut config = EngineConfig::new(dir.path().join("bench.db"));
        config.durability = durability;
        config.hold_waiting_runs = hold;
        if let Some(settings) = settings {
            let path = dir.path().join("settings.yaml");
            std::fs::write(&path, settings)?;
            config.settings = Some(path);
            config.settings_named = true;
        }
        let engine = Engine::open(config)?;
        Ok(Bench { dir, engine })
    }

    /// An engine on the PostgreSQL database `url` (its local files in a temp directory).
    pub(crate) fn open_on(url: &str) -> BenchResult<Bench> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join("ws"))?;
        std::fs::write(dir.path().join("ws").join("input.txt"), "hello\n")?;
        let mut config = EngineConfig::new(dir.path().join("bench.db"));
        config.shared = Some(stepwise_engine::SharedDatabase {
            url: url.to_string(),
            password_env: None,
        });
        let engine = Engine::open(config)?;
        Ok(Bench { dir, engine })
    }

    /// A 100 KiB text file: read on a blocking thread, not inline.
    pub(crate) fn write_large_input(&self) -> BenchResult<()> {
        let line = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n";
        std::fs::write(
            self.dir.path().join("ws").join("large.txt"),
            line.repeat(1600),
        )?;
        Ok(())
    }

    pub(crate) fn allow_commands(&self) -> BenchResult<()> {
        let policy = self.dir.path().join("ws").join(".stepwise");
        std::fs::create_dir_all(&policy)?;
        std::fs::write(
            policy.join("policy.yaml"),
            "rules:\n  - allow: run_command\n",
        )?;
        Ok(())
    }

    pub(crate) fn start(&self, name: &str, yaml: &str) -> BenchResult<StartRun> {
        let path = self.dir.path().join(format!("{name}.yaml"));
        std::fs::write(&path, yaml)?;
        Ok(StartRun {
            workflow_path: path,
            workspace: self.dir.path().join("ws"),
            inputs: Default::default(),
            trigger: "bench".into(),
            max_parallel: Some(128),
            budget_micro_usd: None,
            pauses: Default::default(),
            cause: None,
        })
    }

    pub(crate) async fn run_to_end(&self, name: &str, yaml: &str) -> BenchResult<Ran> {
        let start = self.start(name, yaml)?;
        let commits = self.engine.stats().commits;
        let began = Instant::now();
        let handle = self.engine.start_run(start).await?;
        let run_id = handle.run_id().clone();
        let status = handle.wait().await?;
        let took = began.elapsed();
        if status != RunStatus::Succeeded {
            return Err(format!("{name} ended {status:?}").into());
        }
        let loaded = self.engine.load_run(run_id.as_str()).await?;
        let at = |wanted: fn(&Event) -> bool| {
            loaded
                .events
                .iter()
                .filter(|(_, e)| wanted(e))
                .map(|(s, _)| s.recorded_at_ms)
                .collect::<Vec<_>>()
        };
        let started = at(|e| matches!(e, Event::OperationStarted { .. }));
        let answered = at(|e| matches!(e, Event::OperationSucceeded { .. }));
        let operating = match (started.first(), answered.last()) {
            (Some(first), Some(last)) => {
                Duration::from_millis(u64::try_from(last - first).unwrap_or(0))
            }
            _ => took,
        };
        Ok(Ran {
            run_id,
            took,
            commits: self.engine.stats().commits - commits,
            operating,
        })
    }

    /// The database's size once the WAL is folded back in.
    pub(crate) fn stored_bytes(&self) -> BenchResult<u64> {
        let conn = rusqlite::Connection::open(self.dir.path().join("bench.db"))?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        let pages: u64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let size: u64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        Ok(pages * size)
    }
}

pub(crate) fn median_of(
    rounds: usize,
    mut measure: impl FnMut() -> BenchResult<Duration>,
) -> BenchResult<Duration> {
    let mut all = Vec::new();
    for _ in 0..rounds.max(1) {
        all.push(measure()?);
    }
    Ok(median(all))
}

pub(crate) fn median<T: Ord + Copy + Default>(mut values: Vec<T>) -> T {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

pub(crate) fn count(n: usize) -> u32 {
    u32::try_from(n.max(1)).unwrap_or(u32::MAX)
}

pub(crate) fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

pub(crate) fn us(d: Duration) -> String {
    let micros = d.as_micros();
    if micros < 10_000 {
        format!("{micros} µs")
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    }
}
