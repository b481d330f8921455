//! Applying the commands in the run's inbox, oldest first, each through the normal
//! decide-and-commit path. A command is marked handled in the same transaction as the events
//! it leads to, so it is applied exactly once whatever crashes.

use stepwise_store::{CommandRow, CommandState, HandledCommand};

use super::Driver;
use crate::commands::{Command, Refusal, RefusalKind, command_event};
use crate::error::EngineError;
use crate::inbox::StoredOutcome;

impl Driver {
    /// Applies every pending command of the run; whether there were any.
    pub(super) async fn process_inbox(&mut self) -> Result<bool, EngineError> {
        let run_id = self.run_id.clone();
        let pending = self
            .engine
            .inner
            .db
            .read(move |store| Ok(store.pending_commands(&run_id)?))
            .await?;
        let any = !pending.is_empty();
        for row in pending {
            self.apply_command(row).await?;
        }
        Ok(any)
    }

    async fn apply_command(&mut self, row: CommandRow) -> Result<(), EngineError> {
        let command: Command = match serde_json::from_value(row.body.clone()) {
            Ok(command) => command,
            Err(e) => {
                let refusal = Refusal {
                    kind: RefusalKind::Unreadable,
                    message: format!(
                        "command {} cannot be read by this stepwise ({e}); was it sent by a newer version?",
                        row.command_id
                    ),
                };
                let handled = self.handled(&row, StoredOutcome::Refused(refusal))?;
                return self.commit(Vec::new(), vec![handled]).await;
            }
        };
        tracing::debug!(run_id = %self.run_id, command_id = row.command_id, command = command.name(), by = %row.issued_by, "applying a command");
        let approved_step = match &command {
            Command::Approve { step, .. } => Some(step.clone()),
            _ => None,
        };
        let is_cancel = matches!(command, Command::Cancel);
        let input = match command_event(&self.state, &self.run_id, &row.issued_by, command) {
            Ok(input) => input,
            Err(error) => {
                let handled =
                    self.handled(&row, StoredOutcome::Refused(Refusal::from_error(&error)))?;
                return self.commit(Vec::new(), vec![handled]).await;
            }
        };
        // An edit is never approved against content other than what its proposal was made
        // from: if the file changed, the proposal is voided and made anew, and the approval
        // refused, all in one commit.
        if let Some(step) = approved_step
            && let Some(stale) = self.stale_edit(&step).await?
        {
            let refusal = stale.refusal();
            let handled = self.handled(&row, StoredOutcome::Refused(refusal))?;
            let group = self.take_input(stale.into_event())?;
            return self.commit(vec![group], vec![handled]).await;
        }
        let Some(input) = input else {
            let handled = self.handled(&row, StoredOutcome::Applied { seq: None })?;
            return self.commit(Vec::new(), vec![handled]).await;
        };
        let seq = self.state.last_seq() + 1;
        let handled = self.handled(&row, StoredOutcome::Applied { seq: Some(seq) })?;
        let group = self.take_input(input)?;
        self.commit(vec![group], vec![handled]).await?;
        // Write-ahead: the cancel request is durable before any command is signalled.
        if is_cancel {
            for cancel in self.running.values() {
                let _ = cancel.send(true);
            }
        }
        Ok(())
    }

    fn handled(
        &self,
        row: &CommandRow,
        outcome: StoredOutcome,
    ) -> Result<HandledCommand, EngineError> {
        let state = match outcome {
            StoredOutcome::Applied { .. } => CommandState::Applied,
            StoredOutcome::Refused(_) => CommandState::Refused,
        };
        let outcome = serde_json::to_value(&outcome).map_err(|e| {
            EngineError::Internal(format!("a command's outcome could not be written: {e}"))
        })?;
        Ok(HandledCommand {
            command_id: row.command_id,
            state,
            outcome,
            handled_at_ms: self.engine.inner.clock.now_ms(),
            handled_by: format!("pid {}", std::process::id()),
        })
    }
}
