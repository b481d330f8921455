//! `stepwise db copy --from A --to B`: moves every run between a SQLite file and a team's
//! PostgreSQL database (either way), verified: each run's events counted, its hash chain
//! recomputed where it landed and compared with the source's, every blob it names checked
//! (see `stepwise_engine::db_copy`), then a sample of the copied runs replayed in the
//! destination with no side effect.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;
use stepwise_engine::db_copy::{copy_runs, open_database};
use stepwise_engine::{Engine, EngineConfig, Named, ReplayAgainst};

use crate::exit::Exit;

#[derive(Subcommand)]
pub enum DbCommand {
    /// Copy every run from one database to another (a SQLite file or a postgres:// URL, either
    /// way), with its log, blobs and commands; verify each run where it landed (event count,
    /// every event's hash, every blob), then replay a sample there with no side effect. A run
    /// already copied is left as it is, so a copy cut short is finished by running it again.
    Copy {
        /// The database runs are copied from (a SQLite file or a postgres:// URL).
        #[arg(long)]
        from: String,
        /// The database runs are copied to (created if need be).
        #[arg(long)]
        to: String,
        /// How many of the runs to replay in the destination afterwards (0: none).
        #[arg(long, default_value_t = 10)]
        replay: usize,
    },
}

pub fn run(command: DbCommand, named: Named, json: bool) -> anyhow::Result<Exit> {
    match command {
        DbCommand::Copy { from, to, replay } => copy(&from, &to, replay, named, json),
    }
}

fn copy(from: &str, to: &str, replay: usize, named: Named, json: bool) -> anyhow::Result<Exit> {
    // The settings' password variable, for whichever side is on PostgreSQL.
    let password_env = EngineConfig::from_env(named)?
        .shared
        .and_then(|shared| shared.password_env);
    let source = open_database(from, password_env.as_deref(), true)?;
    let mut destination = open_database(to, password_env.as_deref(), false)?;
    let mut done = 0u64;
    let report = copy_runs(&source, &mut destination, &mut |_| {
        done += 1;
        if !json && done.is_multiple_of(100) {
            eprintln!("  {done} runs…");
        }
    })?;
    let runs = destination.list_runs(usize::MAX)?;
    drop(source);
    drop(destination);

    // A sample spread over every run, replayed where it now lives.
    let step = runs.len().div_ceil(replay.max(1)).max(1);
    let sample: Vec<String> = if replay == 0 {
        Vec::new()
    } else {
        runs.iter()
            .step_by(step)
            .take(replay)
            .map(|run| run.run_id.to_string())
            .collect()
    };
    let mut config = EngineConfig::for_user(Some(PathBuf::from(to)), None, None)?;
    config.shared = config.shared.map(|mut shared| {
        shared.password_env = password_env.clone();
        shared
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let replayed: Vec<(String, Result<bool, String>)> = runtime.block_on(async {
        let engine = Engine::open(config)?;
        let mut replayed = Vec::with_capacity(sample.len());
        for run in sample {
            let verdict = engine
                .replay(&run, ReplayAgainst::Recorded)
                .await
                .map(|replayed| replayed.all_match())
                .map_err(|error| error.to_string());
            replayed.push((run, verdict));
        }
        engine.shutdown().await;
        Ok::<_, anyhow::Error>(replayed)
    })?;
    let all_replayed = replayed.iter().all(|(_, verdict)| verdict == &Ok(true));
    if json {
        let replays: Vec<_> = replayed
            .iter()
            .map(|(run, verdict)| match verdict {
                Ok(matched) => json!({"run_id": run, "matches": matched}),
                Err(error) => json!({"run_id": run, "matches": false, "error": error}),
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"copy": report, "replayed": replays}))?
        );
    } else {
        println!(
            "copied {} runs ({} events, {} commands, {} signals, {} kept file versions); {} were there already",
            report.copied,
            report.events,
            report.commands,
            report.signals,
            report.kept_files,
            report.already_there
        );
        println!(
            "verified {} runs: as many events, every event's hash and every blob as in the source",
            report.verified
        );
        for (run, verdict) in &replayed {
            match verdict {
                Ok(true) => println!("replayed {run}: every decision matches"),
                Ok(false) => println!(
                    "replayed {run}: DIVERGES (stepwise replay {run} --recorded says where)"
                ),
                Err(error) => println!("replayed {run}: could not replay: {error}"),
            }
        }
    }
    Ok(if all_replayed {
        Exit::Success
    } else {
        Exit::Failure
    })
}
