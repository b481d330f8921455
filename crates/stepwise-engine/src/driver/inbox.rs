//! Applying commands: those waiting in the run's inbox (sent by any process), oldest first,
//! and those handed over directly by this process. Each goes through the normal
//! decide-and-commit path and is recorded as handled in the same transaction as the events it
//! leads to, so it is applied exactly once whatever crashes.

use stepwise_store::{CommandRef, CommandRow, CommandState, HandledCommand, NewCommand};

use super::Driver;
use crate::commands::Applied;
use crate::commands::{Command, Refusal, RefusalKind, command_event};
use crate::error::EngineError;
use crate::inbox::StoredOutcome;

impl Driver {
    /// Applies every pending command of the run, oldest first; whether there were any.
    pub(super) async fn process_inbox(&mut self) -> Result<bool, EngineError> {
        self.process_inbox_where(|_| true).await
    }

    /// Applies the pending commands that `wanted` picks (and any that cannot be read), oldest
    /// first; whether there were any.
    pub(super) async fn process_inbox_where(
        &mut self,
        wanted: fn(&Command) -> bool,
    ) -> Result<bool, EngineError> {
        let run_id = self.run_id.clone();
        let pending = self
            .ctx
            .db
            .read(move |store| Ok(store.pending_commands(&run_id)?))
            .await?;
        let mut any = false;
        for row in pending {
            let picked = serde_json::from_value::<Command>(row.body.clone())
                .map_or(true, |command| wanted(&command));
            if picked {
                any = true;
                self.apply_inbox_row(row).await?;
            }
        }
        Ok(any)
    }

    async fn apply_inbox_row(&mut self, row: CommandRow) -> Result<(), EngineError> {
        let origin = CommandRef::Pending(row.command_id);
        match serde_json::from_value::<Command>(row.body.clone()) {
            Ok(command) => {
                self.apply(command, &row.issued_by, row.issued_on.as_deref(), origin)
                    .await?;
            }
            Err(e) => {
                let refusal = Refusal {
                    kind: RefusalKind::Unreadable,
                    message: format!(
                        "command {} cannot be read by this stepwise ({e}); was it sent by a newer version?",
                        row.command_id
                    ),
                };
                let handled = self.handled(origin, StoredOutcome::Refused(refusal))?;
                self.commit(Vec::new(), vec![handled])?;
            }
        }
        Ok(())
    }

    /// Applies a command this process handed over, recording it with what it led to.
    pub(super) async fn apply_direct(
        &mut self,
        command: Command,
        issued_by: String,
    ) -> Result<Result<Applied, EngineError>, EngineError> {
        let body = serde_json::to_value(&command)
            .map_err(|e| EngineError::Internal(format!("a command could not be written: {e}")))?;
        let origin = CommandRef::New(NewCommand {
            run_id: self.run_id.clone(),
            body,
            issued_by: issued_by.clone(),
            issued_on: Some(self.ctx.config.host.clone()),
            issued_at_ms: self.ctx.clock.now_ms(),
        });
        let host = self.ctx.config.host.clone();
        let (command_id, outcome) = self.apply(command, &issued_by, Some(&host), origin).await?;
        Ok(match outcome {
            StoredOutcome::Applied { seq } => Ok(Applied { command_id, seq }),
            StoredOutcome::Refused(refusal) => Err(EngineError::Refused(refusal)),
        })
    }

    /// Applies one command and records how: its id and outcome. The error is the driver's own
    /// (the log could not be written); a command that does not fit is a refusal, recorded.
    async fn apply(
        &mut self,
        command: Command,
        issued_by: &str,
        issued_on: Option<&str>,
        origin: CommandRef,
    ) -> Result<(i64, StoredOutcome), EngineError> {
        tracing::debug!(run_id = %self.run_id, command = command.name(), by = %issued_by, "applying a command");
        let approved_step = match &command {
            Command::Approve { step, .. } => Some(step.clone()),
            _ => None,
        };
        let is_cancel = matches!(command, Command::Cancel);
        let for_children = matches!(command, Command::Pause | Command::Resume | Command::Cancel)
            .then(|| command.clone());
        let input = match command_event(&self.state, &self.run_id, issued_by, issued_on, command) {
            Ok(input) => input,
            Err(error) => {
                let outcome = StoredOutcome::Refused(Refusal::from_error(&error));
                return self.record(Vec::new(), origin, outcome).await;
            }
        };
        // An edit is never approved against content other than what its proposal was made
        // from: if the file changed, the proposal is voided and made anew, and the approval
        // refused, all in one commit.
        if let Some(step) = approved_step
            && let Some(stale) = self.stale_edit(&step).await?
        {
            let outcome = StoredOutcome::Refused(stale.refusal());
            let group = self.take_input(stale.into_event())?;
            return self.record(vec![group], origin, outcome).await;
        }
        let Some(input) = input else {
            return self
                .record(Vec::new(), origin, StoredOutcome::Applied { seq: None })
                .await;
        };
        let seq = self.state.last_seq().next();
        let group = self.take_input(input)?;
        let recorded = self
            .record(
                vec![group],
                origin,
                StoredOutcome::Applied { seq: Some(seq) },
            )
            .await?;
        // Write-ahead: the cancel request is durable before any command is signalled. Not the
        // compensations it set off: they run whatever a cancel says.
        if is_cancel {
            let cancelled: std::collections::HashSet<_> = (self.state.unanswered_operations())
                .into_iter()
                .filter(|(_, step, _)| self.state.cancels(step))
                .map(|(op, _, _)| op)
                .collect();
            for (op, cancel) in &self.running {
                if cancelled.contains(op) {
                    let _ = cancel.send(true);
                }
            }
        }
        if let Some(command) = for_children {
            self.pass_to_children(command, issued_by);
        }
        Ok(recorded)
    }

    /// Commits the groups together with the command's outcome.
    async fn record(
        &mut self,
        groups: Vec<super::Group>,
        origin: CommandRef,
        outcome: StoredOutcome,
    ) -> Result<(i64, StoredOutcome), EngineError> {
        let handled = self.handled(origin, outcome.clone())?;
        let ids = self.commit(groups, vec![handled])?;
        let command_id = ids.first().copied().unwrap_or_default();
        Ok((command_id, outcome))
    }

    fn handled(
        &self,
        command: CommandRef,
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
            command,
            state,
            outcome,
            handled_at_ms: self.ctx.clock.now_ms(),
            handled_by: self.ctx.db.holds.me(),
        })
    }
}
