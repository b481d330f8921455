//! After a crash: operations that the previous holder dispatched but never saw answered.
//! Reads are simply performed again; a write is checked against the file; a command is never
//! repeated without a person saying so.

use stepwise_core::event::Event;
use stepwise_core::operation::{OperationError, OperationErrorKind, OperationRequest};

use super::Driver;
use crate::error::EngineError;
use crate::exec::{self, WriteRecovery};

impl Driver {
    pub(super) async fn recover_unanswered(
        &mut self,
        unanswered: Vec<(u64, OperationRequest)>,
    ) -> Result<(), EngineError> {
        for (op, request) in unanswered {
            // A cancelled run does not redo reads or writes; commands still need a person's
            // word on what happened, and the cancel then ends their steps.
            if self.state.cancel_requested() && !matches!(request, OperationRequest::RunCommand(_))
            {
                let error = OperationError::new(
                    OperationErrorKind::Cancelled,
                    "the run was cancelled before this operation was recovered",
                );
                self.record_input(Event::OperationFailed { op, error })
                    .await?;
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
                            self.record_input(Event::OperationSucceeded { op, result })
                                .await?;
                        }
                        WriteRecovery::Conflict(error) => {
                            self.record_input(Event::OperationFailed { op, error })
                                .await?;
                        }
                    }
                }
                OperationRequest::RunCommand(_) => {
                    self.record_input(Event::OperationOutcomeUnknown { op })
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Takes one input and commits it with its decisions.
    pub(super) async fn record_input(&mut self, input: Event) -> Result<(), EngineError> {
        let group = self.take_input(input)?;
        self.commit(vec![group], Vec::new())?;
        Ok(())
    }
}
