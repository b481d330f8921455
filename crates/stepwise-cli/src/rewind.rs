//! `stepwise rewind RUN --to STEP`: put the workspace's files back as they were when a step
//! started. Without `--yes` or `--proposal` it only shows the proposal (a multi-file diff, the
//! conflicts, its hash); approving it by that hash does it.

use clap::Args;
use stepwise_engine::{Engine, RestoreAction, RewindDone, RewindProposal};

use crate::exit::Exit;
use crate::output::printable;

#[derive(Args)]
pub struct RewindArgs {
    /// The run: its id, or any prefix of it that names one run (as `stepwise runs` shows).
    run: String,
    /// The step whose start the files go back to.
    #[arg(long, value_name = "STEP")]
    to: String,
    /// Put this file back even though something else changed it since (a conflict); repeat
    /// for several.
    #[arg(long, value_name = "PATH")]
    include: Vec<String>,
    /// Approve the proposal shown (its hash, or a prefix of at least 8 digits); refused if the
    /// files changed since and the proposal is now another.
    #[arg(long, value_name = "HASH", conflicts_with = "yes")]
    proposal: Option<String>,
    /// Approve whatever the proposal is now, without looking at it first.
    #[arg(long)]
    yes: bool,
}

pub async fn rewind(engine: &Engine, args: RewindArgs, json: bool) -> anyhow::Result<Exit> {
    if !args.yes && args.proposal.is_none() {
        let proposal = engine
            .propose_rewind(&args.run, &args.to, &args.include)
            .await?;
        if json {
            println!("{}", serde_json::to_string_pretty(&proposal)?);
        } else {
            let includes: String = args
                .include
                .iter()
                .map(|p| format!(" --include {p}"))
                .collect();
            let again = format!("stepwise rewind {} --to {}{includes}", args.run, args.to);
            print_proposal(&proposal, &again);
        }
        return Ok(Exit::Success);
    }
    let done = engine
        .rewind(&args.run, &args.to, &args.include, args.proposal.as_deref())
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&done)?);
    } else {
        print_done(&done);
    }
    Ok(if done.failed.is_empty() {
        Exit::Success
    } else {
        Exit::Failure
    })
}

/// The proposal, and how to approve it: `again` is the command to run with `--proposal HASH`.
pub fn print_proposal(proposal: &RewindProposal, again: &str) {
    println!(
        "rewind run {} to the start of step `{}`",
        proposal.run_id, proposal.to
    );
    if proposal.files.is_empty() {
        println!("  nothing to put back: {}", proposal.nothing_because());
        return;
    }
    for file in &proposal.files {
        let what = match file.action {
            RestoreAction::Restore => "restore",
            RestoreAction::Delete => "delete",
            RestoreAction::Recreate => "recreate",
        };
        let path = printable(&file.restore.path);
        match (&file.problem, file.included, file.restore.conflict) {
            (Some(problem), _, _) => println!("  cannot {what} {path}: {problem}"),
            (None, false, _) => println!(
                "  CONFLICT {path}: changed since by something else; left alone (--include {path} to {what} it anyway)"
            ),
            (None, true, true) => println!("  {what} {path} (a conflict, included)"),
            (None, true, false) => println!("  {what} {path}"),
        }
    }
    for file in proposal.files.iter().filter(|f| f.included) {
        if let Some(diff) = &file.diff {
            for line in diff.lines() {
                println!("    {}", printable(line));
            }
        }
    }
    println!("proposal {}", proposal.proposal_hash);
    if proposal.files.iter().any(|f| f.included) {
        let short = proposal
            .proposal_hash
            .trim_start_matches("sha256:")
            .get(..12)
            .unwrap_or_default();
        println!("approve it with: {again} --proposal {short}");
    } else {
        println!("nothing would be put back: {}", proposal.nothing_because());
    }
}

fn print_done(done: &RewindDone) {
    println!(
        "rewound run {} to the start of step `{}`",
        done.run_id, done.to
    );
    for change in &done.restored {
        let what = match (&change.before, &change.after) {
            (_, None) => "deleted",
            (None, Some(_)) => "recreated",
            _ => "restored",
        };
        println!("  {what} {}", printable(&change.path));
    }
    for path in &done.left_alone {
        println!("  left alone {}", printable(path));
    }
    for failure in &done.failed {
        println!(
            "  FAILED {}: {}",
            printable(&failure.path),
            printable(&failure.message)
        );
    }
}
