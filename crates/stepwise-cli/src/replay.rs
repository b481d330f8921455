//! `stepwise replay`: re-drive a recorded run without side effects and compare decisions.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use stepwise_core::event::Event;
use stepwise_core::ids::EventSeq;
use stepwise_core::run::{ReplayError, replay as replay_log};
use stepwise_engine::{Engine, recorded_workflow};

use crate::exit::Exit;
use crate::output::one_line;

#[derive(Args)]
pub struct ReplayArgs {
    /// The run: its id, or any prefix of it that names one run (as `stepwise runs` shows).
    run: String,
    /// Replay against the workflow text recorded when the run started, instead of the file
    /// as it is now.
    #[arg(long, conflicts_with = "workflow")]
    recorded: bool,
    /// Replay against another workflow file.
    #[arg(long)]
    workflow: Option<PathBuf>,
}

pub async fn replay(engine: &Engine, args: ReplayArgs, json: bool) -> anyhow::Result<Exit> {
    let loaded = engine.load_run(&args.run).await?;
    let recorded_hash = loaded.row.workflow_hash.clone();
    let (workflow, against) = if args.recorded {
        (
            recorded_workflow(&loaded.row.run_id, &loaded.events)?,
            "the recorded workflow".to_string(),
        )
    } else {
        let path = args
            .workflow
            .unwrap_or_else(|| PathBuf::from(&loaded.row.workflow_path));
        let (workflow, _) = Engine::load_workflow(&path)?;
        (workflow, path.display().to_string())
    };
    let changed = workflow.source_hash != recorded_hash;
    let events: Vec<(EventSeq, Event)> = loaded
        .events
        .iter()
        .map(|(s, e)| (s.seq, e.clone()))
        .collect();
    let result = replay_log(Arc::clone(&workflow), &events);
    match result {
        Ok(report) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "run_id": loaded.row.run_id, "matches": true, "workflow_changed": changed, "report": report
                    }))?
                );
            } else {
                println!(
                    "replayed {} events against {against}: all {} decisions match; run {}; nothing was performed",
                    report.events,
                    report.decisions,
                    report.status.as_str()
                );
                if changed {
                    println!(
                        "note: the workflow file changed since the run, but not in a way that changes its decisions"
                    );
                }
            }
            Ok(Exit::Success)
        }
        Err(ReplayError::Diverged(d)) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "run_id": loaded.row.run_id, "matches": false, "workflow_changed": changed, "divergence": d
                    }))?
                );
            } else {
                println!("replay against {against} diverged at event {}:", d.seq);
                println!("  recorded: {}", describe(d.recorded.as_ref()));
                println!("  now:      {}", describe(d.expected.as_ref()));
                if changed {
                    println!(
                        "  the workflow changed since the run ({} → {})",
                        recorded_hash, workflow.source_hash
                    );
                }
            }
            Ok(Exit::Failure)
        }
        Err(other) => Err(other.into()),
    }
}

fn describe(event: Option<&Event>) -> String {
    match event {
        None => "(nothing)".into(),
        Some(e) => format!(
            "{} {}",
            e.type_name(),
            one_line(
                &e.to_payload().map(|p| p.to_string()).unwrap_or_default(),
                200
            )
        ),
    }
}
