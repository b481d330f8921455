//! `stepwise continue RUN [STEP] [--all]`: let a run past the pauses before its steps
//! (`stepwise run --step`, `--break STEP`, a workflow's `breakpoints`). Each pause is an
//! approval, recorded and replayed like one; `--all` lets every waiting step start and stops
//! pausing for the rest of the run.

use clap::Args;
use stepwise_engine::{Command, Engine};

use crate::exit::{Exit, InvalidInput};
use crate::runs::{Wait, send};

#[derive(Args)]
pub struct ContinueArgs {
    /// The run: its id, or any prefix of it that names one run (as `stepwise runs` shows).
    run: String,
    /// Only this step (default: every step waiting to start).
    #[arg(conflicts_with = "all")]
    step: Option<String>,
    /// Every waiting step starts, and the run pauses before no step from now on.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    wait: Wait,
}

pub async fn continue_run(engine: &Engine, args: ContinueArgs, json: bool) -> anyhow::Result<Exit> {
    if args.all {
        return send(engine, &args.run, Command::ContinueAll, args.wait, json).await;
    }
    let loaded = engine.load_run(&args.run).await?;
    let paused = loaded.state.waiting_to_start(args.step.as_deref());
    let Some(((last_step, last_hash), others)) = paused.split_last() else {
        let what = match &args.step {
            Some(step) => format!("step `{step}` of run {} is not waiting to start", args.run),
            None => format!("run {} has no step waiting to start", args.run),
        };
        return Err(InvalidInput(what).into());
    };
    for (step, hash) in others {
        engine
            .send(loaded.row.run_id.as_str(), continue_command(step, hash))
            .await?;
    }
    send(
        engine,
        loaded.row.run_id.as_str(),
        continue_command(last_step, last_hash),
        args.wait,
        json,
    )
    .await
}

/// Continuing past one pause: approving it, named by its hash.
fn continue_command(step: &stepwise_core::ids::StepId, proposal_hash: &str) -> Command {
    Command::Approve {
        step: step.clone(),
        comment: None,
        edited: None,
        proposal: Some(proposal_hash.to_string()),
    }
}
