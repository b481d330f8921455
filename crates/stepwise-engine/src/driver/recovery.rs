//! After a crash: operations that the previous holder dispatched but never saw answered. What
//! each kind needs is its executor's to say (`Executor::after_crash`): reads are performed
//! again, a write is checked against the file, a command is never repeated without a person
//! saying so.

use stepwise_core::event::Event;
use stepwise_core::operation::{OperationError, OperationErrorKind};
use tokio::sync::watch;

use super::{Driver, Unanswered};
use crate::error::EngineError;
use crate::exec::{AfterCrash, Recovery};

impl Driver {
    /// First the operations whose outcome nobody can know (commands): each is marked so, for a
    /// person to resolve, once nothing of it can still be running. Returns the others.
    pub(super) async fn ask_about_lost_outcomes(
        &mut self,
        unanswered: Vec<Unanswered>,
    ) -> Result<Vec<Unanswered>, EngineError> {
        let mut rest = Vec::new();
        for (op, step, request) in unanswered {
            let executor = self.ctx.executors.for_request(&request);
            if !matches!(executor.after_crash(), AfterCrash::AskPerson) {
                rest.push((op, step, request));
                continue;
            }
            let (_keep, cancel) = watch::channel(false);
            let recovery = executor
                .recover(self.op_context(op, step, cancel), request)
                .await;
            self.settle_recovered(op, recovery)?;
        }
        Ok(rest)
    }

    /// Then the rest: performed again, or answered from what the world shows.
    pub(super) async fn recover_the_rest(
        &mut self,
        unanswered: Vec<Unanswered>,
    ) -> Result<(), EngineError> {
        for (op, step, request) in unanswered {
            // A cancelled run does not redo anything (but the compensations a cancel set off).
            if self.state.cancels(&step) {
                let error = OperationError::new(
                    OperationErrorKind::Cancelled,
                    "the run was cancelled before this operation was recovered",
                );
                self.record_input(Event::OperationFailed { op, error })?;
                continue;
            }
            let executor = self.ctx.executors.for_request(&request);
            match executor.after_crash() {
                AfterCrash::Repeat => {
                    self.dispatch_with(op, step, request, true, crate::exec::Recorded::already());
                }
                AfterCrash::Check | AfterCrash::AskPerson => {
                    let (_keep, cancel) = watch::channel(false);
                    let recovery = executor
                        .recover(self.op_context(op, step.clone(), cancel), request.clone())
                        .await;
                    if matches!(recovery, Recovery::Repeat) {
                        self.dispatch_with(
                            op,
                            step,
                            request,
                            true,
                            crate::exec::Recorded::already(),
                        );
                    } else {
                        self.settle_recovered(op, recovery)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Records what recovery found out (a `Repeat` has nothing to record here).
    fn settle_recovered(
        &mut self,
        op: stepwise_core::ids::EventSeq,
        recovery: Recovery,
    ) -> Result<(), EngineError> {
        match recovery {
            Recovery::Repeat => Ok(()),
            Recovery::Unknown => self.record_input(Event::OperationOutcomeUnknown { op }),
            Recovery::Answered(Ok(result)) => {
                self.record_input(Event::OperationSucceeded { op, result })
            }
            Recovery::Answered(Err(error)) => {
                self.record_input(Event::OperationFailed { op, error })
            }
        }
    }

    /// Takes one input and commits it with its decisions.
    pub(super) fn record_input(&mut self, input: Event) -> Result<(), EngineError> {
        let group = self.take_input(input)?;
        self.commit(vec![group], Vec::new())?;
        Ok(())
    }
}
