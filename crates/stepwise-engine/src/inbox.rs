//! Commands from any process. A command is recorded in the run's inbox (a durable row in the
//! database) and applied by whichever process holds the run, through the same decide-and-
//! commit path as everything else; the sender waits for the outcome recorded with it.
//!
//! The holder learns of a command within milliseconds and without polling: a driver in this
//! process is woken directly; a driver in another process wakes on the database's change
//! signal (see `db::changes`) and reads its inbox. When nobody holds the run, the sender
//! drives it itself (see `standby`).

use std::sync::Weak;

use serde::{Deserialize, Serialize};
use stepwise_core::ids::{EventSeq, RunId};
use stepwise_core::run::RunStatus;
use stepwise_store::{CommandRow, CommandState, NewCommand};
use tokio::sync::{oneshot, watch};

use crate::commands::{Command, Refusal};
use crate::driver::Message;
use crate::engine::{Engine, Inner};
use crate::error::EngineError;
use crate::standby::Standby;

/// A command that was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub command_id: i64,
    /// The seq of the event it recorded; `None` for a command that changed nothing (resuming
    /// a run that was not paused).
    pub seq: Option<EventSeq>,
}

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
        self.inner.db.check_writable()?;
        // This process drives the run: hand the command over, to be recorded as it is applied
        // (one commit instead of two). If that driver is just stopping, use the inbox.
        if let Some(driver) = self.driver_channel(&run_id) {
            let (reply, answer) = oneshot::channel();
            let handed = driver.send(Message::Command {
                command: command.clone(),
                issued_by: self.inner.config.user.clone(),
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
            issued_by: self.inner.config.user.clone(),
            issued_at_ms: self.inner.clock.now_ms(),
        };
        let command_id = self
            .inner
            .db
            .write(move |store| store.insert_command(&new))
            .await?;
        tracing::debug!(%run_id, command_id, command = command.name(), "command sent");
        self.await_outcome(&run_id, command_id).await
    }

    async fn await_outcome(&self, run_id: &RunId, command_id: i64) -> Result<Applied, EngineError> {
        let mut changes = self.inner.db.watch_changes();
        let mut standby = Standby::new(self, run_id);
        let mut ensured = false;
        loop {
            changes.borrow_and_update();
            let row = self.command_row(command_id).await?;
            if let Some(outcome) = outcome_of(&row)? {
                return outcome;
            }
            if !ensured {
                standby.ensure_driven(self)?;
                ensured = true;
            }
            tokio::select! {
                changed = changes.changed() => {
                    changed.map_err(|_| EngineError::WriterStopped)?;
                }
                driving = standby.changed() => {
                    if let Err(error) = driving {
                        // The driver started for this command failed: unless it got as far as
                        // handling the command, that failure is the answer.
                        let row = self.command_row(command_id).await?;
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

    async fn command_row(&self, command_id: i64) -> Result<CommandRow, EngineError> {
        self.inner
            .db
            .read(move |store| {
                store.command(command_id)?.ok_or_else(|| {
                    EngineError::Internal(format!("command {command_id} vanished from the inbox"))
                })
            })
            .await
    }

    /// Waits until a run (by id or unique prefix) settles: it finished, or it waits for a
    /// person, or it is paused. A driver of this process that stops on its own is waited for
    /// to the end, so that nothing it runs is cut short when the process exits. A run that
    /// another process drives is followed; if that process dies (or stops while the run still
    /// runs), this one takes the run over.
    pub async fn settle(&self, run: &str) -> Result<RunStatus, EngineError> {
        let run_id = self.find_run(run).await?.run_id;
        let mut changes = self.inner.db.watch_changes();
        let mut standby = Standby::new(self, &run_id);
        let mut ensured = false;
        loop {
            // A driver of this process that stops on its own: wait for it to stop (and learn
            // how it failed, if it was started here).
            if !self.inner.config.hold_waiting_runs {
                if let Some(own) = standby.take_own() {
                    own.wait().await?;
                    continue;
                }
                if let Some(mut stopped) = self.local_driver(&run_id) {
                    let _ = stopped.wait_for(|stopped| *stopped).await;
                    continue;
                }
            }
            changes.borrow_and_update();
            let row = self.find_run(run_id.as_str()).await?;
            let status = RunStatus::parse(&row.status).unwrap_or(RunStatus::Running);
            if status != RunStatus::Running {
                return Ok(status);
            }
            if !ensured {
                standby.ensure_driven(self)?;
                ensured = true;
                if standby.has_own() {
                    continue;
                }
            }
            tokio::select! {
                changed = changes.changed() => {
                    changed.map_err(|_| EngineError::WriterStopped)?;
                }
                driving = standby.changed() => {
                    driving?;
                    ensured = false;
                }
            }
        }
    }

    /// Starts the task that wakes this process's drivers when commands for their runs arrive
    /// from other processes (once per engine).
    pub(crate) fn ensure_inbox_watch(&self) {
        self.inner.inbox_watch.get_or_init(|| {
            let inner = std::sync::Arc::downgrade(&self.inner);
            let changes = self.inner.db.watch_changes();
            self.inner.db.writer.spawn(watch_inbox(inner, changes));
        });
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

/// How long the inbox watch lets a burst of commits settle before it looks.
const INBOX_SETTLE: std::time::Duration = std::time::Duration::from_millis(10);

/// On every change to the database, looks for commands that arrived for runs this process
/// drives and wakes their drivers. Ends with the engine.
async fn watch_inbox(inner: Weak<Inner>, mut changes: watch::Receiver<u64>) {
    let mut seen = 0_i64;
    while changes.changed().await.is_ok() {
        // Commits come in bursts (and each writes several pages, each a filesystem event):
        // let a burst settle and look once, instead of once per page.
        tokio::time::sleep(INBOX_SETTLE).await;
        changes.borrow_and_update();
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let engine = Engine { inner };
        if !engine.drives_anything() {
            continue;
        }
        let after = seen;
        let pending = engine
            .inner
            .db
            .read(move |store| Ok(store.pending_commands_after(after)?))
            .await;
        match pending {
            Ok(pending) => {
                for (command_id, run_id) in pending {
                    seen = seen.max(command_id);
                    engine.nudge(&run_id);
                }
            }
            Err(error) => tracing::warn!(%error, "cannot read the command inbox"),
        }
    }
}
