//! `stepwise replay`: re-drive a recorded run without side effects and compare decisions.

use std::path::PathBuf;

use clap::Args;
use stepwise_core::event::Event;
use stepwise_engine::{Engine, ReplayAgainst};

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
    let against = match (args.recorded, args.workflow) {
        (true, _) => ReplayAgainst::Recorded,
        (false, Some(path)) => ReplayAgainst::File(path),
        (false, None) => ReplayAgainst::CurrentFile,
    };
    let replayed = engine.replay(&args.run, against).await?;
    let exit = report(&replayed, json)?;
    if !json {
        report_children(&replayed, 1);
    }
    Ok(if replayed.all_match() {
        exit
    } else {
        Exit::Failure
    })
}

/// Each child run's replay, one line each, under its parent's.
fn report_children(replayed: &stepwise_engine::Replayed, depth: usize) {
    for (step, child) in &replayed.children {
        let indent = "  ".repeat(depth);
        match &child.verdict {
            Ok(report) => println!(
                "{indent}child run {} (step `{step}`): replayed {} events, all {} decisions match",
                child.run_id, report.events, report.decisions
            ),
            Err(d) => println!(
                "{indent}child run {} (step `{step}`): diverged at event {}: recorded {}, now {}",
                child.run_id,
                d.seq,
                describe(d.recorded.as_ref()),
                describe(d.expected.as_ref())
            ),
        }
        report_children(child, depth + 1);
    }
}

fn report(replayed: &stepwise_engine::Replayed, json: bool) -> anyhow::Result<Exit> {
    let changed = replayed.workflow_changed;
    let against = &replayed.against;
    match &replayed.verdict {
        Ok(report) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "run_id": replayed.run_id, "matches": true, "workflow_changed": changed, "report": report
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
        Err(d) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "run_id": replayed.run_id, "matches": false, "workflow_changed": changed, "divergence": d
                    }))?
                );
            } else {
                let at_step = d
                    .recorded
                    .as_ref()
                    .and_then(Event::step)
                    .or_else(|| d.expected.as_ref().and_then(Event::step))
                    .map(|step| format!(", step `{step}`"))
                    .unwrap_or_default();
                println!(
                    "replay against {against} diverged at event {}{at_step}:",
                    d.seq
                );
                println!("  recorded: {}", describe(d.recorded.as_ref()));
                println!("  now:      {}", describe(d.expected.as_ref()));
                if changed {
                    let (recorded, now) = &replayed.hashes;
                    println!("  the workflow changed since the run ({recorded} → {now})");
                }
            }
            Ok(Exit::Failure)
        }
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
