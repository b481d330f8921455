//! Commands that drive a run: `run`, `approve`, `reject`, `resume`, `resolve`, `pause`, `cancel`.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use stepwise_core::event::{Proposal, Resolution, StepPauses};
use stepwise_core::ids::{EventSeq, RunId, StepId};
use stepwise_core::run::{RunStatus, StepStatus};
use stepwise_engine::{Command, Engine, EngineError, RunHandle, StartRun};
use tokio::signal::unix::{Signal, SignalKind, signal};

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
    /// How many steps may run at once, at least 1 (default: the workflow's `max_parallel`,
    /// else 4).
    #[arg(long, value_parser = at_least_one)]
    max_parallel: Option<usize>,
    /// What the run may spend on model calls, in dollars (overrides the workflow's
    /// `budget.usd`).
    #[arg(long, value_name = "USD", value_parser = dollars)]
    budget_usd: Option<u64>,
    /// Step through the run: wait for `stepwise continue` before each step starts.
    #[arg(long)]
    step: bool,
    /// Wait for `stepwise continue` before this step starts (repeatable), besides the
    /// workflow's own `breakpoints`.
    #[arg(long = "break", value_name = "STEP")]
    breakpoints: Vec<String>,
}

#[derive(Args)]
pub struct ResolveArgs {
    /// The run: its id, or any prefix of it that names one run (as `stepwise runs` shows).
    run: String,
    /// The step, by its `id` in the workflow.
    step: String,
    #[command(flatten)]
    choice: ResolveChoice,
    #[command(flatten)]
    wait: Wait,
}

/// Whether a command follows the run after it is applied.
#[derive(Args, Clone, Copy)]
pub struct Wait {
    /// Return as soon as the command is applied (exit 0) or refused (exit 2), instead of
    /// following the run until it finishes or waits again. (When no other process drives the
    /// run, this one drives it, and still does so until it waits.)
    #[arg(long)]
    no_wait: bool,
}

/// Exactly one of these.
#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct ResolveChoice {
    /// Run the operation again.
    #[arg(long)]
    retry: bool,
    /// Give up on the step (it counts as skipped). For an agent step's call: the agent is
    /// told its outcome is unknown and goes on (cancel the run to stop it).
    #[arg(long)]
    skip: bool,
    /// The operation did happen: mark the step done. For an agent step's call: the agent is
    /// told it happened and goes on.
    #[arg(long)]
    mark_done: bool,
}

/// `--budget-usd`: dollars, 0 or more, as micro-dollars.
fn dollars(text: &str) -> Result<u64, String> {
    match text.trim().trim_start_matches('$').parse::<f64>() {
        Ok(usd) if usd.is_finite() && (0.0..=1e9).contains(&usd) => {
            Ok((usd * 1_000_000.0).round() as u64)
        }
        _ => Err(format!("`{text}` is not an amount of dollars (e.g. 0.50)")),
    }
}

/// `--max-parallel`: a whole number, at least 1 (as `max_parallel` in a workflow).
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1 (0 would never run a step)".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{text}` is not a whole number")),
    }
}

/// `--input name=value` pairs, each name once.
pub fn parse_inputs(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut inputs = BTreeMap::new();
    for pair in pairs {
        let Some((name, value)) = pair.split_once('=') else {
            return Err(InvalidInput(format!("--input `{pair}` must look like name=value")).into());
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(InvalidInput(format!("--input `{pair}` has no name before `=`")).into());
        }
        if inputs.insert(name.to_string(), value.to_string()).is_some() {
            return Err(InvalidInput(format!(
                "--input `{name}` is given more than once; give each input once"
            ))
            .into());
        }
    }
    Ok(inputs)
}

pub async fn run(engine: &Engine, args: RunArgs, json: bool) -> anyhow::Result<Exit> {
    let inputs = parse_inputs(&args.inputs)?;
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
        budget_micro_usd: args.budget_usd,
        pauses: StepPauses {
            every_step: args.step,
            breakpoints: args
                .breakpoints
                .iter()
                .map(|s| StepId::from(s.as_str()))
                .collect(),
        },
        cause: None,
    };
    // Listening for Ctrl-C before anything starts: a signal cannot slip in before it is heard.
    let mut interrupts = interrupts()?;
    let handle = engine.start_run(start).await?;
    follow_new_run(engine, handle, &mut interrupts, json).await
}

/// Follows a run this process just started until it finishes or waits, printing its
/// progress, and says how it stands.
pub async fn follow_new_run(
    engine: &Engine,
    handle: RunHandle,
    interrupts: &mut Signal,
    json: bool,
) -> anyhow::Result<Exit> {
    let run_id = handle.run_id().clone();
    if !json {
        let run = engine.find_run(run_id.as_str()).await?;
        say(&format!(
            "run {run_id}  {}  (workspace {})",
            run.workflow_name, run.workspace
        ));
    }
    let progress = Progress::new(json);
    let status = follow_until(
        engine,
        &run_id,
        EventSeq::ZERO,
        handle.wait(),
        &progress,
        interrupts,
    )
    .await?;
    finish(engine, &run_id, status, json).await
}

pub async fn resolve(engine: &Engine, args: ResolveArgs, json: bool) -> anyhow::Result<Exit> {
    let resolution = if args.choice.retry {
        Resolution::Retry
    } else if args.choice.skip {
        Resolution::Skip
    } else {
        Resolution::MarkDone
    };
    let command = Command::Resolve {
        step: args.step.into(),
        resolution,
    };
    send(engine, &args.run, command, args.wait, json).await
}

/// Sends a command through the run's inbox, whoever drives it, then follows the run until it
/// settles (finished, waiting for a person, or paused), taking it over if nobody drives it.
pub async fn send(
    engine: &Engine,
    run: &str,
    command: Command,
    wait: Wait,
    json: bool,
) -> anyhow::Result<Exit> {
    let row = engine.find_run(run).await?;
    let run_id = row.run_id;
    if wait.no_wait {
        let name = command.name();
        let applied = engine.send(run_id.as_str(), command).await?;
        if json {
            say(&serde_json::to_string_pretty(&serde_json::json!({
                "run_id": run_id,
                "command": name,
                "applied": true,
                "seq": applied.seq,
            }))?);
        } else {
            say(&format!("{name} applied to run {run_id}"));
        }
        return Ok(Exit::Success);
    }
    let progress = Progress::new(json);
    let mut interrupts = interrupts()?;
    let work = async {
        engine.send(run_id.as_str(), command).await?;
        engine.settle(run_id.as_str()).await
    };
    let status = follow_until(
        engine,
        &run_id,
        row.last_seq,
        work,
        &progress,
        &mut interrupts,
    )
    .await?;
    let mut exit = finish(engine, &run_id, status, json).await?;
    // A child run that has just finished hands its output to its parent: when nobody drives
    // the parent, this process does, up the family.
    let mut current = run_id;
    while let Some(parent) = parent_to_continue(engine, &current).await? {
        if !json {
            say(&format!(
                "child run {current} has ended; continuing its parent run {}",
                parent.run_id
            ));
        }
        let work = engine.settle(parent.run_id.as_str());
        let status = follow_until(
            engine,
            &parent.run_id,
            parent.last_seq,
            work,
            &progress,
            &mut interrupts,
        )
        .await?;
        exit = finish(engine, &parent.run_id, status, json).await?;
        current = parent.run_id;
    }
    Ok(exit)
}

/// The parent of a child run that has finished, when the parent still runs and nobody
/// drives it.
async fn parent_to_continue(
    engine: &Engine,
    run_id: &RunId,
) -> anyhow::Result<Option<stepwise_engine::RunRow>> {
    let row = engine.find_run(run_id.as_str()).await?;
    let Some(parent) = row.parent.as_ref().filter(|_| row.is_child()) else {
        return Ok(None);
    };
    if !row.status.is_finished() {
        return Ok(None);
    }
    let parent = engine.find_run(parent.as_str()).await?;
    if parent.status.is_finished() || engine.holder(&parent.run_id).await?.is_some() {
        return Ok(None);
    }
    Ok(Some(parent))
}

pub async fn resume(
    engine: &Engine,
    run: Option<&str>,
    wait: Wait,
    json: bool,
) -> anyhow::Result<Exit> {
    if let Some(run) = run {
        return send(engine, run, Command::Resume, wait, json).await;
    }
    let progress = Progress::new(json);
    let mut interrupts = interrupts()?;
    let runs = engine.unfinished_runs().await?;
    if runs.is_empty() && !json {
        say("no unfinished runs");
    }
    let mut worst = Exit::Success;
    let mut report = Vec::new();
    for row in runs {
        let (text, exit) = match engine.drive(row.run_id.as_str()).await {
            Ok(handle) => {
                let status = follow_until(
                    engine,
                    &row.run_id,
                    row.last_seq,
                    handle.wait(),
                    &progress,
                    &mut interrupts,
                )
                .await;
                match status {
                    Ok(status) => (
                        run_status_text(status).to_string(),
                        Exit::for_status(status),
                    ),
                    Err(e) => (format!("not resumed: {e:#}"), Exit::Failure),
                }
            }
            // Driven by another process: it goes on there.
            Err(EngineError::RunLocked { holder, .. }) => {
                (format!("driven by {holder}; left to it"), Exit::Success)
            }
            Err(e) => (format!("not resumed: {e}"), Exit::Failure),
        };
        if !json {
            say(&format!("run {}: {text}", row.run_id));
        }
        report.push(serde_json::json!({ "run_id": row.run_id, "result": text }));
        worst = worse(worst, exit);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(worst)
}

/// Prints the run's progress from `after` on until `until` completes, then what was committed
/// up to then. Ctrl-C pauses a run this process drives (running operations finish, nothing new
/// starts, `resume` continues it), and a second Ctrl-C cancels it (running commands are
/// killed); following a run that another process drives, Ctrl-C just stops following.
async fn follow_until<F>(
    engine: &Engine,
    run_id: &RunId,
    after: EventSeq,
    until: F,
    progress: &Progress,
    interrupts: &mut Signal,
) -> anyhow::Result<RunStatus>
where
    F: Future<Output = Result<RunStatus, EngineError>>,
{
    let mut events = engine.subscribe_run(run_id.as_str(), after);
    tokio::pin!(until);
    let family_waits = crate::family::until_waiting(engine, run_id);
    tokio::pin!(family_waits);
    let mut interrupted = 0;
    // Commands sent on Ctrl-C: awaited before returning, so none is left half-sent.
    let mut sent = Vec::new();
    let status = loop {
        tokio::select! {
            status = &mut until => break status?,
            _ = &mut family_waits => {
                crate::family::let_go(engine, run_id).await;
                break RunStatus::AwaitingApproval;
            }
            Some(event) = events.next() => progress.show(&event?),
            Some(()) = interrupts.recv() => {
                if !engine.drives(run_id) {
                    eprintln!("\ninterrupted: no longer following; the run goes on in the process that drives it");
                    for send in sent {
                        let _ = send.await;
                    }
                    let row = engine.find_run(run_id.as_str()).await?;
                    return Ok(row.status);
                }
                interrupted += 1;
                let command = if interrupted == 1 {
                    eprintln!("\ninterrupted: pausing the run; running operations finish first (Ctrl-C again to cancel)");
                    Command::Pause
                } else {
                    eprintln!("\ninterrupted again: cancelling the run and killing its commands");
                    Command::Cancel
                };
                // The command goes to this process's driver while the run keeps being
                // followed here.
                let engine = engine.clone();
                let run_id = run_id.clone();
                sent.push(tokio::spawn(async move {
                    if let Err(e) = engine.send(run_id.as_str(), command).await {
                        eprintln!("error: {e}");
                    }
                }));
            }
        }
    };
    for send in sent {
        let _ = send.await;
    }
    // Everything committed before the end, printed before the summary.
    let last = engine.find_run(run_id.as_str()).await?.last_seq;
    while events.last_seq() < last {
        match events.next().await {
            Some(Ok(event)) => progress.show(&event),
            _ => break,
        }
    }
    Ok(status)
}

/// Ctrl-C (SIGINT) as a stream: once created, every signal is kept for the next `recv`, so none
/// is lost between two turns of a loop, and none kills the process.
pub fn interrupts() -> anyhow::Result<Signal> {
    signal(SignalKind::interrupt()).context("listening for Ctrl-C")
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

/// Prints a line; a closed stdout (`stepwise run … | head`) must not take a run down.
fn say(line: &str) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// Prints how the run stands and returns the exit code for it.
pub(crate) async fn finish(
    engine: &Engine,
    run_id: &RunId,
    status: RunStatus,
    json: bool,
) -> anyhow::Result<Exit> {
    let loaded = engine.load_run(run_id.as_str()).await?;
    let elapsed = loaded.row.updated_at_ms - loaded.row.created_at_ms;
    let pending: Vec<(StepId, String, String)> = loaded
        .state
        .steps()
        .filter_map(|(def, s)| match s.status {
            StepStatus::AwaitingApproval => Some((
                def.id.clone(),
                // An agent's question is answered, not approved.
                match s.pending_approval.as_ref().map(|p| &p.proposal) {
                    Some(Proposal::Question { .. }) => "answer".into(),
                    _ => "approval".into(),
                },
                s.pending_approval
                    .as_ref()
                    .map(|p| p.reason.clone())
                    .unwrap_or_default(),
            )),
            StepStatus::OutcomeUnknown => Some((
                def.id.clone(),
                "resolution".into(),
                "outcome unknown after a crash".into(),
            )),
            _ => None,
        })
        .collect();
    let children_waiting = if status == RunStatus::AwaitingApproval {
        crate::family::waiting_children(engine, run_id)
            .await?
            .unwrap_or_default()
    } else {
        Vec::new()
    };
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
        say(&serde_json::to_string_pretty(&serde_json::json!({
            "run_id": run_id,
            "status": status,
            "waiting": waiting,
            "waiting_children": children_waiting,
            "errors": errors,
        }))?);
        return Ok(Exit::for_status(status));
    }
    say(&format!(
        "run {run_id} {} after {}",
        run_status_text(status),
        duration(elapsed)
    ));
    let short = &run_id.as_str()[..run_id.as_str().len().min(8)];
    for (step, what, reason) in &pending {
        if what == "answer" {
            say(&format!(
                "  waiting for an answer to `{step}`'s question: {reason}"
            ));
            say(&format!("    see it:  stepwise approvals {short}"));
            say(&format!(
                "    answer:  stepwise answer {short} {step} --text \"…\"   |   stepwise reject {short} {step} --reason \"…\""
            ));
        } else if what == "approval" {
            say(&format!("  waiting for approval of `{step}`: {reason}"));
            say(&format!("    see it:  stepwise approvals {short}"));
            say(&format!(
                "    decide:  stepwise approve {short} {step}   |   stepwise reject {short} {step} --reason \"…\""
            ));
        } else {
            say(&format!("  `{step}`: {reason}"));
            say(&format!(
                "    decide:  stepwise resolve {short} {step} --retry | --skip | --mark-done"
            ));
        }
    }
    for child in &children_waiting {
        for approval in engine.approvals(Some(child.as_str())).await? {
            let child_short = &child.as_str()[..child.as_str().len().min(8)];
            say(&format!(
                "  waiting in child run {child} for approval of `{}`: {}",
                approval.step, approval.approval.reason
            ));
            say(&format!(
                "    approve with: stepwise approve {child_short} {}",
                approval.step
            ));
        }
    }
    if status == RunStatus::Paused {
        say(&format!("  continue with: stepwise resume {short}"));
    }
    if status == RunStatus::Running {
        match engine.holder(run_id).await? {
            Some(holder) => say(&format!(
                "  it goes on in {holder}; follow it with: stepwise events {short} --follow"
            )),
            None => say(&format!(
                "  nobody drives it now; continue with: stepwise resume {short}"
            )),
        }
    }
    for (def, s) in loaded.state.steps() {
        if let Some(error) = s.error.as_ref().filter(|_| s.status == StepStatus::Failed) {
            say(&format!("  step `{}` failed: {error}", def.id));
        }
        if s.status == StepStatus::Rejected {
            say(&format!(
                "  step `{}` was rejected: {}",
                def.id,
                s.reason.clone().unwrap_or_default()
            ));
        }
    }
    Ok(Exit::for_status(status))
}
