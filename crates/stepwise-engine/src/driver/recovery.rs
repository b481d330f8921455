//! After a crash: operations that the previous holder dispatched but never saw answered.
//! Reads are simply performed again; a write is checked against the file; a command is never
//! repeated without a person saying so.

use stepwise_core::event::Event;
use stepwise_core::ids::EventSeq;
use stepwise_core::operation::{OperationError, OperationErrorKind, OperationRequest};

use super::Driver;
use crate::error::EngineError;
use crate::exec::{self, WriteRecovery};
use crate::lock;

/// How long a recovering driver waits for the processes of a command started before a crash
/// to be gone (their supervisor kills them as soon as the engine that started them dies).
const OLD_TREE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

impl Driver {
    /// Commands first: one that started and never answered may or may not have done its
    /// work, so it is never repeated without a person saying so. And never while anything of
    /// it may still run: its supervisor holds a lock until the command's tree is gone (it kills
    /// the tree when the engine that started it dies), so that is waited for first. Returns the
    /// reads and writes left to recover.
    pub(super) async fn mark_unknown_commands(
        &mut self,
        unanswered: Vec<(EventSeq, OperationRequest)>,
    ) -> Result<Vec<(EventSeq, OperationRequest)>, EngineError> {
        let mut rest = Vec::new();
        for (op, request) in unanswered {
            if matches!(request, OperationRequest::RunCommand(_)) {
                let lock = lock::operation_lock(&self.engine.inner.db.lock_dir, &self.run_id, op);
                let gone = tokio::task::spawn_blocking(move || {
                    lock::wait_operation_gone(&lock, OLD_TREE_PATIENCE)
                })
                .await
                .unwrap_or(false);
                if !gone {
                    tracing::warn!(run_id = %self.run_id, %op, "processes of a command started before a crash are still running; marking its outcome unknown anyway");
                }
                self.record_input(Event::OperationOutcomeUnknown { op })?;
            } else {
                rest.push((op, request));
            }
        }
        Ok(rest)
    }

    /// Reads are performed again; a write is checked against the file.
    pub(super) async fn recover_files(
        &mut self,
        unanswered: Vec<(EventSeq, OperationRequest)>,
    ) -> Result<(), EngineError> {
        for (op, request) in unanswered {
            // A cancelled run does not redo reads or writes.
            if self.state.cancel_requested() {
                let error = OperationError::new(
                    OperationErrorKind::Cancelled,
                    "the run was cancelled before this operation was recovered",
                );
                self.record_input(Event::OperationFailed { op, error })?;
                continue;
            }
            match &request {
                OperationRequest::ReadFile { .. } => self.dispatch(op, request),
                OperationRequest::WriteFile {
                    path,
                    base_hash,
                    content_hash,
                    ..
                } => {
                    let workspace = self.workspace.clone();
                    let (path, base_hash, content_hash) =
                        (path.clone(), base_hash.clone(), content_hash.clone());
                    let recovery = tokio::task::spawn_blocking(move || {
                        exec::recover_write(&workspace, &path, base_hash.as_deref(), &content_hash)
                    })
                    .await
                    .map_err(|e| {
                        EngineError::Internal(format!("recovering a write stopped: {e}"))
                    })?;
                    match recovery {
                        WriteRecovery::NotApplied => self.dispatch(op, request),
                        WriteRecovery::AlreadyApplied(result) => {
                            self.record_input(Event::OperationSucceeded { op, result })?;
                        }
                        WriteRecovery::Conflict(error) => {
                            self.record_input(Event::OperationFailed { op, error })?;
                        }
                    }
                }
                // Recorded as unknown by `mark_unknown_commands`.
                OperationRequest::RunCommand(_) => {}
            }
        }
        Ok(())
    }

    /// Takes one input and commits it with its decisions.
    pub(super) fn record_input(&mut self, input: Event) -> Result<(), EngineError> {
        let group = self.take_input(input)?;
        self.commit(vec![group], Vec::new())?;
        Ok(())
    }
}
