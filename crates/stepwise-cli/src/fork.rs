//! `stepwise fork RUN --from STEP`: a new run that takes the parent's recorded events before
//! the step (nothing before it is performed again, no model called again) and goes on from
//! there with changed inputs or another workflow, in the parent's workspace put back as it was
//! then (a proposal, approved as a rewind is) or in a copy of it elsewhere (`--workspace`).

use std::path::PathBuf;

use clap::Args;
use stepwise_engine::{Engine, ForkRun, Forked};

use crate::exit::Exit;
use crate::rewind::print_proposal;
use crate::runs::{follow_new_run, interrupts, parse_inputs};

#[derive(Args)]
pub struct ForkArgs {
    /// The run to fork: its id, or any prefix of it that names one run.
    run: String,
    /// The step the new run goes its own way from: it and everything after it run anew.
    #[arg(long, value_name = "STEP")]
    from: String,
    /// An input changed for the new run, `name=value` (repeatable); the others are the run's.
    #[arg(long = "input", value_name = "NAME=VALUE")]
    inputs: Vec<String>,
    /// Go on with this workflow file instead of the one the run recorded (its steps before
    /// the fork point must still be there).
    #[arg(long, value_name = "FILE")]
    workflow: Option<PathBuf>,
    /// Run in this new (or empty) directory, which receives a copy of the workspace as it was
    /// when the step started; the run's own workspace is left as it is.
    #[arg(long, value_name = "DIR")]
    workspace: Option<PathBuf>,
    /// Approve putting the run's workspace back as it was (the proposal `fork` shows first).
    #[arg(long, value_name = "HASH", conflicts_with_all = ["yes", "workspace"])]
    proposal: Option<String>,
    /// Approve putting the workspace back, whatever it takes.
    #[arg(long, conflicts_with = "workspace")]
    yes: bool,
}

pub async fn fork(engine: &Engine, args: ForkArgs, json: bool) -> anyhow::Result<Exit> {
    let fork = ForkRun {
        parent: args.run.clone(),
        from: args.from.clone(),
        inputs: parse_inputs(&args.inputs)?,
        workflow_path: args.workflow.clone(),
        workspace: args.workspace.clone(),
        approved: args.proposal.clone(),
        approve_any: args.yes,
        trigger: "cli".into(),
    };
    // Listening for Ctrl-C before anything starts: a signal cannot slip in before it is heard.
    let mut interrupts = interrupts()?;
    match engine.fork(fork).await? {
        Forked::NeedsRestore(proposal) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "needs_restore": proposal,
                    }))?
                );
            } else {
                println!(
                    "the workspace must first be put back as it was when step `{}` started:",
                    args.from
                );
                let mut again = format!("stepwise fork {} --from {}", args.run, args.from);
                for input in &args.inputs {
                    again.push_str(&format!(" --input {input}"));
                }
                if let Some(workflow) = &args.workflow {
                    again.push_str(&format!(" --workflow {}", workflow.display()));
                }
                print_proposal(&proposal, &again);
                println!("(or fork into another directory with --workspace DIR)");
            }
            Ok(Exit::Waiting)
        }
        Forked::Started(handle) => follow_new_run(engine, handle, &mut interrupts, json).await,
    }
}
