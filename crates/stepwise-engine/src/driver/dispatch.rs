//! Dispatching an operation: it runs on the engine's executor runtime, never on the writer's
//! thread, and its outcome comes back to the driver as a message.

use stepwise_core::ids::{EventSeq, StepId};
use stepwise_core::operation::OperationRequest;
use tokio::sync::watch;

use super::Driver;
use crate::exec::{self, OpContext};
use crate::messages::Message;

impl Driver {
    /// What an executor needs to perform operation `op` of step `step`.
    pub(super) fn op_context(
        &self,
        op: EventSeq,
        step: StepId,
        cancel: watch::Receiver<bool>,
    ) -> OpContext {
        OpContext {
            workspace: self.workspace.clone(),
            run_id: self.run_id.clone(),
            op,
            step,
            lock_dir: self.ctx.db.lock_dir.clone(),
            commands_lock: self.commands_lock.clone(),
            cancel,
            recovering: false,
            recorded: exec::Recorded::already(),
            checkpoint: self.checkpointer.clone(),
            engine: std::sync::Arc::downgrade(&self.ctx),
        }
    }

    /// Performs an operation in the background, with the executor of its kind; its outcome
    /// comes back as a message.
    pub(super) fn dispatch(&mut self, op: EventSeq, step: StepId, request: OperationRequest) {
        self.dispatch_with(op, step, request, false, exec::Recorded::already());
    }

    /// `dispatch`, saying whether the operation is performed again after a crash, and when
    /// its request is recorded.
    pub(super) fn dispatch_with(
        &mut self,
        op: EventSeq,
        step: StepId,
        request: OperationRequest,
        recovering: bool,
        recorded: exec::Recorded,
    ) {
        let (cancel_tx, cancel_rx) = watch::channel(false);
        self.running.insert(op, cancel_tx);
        let mut op_ctx = self.op_context(op, step, cancel_rx);
        op_ctx.recovering = recovering;
        op_ctx.recorded = recorded;
        let work = self
            .ctx
            .executors
            .for_request(&request)
            .perform(op_ctx, request);
        let tx = self.tx.clone();
        // On the executor runtime, never on the writer's thread: a slow commit must not hold
        // up a model's stream or a command's pipes, nor they a commit.
        self.ctx.exec.spawn(async move {
            let outcome = work.await;
            let _ = tx.send(Message::OperationDone { op, outcome });
        });
    }
}
