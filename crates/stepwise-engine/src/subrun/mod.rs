//! Sub-workflows: a `workflow` step's operation starts a child run of a workflow file the
//! parent recorded, in the same workspace, and waits for its end; the child's `outputs` are
//! the operation's result.
//!
//! The child's id comes from the parent's and the operation's (`child_run_id`), so the
//! operation is performed again after a crash without harm: it finds the child started and
//! waits for it again (the child resumes on its own log). The child is driven like any run:
//! by this process when nobody else holds it, followed when another process does.

mod child;
mod files;

use std::sync::Arc;

use stepwise_core::hash::content_hash;
use stepwise_core::ids::{EventSeq, RunId};
use stepwise_core::operation::{
    OperationError, OperationErrorKind, OperationRequest, OperationResult,
};
use stepwise_core::run::RunStatus;

use crate::context::Context;
use crate::error::EngineError;
use crate::exec::{AfterCrash, BoxFuture, Executor, OpContext, Outcome};

pub(crate) use files::{Gathered, gather};
pub use stepwise_core::subrun::CHILD_TRIGGER;

/// The most a child run may give back, as JSON (it is recorded in the parent's log).
const MAX_OUTPUT_BYTES: usize = 16 * 1024 * 1024;

/// Runs a workflow as a child run and waits for its end.
pub(crate) struct RunWorkflow;

impl Executor for RunWorkflow {
    fn perform(&self, ctx: OpContext, request: OperationRequest) -> BoxFuture<'static, Outcome> {
        Box::pin(async move {
            let OperationRequest::RunWorkflow {
                workflow,
                inputs,
                depth,
            } = request
            else {
                return Err(failed("a child run was asked with another request"));
            };
            let Some(engine) = ctx.engine.upgrade() else {
                return Err(OperationError::new(
                    OperationErrorKind::Cancelled,
                    "the engine is shutting down",
                ));
            };
            let child_id = child_run_id(&ctx.run_id, ctx.op);
            match engine.find_run(child_id.as_str()).await {
                Ok(_) => {}
                Err(EngineError::RunNotFound { .. }) => {
                    let start = child::ChildStart {
                        parent: ctx.run_id.clone(),
                        step: ctx.step.clone(),
                        op: ctx.op,
                        child: child_id.clone(),
                        workflow,
                        inputs,
                        depth,
                    };
                    child::start(&engine, start)
                        .await
                        .map_err(|e| failed(format!("the child run could not start: {e}")))?;
                }
                Err(error) => return Err(failed(format!("the child run: {error}"))),
            }
            let mut cancel = ctx.cancel.clone();
            let waited = tokio::select! {
                outcome = wait_for_end(&engine, &child_id) => Some(outcome),
                _ = cancel.wait_for(|cancel| *cancel) => None,
            };
            if let Some(outcome) = waited {
                return outcome;
            }
            // The parent cancelled (not merely let go): so is its child, even one started
            // after the cancel was passed on to the children it had then.
            if parent_cancelled(&engine, &ctx.run_id).await {
                let by = format!("stepwise (its parent run {} was cancelled)", ctx.run_id);
                let cancel = crate::commands::Command::Cancel;
                let _ = crate::inbox::send_command(&engine, &child_id, cancel, by).await;
            }
            Err(OperationError::new(
                OperationErrorKind::Cancelled,
                "stopped waiting for the child run",
            ))
        })
    }

    /// Performing it again finds the child started (its id is the operation's) and waits
    /// for it: nothing is done twice.
    fn after_crash(&self) -> AfterCrash {
        AfterCrash::Repeat
    }
}

/// The id of the child run operation `op` of run `parent` starts: the same every time it is
/// performed.
pub fn child_run_id(parent: &RunId, op: EventSeq) -> RunId {
    let hash = content_hash(format!("stepwise child run\n{parent}\n{op}").as_bytes());
    let hex = hash.trim_start_matches("sha256:");
    let mut bytes = [0u8; 16];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2).unwrap_or("00"), 16).unwrap_or(0);
    }
    RunId::from(
        uuid::Builder::from_custom_bytes(bytes)
            .into_uuid()
            .to_string(),
    )
}

impl crate::Engine {
    /// Stops driving a run this process drives when all it has under way is child runs it
    /// waits for (they wait for a person) or signals: nothing is recorded, and whoever drives
    /// the run next waits for them again. Whether it let go.
    pub async fn let_go_while_children_wait(&self, run_id: &RunId) -> bool {
        let Some(driver) = self.ctx.live.channel(run_id) else {
            return false;
        };
        let mut stopped = self.ctx.live.stopped(run_id);
        let (reply, answer) = tokio::sync::oneshot::channel();
        let sent = driver.send(crate::messages::Message::LetGoIfOnlyChildrenRun { reply });
        if sent.is_err() || answer.await != Ok(true) {
            return false;
        }
        if let Some(stopped) = stopped.as_mut() {
            let _ = stopped.wait_for(|stopped| *stopped).await;
        }
        true
    }
}

/// The child runs a run's `workflow` steps asked for, in the order asked: each step and the
/// id of its child (which may not have been recorded yet, if a crash came first).
pub fn child_runs(loaded: &crate::LoadedRun) -> Vec<(stepwise_core::ids::StepId, RunId)> {
    loaded
        .events
        .iter()
        .filter_map(|(stored, event)| match event {
            stepwise_core::event::Event::OperationStarted {
                step,
                request: OperationRequest::RunWorkflow { .. },
                ..
            } => Some((step.clone(), child_run_id(&loaded.row.run_id, stored.seq))),
            _ => None,
        })
        .collect()
}

/// Waits until the child run has finished (it may wait for people on the way: the parent
/// waits with it), driving it here when nobody else does, and says what it gave back.
async fn wait_for_end(engine: &Arc<Context>, child: &RunId) -> Outcome {
    let mut changes = engine.db.watch_changes();
    loop {
        changes.borrow_and_update();
        let status = crate::inbox::settle_run(engine, child)
            .await
            .map_err(|e| waiting_failed(child, &e))?;
        if status.is_finished() {
            break;
        }
        engine
            .changed(&mut changes)
            .await
            .map_err(|e| waiting_failed(child, &e))?;
    }
    let loaded = engine
        .load_run(child.as_str())
        .await
        .map_err(|e| waiting_failed(child, &e))?;
    let state = &loaded.state;
    match state.status() {
        RunStatus::Succeeded => {
            let output = state
                .workflow_outputs()
                .map_err(|e| failed(format!("child run {child}: {e}")))?;
            // Recorded in the parent's log, which refuses values nested deeper than this.
            if stepwise_core::json_depth::deeper_than(
                &output,
                stepwise_core::json_depth::MAX_VALUE_DEPTH,
            ) {
                return Err(failed(format!(
                    "child run {child} gave back a value nested deeper than {} levels",
                    stepwise_core::json_depth::MAX_VALUE_DEPTH
                )));
            }
            let size = serde_json::to_vec(&output).map_or(usize::MAX, |b| b.len());
            if size > MAX_OUTPUT_BYTES {
                return Err(failed(format!(
                    "child run {child} gave back {size} bytes, more than the {} MiB a step's output may be",
                    MAX_OUTPUT_BYTES / (1024 * 1024)
                )));
            }
            Ok(OperationResult::WorkflowFinished {
                run_id: child.to_string(),
                output,
            })
        }
        RunStatus::Cancelled => Err(failed(format!("child run {child} was cancelled"))),
        _ => {
            let failed_steps: Vec<String> = state
                .steps()
                .filter(|(d, s)| d.iteration.is_none() && s.error.is_some())
                .map(|(d, s)| format!("`{}`: {}", d.id, s.error.as_deref().unwrap_or_default()))
                .collect();
            let why = if failed_steps.is_empty() {
                state
                    .aborted()
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "it failed".into())
            } else {
                failed_steps.join("; ")
            };
            Err(failed(format!("child run {child} failed: {why}")))
        }
    }
}

/// Whether a run (a parent) has ended or been asked to cancel: its children have nobody to
/// give their output to.
pub(crate) async fn parent_cancelled(ctx: &Arc<Context>, parent: &RunId) -> bool {
    match ctx.load_run(parent.as_str()).await {
        Ok(loaded) => loaded.state.cancel_requested() || loaded.state.status().is_finished(),
        Err(EngineError::RunNotFound { .. }) => true,
        Err(_) => false,
    }
}

fn failed(message: impl Into<String>) -> OperationError {
    OperationError::new(OperationErrorKind::ChildRun, message)
}

fn waiting_failed(child: &RunId, error: &EngineError) -> OperationError {
    match error {
        EngineError::ShutDown => {
            OperationError::new(OperationErrorKind::Cancelled, "the engine is shutting down")
        }
        other => failed(format!("waiting for child run {child}: {other}")),
    }
}
