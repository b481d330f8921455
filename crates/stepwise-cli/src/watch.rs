//! `stepwise watch [--workspace DIR]…`: watches workspaces for workflows with triggers (`on:`
//! files, schedule, signal) and starts and drives their runs here, until Ctrl-C (or SIGTERM).
//! Prints what it watches and each run it starts (with `--json`, one JSON object per line).

use std::io::Write as _;
use std::path::PathBuf;

use clap::Args;
use stepwise_engine::{Command, Engine, WatchEvent, WatchOptions};
use tokio::signal::unix::{SignalKind, signal};

use crate::exit::Exit;

/// The variable naming a file that holds the time schedules see (milliseconds since the
/// epoch), for tests that cannot wait for the clock.
const CLOCK_FILE_VAR: &str = "STEPWISE_WATCH_CLOCK";

#[derive(Args)]
pub struct WatchArgs {
    /// A workspace whose `workflows/` to watch (again for more; default: the current
    /// directory).
    #[arg(long, value_name = "DIR")]
    workspace: Vec<PathBuf>,
}

pub async fn watch(engine: &Engine, args: WatchArgs, json: bool) -> anyhow::Result<Exit> {
    let workspaces = if args.workspace.is_empty() {
        vec![std::env::current_dir()?]
    } else {
        args.workspace
    };
    let mut interrupts = crate::runs::interrupts()?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut watcher = engine
        .watch(WatchOptions {
            workspaces,
            clock_file: std::env::var_os(CLOCK_FILE_VAR).map(PathBuf::from),
        })
        .await?;
    let mut started = Vec::new();
    loop {
        tokio::select! {
            event = watcher.next_event() => match event {
                Some(event) => {
                    if let WatchEvent::Started { run_id, .. } = &event {
                        started.push(run_id.clone());
                    }
                    say(&shown(&event, json));
                }
                None => break,
            },
            _ = interrupts.recv() => break,
            _ = terminate.recv() => break,
        }
    }
    watcher.stop();
    // The runs it started finish what they are doing (as when their driver is let go of);
    // asked again, they pause.
    let driven: Vec<_> = started
        .into_iter()
        .filter(|run| engine.drives(run))
        .collect();
    if driven.is_empty() {
        return Ok(Exit::Success);
    }
    if !json {
        say(&format!(
            "stopped watching; {} run{} it started go on until they finish or wait (Ctrl-C again pauses them)",
            driven.len(),
            if driven.len() == 1 { "" } else { "s" }
        ));
    }
    tokio::select! {
        () = engine.idle() => {}
        _ = interrupts.recv() => pause(engine, &driven).await,
        _ = terminate.recv() => pause(engine, &driven).await,
    }
    Ok(Exit::Success)
}

async fn pause(engine: &Engine, runs: &[stepwise_core::ids::RunId]) {
    for run in runs {
        if engine.drives(run)
            && let Err(error) = engine.send(run.as_str(), Command::Pause).await
        {
            say(&format!("could not pause run {run}: {error}"));
        }
    }
}

fn shown(event: &WatchEvent, json: bool) -> String {
    if json {
        return serde_json::to_string(event).unwrap_or_default();
    }
    match event {
        WatchEvent::Watching {
            workspace,
            workflows,
            problems,
        } => {
            let mut lines = vec![format!(
                "watching {workspace}: {} workflow{} with triggers",
                workflows.len(),
                if workflows.len() == 1 { "" } else { "s" }
            )];
            for workflow in workflows {
                lines.push(format!(
                    "  {} ({}): {}",
                    workflow.name,
                    workflow.path,
                    workflow.triggers.join("; ")
                ));
            }
            for problem in problems {
                lines.push(format!("  not watched: {problem}"));
            }
            lines.join("\n")
        }
        WatchEvent::Started {
            run_id,
            workflow,
            cause,
            ..
        } => format!("started run {run_id} of {workflow}: {}", cause.summary),
        WatchEvent::Problem { message } => format!("problem: {message}"),
    }
}

/// Prints a line; a closed stdout must not stop the watcher.
fn say(line: &str) {
    let _ = writeln!(std::io::stdout(), "{line}");
}
