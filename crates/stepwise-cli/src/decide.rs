//! Deciding what a step waits on from the CLI: `approve` (as proposed, edited, or hunk by
//! hunk) and `answer` (an agent's question).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use stepwise_core::event::Proposal;
use stepwise_core::ids::StepId;
use stepwise_core::operation::CommandLine;
use stepwise_core::run::{EditedProposal, StepStatus, edit_hunks};
use stepwise_engine::{Command, Engine};

use crate::exit::{Exit, InvalidInput};
use crate::runs::{Wait, send};

#[derive(Args)]
#[command(group = clap::ArgGroup::new("hunk_choice").args(["hunks", "reject_hunks"]))]
pub struct ApproveArgs {
    /// The run: its id, or any prefix of it that names one run (as `stepwise runs` shows).
    run: String,
    /// The step, by its `id` in the workflow.
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
    #[arg(long, value_name = "FILE", conflicts_with_all = ["hunks", "reject_hunks"])]
    edit: Option<PathBuf>,
    /// Apply only these hunks of an edit (numbered from 1, as `stepwise approvals` shows
    /// them, e.g. `1,3`); the others are rejected.
    #[arg(
        long,
        value_name = "N,N…",
        value_delimiter = ',',
        conflicts_with = "reject_hunks"
    )]
    hunks: Option<Vec<u32>>,
    /// Reject these hunks of an edit (e.g. `2`) and apply the others.
    #[arg(long, value_name = "N,N…", value_delimiter = ',')]
    reject_hunks: Option<Vec<u32>>,
    /// Why the hunks left out were rejected (recorded, and told to an agent).
    #[arg(long, requires = "hunk_choice")]
    reason: Option<String>,
    #[command(flatten)]
    wait: Wait,
}

#[derive(Args)]
pub struct AnswerArgs {
    /// The run: its id, or any prefix of it that names one run (as `stepwise runs` shows).
    run: String,
    /// The step whose agent asks, by its `id` in the workflow.
    step: String,
    /// The answer, as the agent will read it.
    #[arg(long)]
    text: String,
    /// The proposal hash of the question you read (as `stepwise approvals` shows it, or a
    /// prefix); the answer is refused if the step now asks something else.
    #[arg(long, value_name = "HASH")]
    proposal: Option<String>,
    #[command(flatten)]
    wait: Wait,
}

pub async fn approve(engine: &Engine, args: ApproveArgs, json: bool) -> anyhow::Result<Exit> {
    let step = StepId::from(args.step.as_str());
    // Hunk numbers name the hunks of one proposal: unless the person named it, the one the
    // numbers were counted on.
    let mut proposal = args.proposal.clone();
    let edited = match &args.edit {
        None if args.hunks.is_some() || args.reject_hunks.is_some() => {
            let (choice, counted_on) = hunk_choice(engine, &args, &step).await?;
            proposal = proposal.or(Some(counted_on));
            Some(choice)
        }
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let loaded = engine.load_run(&args.run).await?;
            let pending = loaded
                .state
                .step_state(&step)
                .and_then(|s| s.pending_approval.as_ref())
                .ok_or_else(|| {
                    InvalidInput(format!("step `{step}` is not waiting for approval"))
                })?;
            Some(match &pending.proposal {
                Proposal::RunCommand(_) => EditedProposal::Command(parse_command(&text)?),
                _ => EditedProposal::Content(text),
            })
        }
    };
    let command = Command::Approve {
        proposal,
        step,
        comment: args.comment,
        edited,
    };
    send(engine, &args.run, command, args.wait, json).await
}

/// The hunks a person rejects, from `--reject-hunks`, or from `--hunks` (those applied), and
/// the hash of the edit the step waits on, whose hunks they are.
async fn hunk_choice(
    engine: &Engine,
    args: &ApproveArgs,
    step: &StepId,
) -> anyhow::Result<(EditedProposal, String)> {
    let reason = args.reason.clone();
    let loaded = engine.load_run(&args.run).await?;
    let waiting = loaded
        .state
        .step_state(step)
        .filter(|s| s.status == StepStatus::AwaitingApproval);
    let (Some(state), Some(pending)) = (waiting, waiting.and_then(|s| s.pending_approval.as_ref()))
    else {
        return Err(InvalidInput(format!("step `{step}` is not waiting for approval")).into());
    };
    let Proposal::EditFile { content, .. } = &pending.proposal else {
        return Err(InvalidInput(format!(
            "step `{step}` waits on a {} proposal; only an edit has hunks",
            pending.proposal.kind_name()
        ))
        .into());
    };
    let hash = pending.proposal_hash.clone();
    if let Some(rejected) = &args.reject_hunks {
        let choice = EditedProposal::Hunks {
            rejected: rejected.clone(),
            reason,
        };
        return Ok((choice, hash));
    }
    let applied = args.hunks.clone().unwrap_or_default();
    let count = edit_hunks(state.base_content.as_deref(), content).len() as u32;
    if let Some(wrong) = applied.iter().find(|&&n| n == 0 || n > count) {
        return Err(InvalidInput(format!(
            "step `{step}`'s edit has {count} hunk(s); there is no hunk {wrong}"
        ))
        .into());
    }
    let choice = EditedProposal::Hunks {
        rejected: (1..=count).filter(|n| !applied.contains(n)).collect(),
        reason,
    };
    Ok((choice, hash))
}

/// Answers an agent's question (`ask_person`): the answer is recorded as the approved
/// question, and is what the agent is told.
pub async fn answer(engine: &Engine, args: AnswerArgs, json: bool) -> anyhow::Result<Exit> {
    let command = Command::Approve {
        proposal: args.proposal,
        step: StepId::from(args.step),
        comment: None,
        edited: Some(EditedProposal::Answer(args.text)),
    };
    send(engine, &args.run, command, args.wait, json).await
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
