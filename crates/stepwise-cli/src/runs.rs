//! Commands that drive a run: `run`, `approve`, `reject`, `resume`, `resolve`, `pause`, `cancel`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use stepwise_core::event::{Proposal, Resolution};
use stepwise_core::operation::CommandLine;
use stepwise_core::run::{EditedProposal, RunStatus};
use stepwise_engine::{Command, DriveOptions, Engine, StartRun};

use crate::exit::{Exit, InvalidInput};
use crate::output::{duration, run_status_text};
use crate::progress::Progress;

#[derive(Args)]
pub struct RunArgs {
    /// The workflow file.
    file: PathBuf,
    /// The directory the run may touch (default: the current directory).
    #[arg(long)]
    workspace: Option<PathBuf>,
    /// An input, `name=value` (repeatable).
    #[arg(long = "input", value_name = "NAME=VALUE")]
    inputs: Vec<String>,
    /// How many steps may run at once (default: the workflow's `max_parallel`, else 4).
    #[arg(long)]
    max_parallel: Option<usize>,
}

#[derive(Args)]
pub struct ApproveArgs {
    run: String,
    step: String,
    /// A note recorded with the decision.
    #[arg(long)]
    comment: Option<String>,
    /// The proposal hash you looked at (as `stepwise approvals` shows it, or a prefix); the
    /// approval is refused if the step now waits on another proposal.
    #[arg(long, value_name = "HASH")]
    proposal: Option<String>,
    /// Approve an edited proposal instead: for an edit, the file's new content; for a command,
    /// a JSON list (argv) or a shell line.
    #[arg(long, value_name = "FILE")]
    edit: Option<PathBuf>,
}

#[derive(Args)]
pub struct ResolveArgs {
    run: String,
    step: String,
    #[command(flatten)]
    choice: ResolveChoice,
}

/// Exactly one of these.
#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct ResolveChoice {
    /// Run the operation again.
    #[arg(long)]
    retry: bool,
    /// Give up on the step (it counts as skipped).
    #[arg(long)]
    skip: bool,
    /// The operation did happen: mark the step done.
    #[arg(long)]
    mark_done: bool,
}

pub async fn run(engine: &Engine, args: RunArgs, json: bool) -> anyhow::Result<Exit> {
    let mut inputs = BTreeMap::new();
    for pair in &args.inputs {
        let Some((name, value)) = pair.split_once('=') else {
            return Err(InvalidInput(format!("--input `{pair}` must look like name=value")).into());
        };
        inputs.insert(name.trim().to_string(), value.to_string());
    }
    let workspace = match args.workspace {
        Some(w) => w,
        None => std::env::current_dir().context("the current directory")?,
    };
    let start = StartRun {
        workflow_path: args.file,
        workspace,
        inputs,
        trigger: "cli".into(),
        max_parallel: args.max_parallel,
    };
    let run_id = engine.start_run(&start)?;
    if !json {
        let run = engine.store().find_run(&run_id)?;
        println!(
            "run {run_id}  {}  (workspace {})",
            run.workflow_name, run.workspace
        );
    }
    let progress = Progress::new(json);
    let status = drive_interruptible(engine, &run_id, None, &progress).await?;
    finish(engine, &run_id, status, json)
}

pub async fn approve(engine: &Engine, args: ApproveArgs, json: bool) -> anyhow::Result<Exit> {
    let edited = match &args.edit {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let loaded = engine.load_run(&args.run)?;
            let pending = loaded
                .state
                .step_state(&args.step)
                .and_then(|s| s.pending_approval.as_ref())
                .ok_or_else(|| {
                    InvalidInput(format!("step `{}` is not waiting for approval", args.step))
                })?;
            Some(match &pending.proposal {
                Proposal::RunCommand(_) => EditedProposal::Command(parse_command(&text)?),
                _ => EditedProposal::Content(text),
            })
        }
    };
    let command = Command::Approve {
        proposal: args.proposal,
        step: args.step,
        comment: args.comment,
        edited,
    };
    send(engine, &args.run, command, json).await
}

/// A command as a person writes it in a file: a JSON list is argv, anything else a shell line.
fn parse_command(text: &str) -> anyhow::Result<CommandLine> {
    let trimmed = text.trim();
    if trimmed.starts_with('[') {
        let argv: Vec<String> = serde_json::from_str(trimmed).map_err(|e| {
            InvalidInput(format!(
                "the edited command looks like a JSON list but is not one: {e}"
            ))
        })?;
        if argv.is_empty() {
            return Err(InvalidInput("the edited command is an empty list".into()).into());
        }
        return Ok(CommandLine::Argv(argv));
    }
    if trimmed.is_empty() {
        return Err(InvalidInput("the edited command is empty".into()).into());
    }
    Ok(CommandLine::Shell(trimmed.to_string()))
}

pub async fn resolve(engine: &Engine, args: ResolveArgs, json: bool) -> anyhow::Result<Exit> {
    let resolution = if args.choice.retry {
        Resolution::Retry
    } else if args.choice.skip {
        Resolution::Skip
    } else {
        Resolution::MarkDone
    };
    send(
        engine,
        &args.run,
        Command::Resolve {
            step: args.step,
            resolution,
        },
        json,
    )
    .await
}

pub async fn send(
    engine: &Engine,
    run: &str,
    command: Command,
    json: bool,
) -> anyhow::Result<Exit> {
    let run_id = engine.store().find_run(run)?.run_id;
    let progress = Progress::new(json);
    // The CLI has no live driver of its own to hand the command to: it drives the run here.
    let status = drive_interruptible(engine, &run_id, Some(command), &progress).await?;
    finish(engine, &run_id, status, json)
}

pub async fn resume(engine: &Engine, run: Option<&str>, json: bool) -> anyhow::Result<Exit> {
    let progress = Progress::new(json);
    match run {
        Some(run) => {
            let run_id = engine.store().find_run(run)?.run_id;
            let status =
                drive_interruptible(engine, &run_id, Some(Command::Resume), &progress).await?;
            finish(engine, &run_id, status, json)
        }
        None => {
            let results = engine.resume_all(&progress).await?;
            if results.is_empty() && !json {
                println!("no unfinished runs");
            }
            let mut worst = Exit::Success;
            let mut report = Vec::new();
            for (run_id, result) in results {
                let (text, exit) = match result {
                    Ok(status) => (
                        run_status_text(status).to_string(),
                        Exit::for_status(status),
                    ),
                    Err(e) => (format!("not resumed: {e}"), Exit::Failure),
                };
                if !json {
                    println!("run {run_id}: {text}");
                }
                report.push(serde_json::json!({ "run_id": run_id, "result": text }));
                worst = worse(worst, exit);
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
            Ok(worst)
        }
    }
}

/// Drives a run; Ctrl-C pauses it (running operations finish, nothing new starts, `resume`
/// continues it), a second Ctrl-C cancels it (running commands are killed).
async fn drive_interruptible(
    engine: &Engine,
    run_id: &str,
    command: Option<Command>,
    progress: &Progress,
) -> Result<RunStatus, stepwise_engine::EngineError> {
    let drive = engine.drive(run_id, command, progress, DriveOptions::default());
    tokio::pin!(drive);
    let mut interrupts = 0;
    loop {
        tokio::select! {
            status = &mut drive => return status,
            Ok(()) = tokio::signal::ctrl_c() => {
                interrupts += 1;
                let command = if interrupts == 1 {
                    eprintln!("\ninterrupted: pausing the run; running operations finish first (Ctrl-C again to cancel)");
                    Command::Pause
                } else {
                    eprintln!("\ninterrupted again: cancelling the run and killing its commands");
                    Command::Cancel
                };
                // The driver is live in this process: the command reaches it through the
                // engine while `drive` keeps being polled.
                let send = engine.send_to_live(run_id, command);
                tokio::pin!(send);
                tokio::select! {
                    status = &mut drive => return status,
                    _ = &mut send => {}
                }
            }
        }
    }
}

fn worse(a: Exit, b: Exit) -> Exit {
    let rank = |e: Exit| match e {
        Exit::Success => 0,
        Exit::Waiting => 1,
        Exit::Failure => 2,
        Exit::InvalidInput => 3,
    };
    if rank(b) > rank(a) { b } else { a }
}

/// Prints how the run stands and returns the exit code for it.
fn finish(engine: &Engine, run_id: &str, status: RunStatus, json: bool) -> anyhow::Result<Exit> {
    let loaded = engine.load_run(run_id)?;
    let elapsed = loaded.row.updated_at_ms - loaded.row.created_at_ms;
    let pending: Vec<(String, String, String)> = loaded
        .state
        .steps()
        .filter_map(|(def, s)| match s.status {
            stepwise_core::run::StepStatus::AwaitingApproval => Some((
                def.id.clone(),
                "approval".into(),
                s.pending_approval
                    .as_ref()
                    .map(|p| p.reason.clone())
                    .unwrap_or_default(),
            )),
            stepwise_core::run::StepStatus::OutcomeUnknown => Some((
                def.id.clone(),
                "resolution".into(),
                "outcome unknown after a crash".into(),
            )),
            _ => None,
        })
        .collect();
    if json {
        let waiting: Vec<_> = pending
            .iter()
            .map(|(step, what, reason)| serde_json::json!({ "step": step, "waits_for": what, "reason": reason }))
            .collect();
        let errors: Vec<_> = loaded
            .state
            .steps()
            .filter_map(|(def, s)| {
                s.error
                    .as_ref()
                    .map(|e| serde_json::json!({ "step": def.id, "error": e, "status": s.status }))
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "run_id": run_id,
                "status": status,
                "waiting": waiting,
                "errors": errors,
            }))?
        );
        return Ok(Exit::for_status(status));
    }
    println!(
        "run {run_id} {} after {}",
        run_status_text(status),
        duration(elapsed)
    );
    let short = &run_id[..run_id.len().min(8)];
    for (step, what, reason) in &pending {
        if what == "approval" {
            println!("  waiting for approval of `{step}`: {reason}");
            println!("    see it:  stepwise approvals {short}");
            println!(
                "    decide:  stepwise approve {short} {step}   |   stepwise reject {short} {step} --reason \"…\""
            );
        } else {
            println!("  `{step}`: {reason}");
            println!("    decide:  stepwise resolve {short} {step} --retry | --skip | --mark-done");
        }
    }
    if status == RunStatus::Paused {
        println!("  continue with: stepwise resume {short}");
    }
    for (def, s) in loaded.state.steps() {
        if let Some(error) = s
            .error
            .as_ref()
            .filter(|_| s.status == stepwise_core::run::StepStatus::Failed)
        {
            println!("  step `{}` failed: {error}", def.id);
        }
        if s.status == stepwise_core::run::StepStatus::Rejected {
            println!(
                "  step `{}` was rejected: {}",
                def.id,
                s.reason.clone().unwrap_or_default()
            );
        }
    }
    Ok(Exit::for_status(status))
}
