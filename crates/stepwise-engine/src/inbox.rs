//! Commands from any process. A command is recorded in the run's inbox (a durable row in the
//! database) and applied by whichever process holds the run, through the same decide-and-
//! commit path as everything else; the sender waits for the outcome recorded with it.
//!
//! The holder learns of a command within milliseconds and without polling: a driver in this
//! process is woken directly; a driver in another process wakes on the database's change
//! signal (see `db::changes`) and reads its inbox. When nobody holds the run, the sender
//! drives it itself (see `standby`).

use serde::{Deserialize, Serialize};
use stepwise_core::ids::{EventSeq, RunId};
use stepwise_core::run::RunStatus;
use stepwise_store::{CommandRow, CommandState, NewCommand};
use tokio::sync::oneshot;

use crate::commands::{Applied, Command, Refusal};
use crate::engine::Engine;
use crate::error::EngineError;
use crate::messages::Message;
use crate::standby::Standby;

/// How often whoever waits on a run of another machine asks whether a process there still
/// holds it.
const REMOTE_HOLDER_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// What handling a command led to, as recorded in the inbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub(crate) enum StoredOutcome {
    Applied { seq: Option<EventSeq> },
    Refused(Refusal),
}

impl Engine {
    /// Sends a command to a run (by id or unique prefix), whoever drives it, and waits until
    /// it is applied or refused. With nobody driving the run, this process drives it (and goes
    /// on until the driver stops; see [`Engine::settle`]).
    ///
    /// A refusal comes back as [`EngineError::Refused`].
    pub async fn send(&self, run: &str, command: Command) -> Result<Applied, EngineError> {
        // A proposal hash that names nothing is refused before anything is sent or recorded.
        if let Command::Approve {
            proposal: Some(given),
            ..
        }
        | Command::Reject {
            proposal: Some(given),
            ..
        } = &command
        {
            crate::commands::proposal_digits(given)?;
        }
        let run_id = self.find_run(run).await?.run_id;
        // Someone the run's `approvers` leave out is told at once, from the log, whoever holds
        // the run (the holder checks again as it applies the command; a driver of this
        // process answers at once anyway). An approval reviewed hunk by hunk is checked as an
        // answer here (rejecting every hunk rejects the edit); the holder judges the outcome.
        let answers = matches!(
            command,
            Command::Approve { .. } | Command::Reject { .. } | Command::ContinueAll
        );
        if answers && self.ctx.live.channel(&run_id).is_none() {
            let loaded = self.ctx.load_run(run_id.as_str()).await?;
            let user = &self.ctx.config.user;
            match &command {
                Command::Approve { step, edited, .. } => {
                    let approving = !matches!(
                        edited,
                        Some(stepwise_core::run::EditedProposal::Hunks { .. })
                    );
                    crate::commands::check_answerer(&loaded.state, step, user, approving)?;
                }
                Command::Reject { step, .. } => {
                    crate::commands::check_answerer(&loaded.state, step, user, false)?;
                }
                _ => crate::commands::check_breakpoint_answerer(&loaded.state, user)?,
            }
        }
        send_command(&self.ctx, &run_id, command, self.ctx.config.user.clone()).await
    }

    /// Waits until a run (by id or unique prefix) settles: it finished, or it waits for a
    /// person, or it is paused. A driver of this process that stops on its own is waited for
    /// to the end, so that nothing it runs is cut short when the process exits. A run that
    /// another process drives is followed; if that process dies (or stops while the run still
    /// runs), this one takes the run over.
    pub async fn settle(&self, run: &str) -> Result<RunStatus, EngineError> {
        let run_id = self.find_run(run).await?.run_id;
        settle_run(&self.ctx, &run_id).await
    }
}

/// The outcome recorded for a handled command; `None` while it is pending.
fn outcome_of(row: &CommandRow) -> Result<Option<Result<Applied, EngineError>>, EngineError> {
    if row.state == CommandState::Pending {
        return Ok(None);
    }
    let stored: StoredOutcome = row
        .outcome
        .clone()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| {
            EngineError::Internal(format!(
                "the outcome of command {} cannot be read: {e}",
                row.command_id
            ))
        })?
        .unwrap_or(StoredOutcome::Applied { seq: None });
    Ok(Some(match stored {
        StoredOutcome::Applied { seq } => Ok(Applied {
            command_id: row.command_id,
            seq,
        }),
        StoredOutcome::Refused(refusal) => Err(EngineError::Refused(refusal)),
    }))
}

/// [`Engine::settle`] for a run by id, for the engine's own waits (a parent's step waiting
/// for its child run).
pub(crate) async fn settle_run(
    ctx: &std::sync::Arc<crate::context::Context>,
    run_id: &RunId,
) -> Result<RunStatus, EngineError> {
    let run_id = run_id.clone();
    let mut changes = ctx.db.watch_changes();
    let mut standby = Standby::new(ctx, &run_id);
    let mut ensured = false;
    loop {
        // A driver of this process that stops on its own: wait for it to stop (and learn
        // how it failed, if it was started here).
        if !ctx.config.hold_waiting_runs {
            if let Some(own) = standby.take_own() {
                match own.wait().await {
                    // It let go of the run (paused, waiting only for signals): it stands
                    // as recorded.
                    Err(EngineError::ShutDown) if !ctx.is_shutting_down() => {}
                    ended => {
                        ended?;
                    }
                }
                continue;
            }
            if let Some(mut stopped) = ctx.live.stopped(&run_id) {
                if stopped.wait_for(|stopped| *stopped).await.is_err() && ctx.is_shutting_down() {
                    return Err(EngineError::ShutDown);
                }
                continue;
            }
        }
        changes.borrow_and_update();
        let row = ctx.find_run(run_id.as_str()).await?;
        let status = row.status;
        if status != RunStatus::Running {
            return Ok(status);
        }
        // A run of another machine is waited for while a process there holds it (asked again
        // every second: a holder there may die without a commit here); never driven here.
        let remote = ctx.held_on_its_machine(&run_id).await?;
        if !ensured && !remote {
            standby.ensure_driven(ctx)?;
            ensured = true;
            if standby.has_own() {
                continue;
            }
        }
        tokio::select! {
            changed = ctx.changed(&mut changes) => changed?,
            driving = standby.changed() => {
                driving?;
                ensured = false;
            }
            () = tokio::time::sleep(REMOTE_HOLDER_CHECK), if remote => {}
        }
    }
}

/// [`Engine::send`] for a run by id, on behalf of `issued_by` (also the engine's own: a
/// parent's pause, resume or cancel passed on to its child runs).
pub(crate) async fn send_command(
    ctx: &std::sync::Arc<crate::context::Context>,
    run_id: &RunId,
    command: Command,
    issued_by: String,
) -> Result<Applied, EngineError> {
    ctx.db.check_writable()?;
    // This process drives the run: hand the command over, to be recorded as it is applied
    // (one commit instead of two). If that driver is just stopping, use the inbox.
    if let Some(driver) = ctx.live.channel(run_id) {
        let (reply, answer) = oneshot::channel();
        let handed = driver.send(Message::Command {
            command: command.clone(),
            issued_by: issued_by.clone(),
            reply,
        });
        if handed.is_ok()
            && let Ok(outcome) = answer.await
        {
            return outcome;
        }
    }
    let body = serde_json::to_value(&command)
        .map_err(|e| EngineError::Internal(format!("a command could not be written: {e}")))?;
    let new = NewCommand {
        run_id: run_id.clone(),
        body,
        issued_by: issued_by.clone(),
        issued_on: Some(ctx.config.host.clone()),
        issued_at_ms: ctx.clock.now_ms(),
    };
    let command_id = ctx
        .db
        .write(move |store| store.insert_command(&new))
        .await?;
    tracing::debug!(%run_id, command_id, command = command.name(), "command sent");
    await_outcome(ctx, run_id, command_id).await
}

async fn await_outcome(
    ctx: &std::sync::Arc<crate::context::Context>,
    run_id: &RunId,
    command_id: i64,
) -> Result<Applied, EngineError> {
    let mut changes = ctx.db.watch_changes();
    let mut standby = Standby::new(ctx, run_id);
    let mut ensured = false;
    loop {
        changes.borrow_and_update();
        let row = command_row(ctx, command_id).await?;
        if let Some(outcome) = outcome_of(&row)? {
            return outcome;
        }
        // As in `settle_run`: a run of another machine is left to a process there.
        let remote = ctx.held_on_its_machine(run_id).await?;
        if !ensured && !remote {
            standby.ensure_driven(ctx)?;
            ensured = true;
        }
        tokio::select! {
            () = tokio::time::sleep(REMOTE_HOLDER_CHECK), if remote => {}
            changed = ctx.changed(&mut changes) => changed?,
            driving = standby.changed() => {
                if let Err(error) = driving {
                    // The driver started for this command failed: unless it got as far as
                    // handling the command, that failure is the answer.
                    let row = command_row(ctx, command_id).await?;
                    return match outcome_of(&row)? {
                        Some(outcome) => outcome,
                        None => Err(error),
                    };
                }
                ensured = false;
            }
        }
    }
}

async fn command_row(
    ctx: &crate::context::Context,
    command_id: i64,
) -> Result<CommandRow, EngineError> {
    ctx.db
        .read(move |store| {
            store.command(command_id)?.ok_or_else(|| {
                EngineError::Internal(format!("command {command_id} vanished from the inbox"))
            })
        })
        .await
}
