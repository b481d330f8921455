//! Signals: recording one (`stepwise signal`, bounded, once per name and idempotency key), and
//! the executor of `wait_signal` steps, which waits for a signal by name and takes it (each
//! signal is taken by one wait). A wait performed again after a crash finds the signal it
//! took; replay answers it from the log.

use std::time::Duration;

use serde_json::Value;
use stepwise_core::ids::RunId;
use stepwise_core::json_depth::{MAX_VALUE_DEPTH, deeper_than};
use stepwise_core::operation::{
    OperationError, OperationErrorKind, OperationRequest, OperationResult,
};
use stepwise_core::signal::{MAX_KEY_BYTES, MAX_PAYLOAD_BYTES, check_name};
use stepwise_store::{NewSignal, Signal};

use crate::engine::Engine;
use crate::error::EngineError;
use crate::exec::{AfterCrash, BoxFuture, Executor, OpContext, Outcome};

/// How often a wait looks again when no change of the database was seen (another process's
/// commit is noticed by the change watch; this is the floor).
const LOOK_AGAIN: Duration = Duration::from_secs(1);

/// Waits for a signal and takes it.
pub(crate) struct WaitSignal;

impl Executor for WaitSignal {
    fn perform(&self, ctx: OpContext, request: OperationRequest) -> BoxFuture<'static, Outcome> {
        Box::pin(async move {
            let OperationRequest::WaitSignal { name, timeout_ms } = request else {
                return Err(OperationError::new(
                    OperationErrorKind::Io,
                    "wait_signal was asked with another request",
                ));
            };
            let engine = ctx.engine.upgrade().ok_or_else(|| {
                OperationError::new(OperationErrorKind::Cancelled, "the engine is shutting down")
            })?;
            let mut changes = engine.db.watch_changes();
            let mut cancel = ctx.cancel.clone();
            let (run, op) = (ctx.run_id.clone(), ctx.op);
            // The timeout counts from when the wait started, as recorded, however often it is
            // performed again after a crash.
            let started_at = {
                let run = run.clone();
                engine
                    .db
                    .read(move |store| {
                        Ok(store
                            .load_events_at(&run, &[op])?
                            .first()
                            .map(|e| e.recorded_at_ms))
                    })
                    .await
                    .ok()
                    .flatten()
            };
            let waited = started_at.map_or(0, |at| {
                u64::try_from(engine.clock.now_ms().saturating_sub(at)).unwrap_or(0)
            });
            let deadline = timeout_ms.map(|ms| {
                tokio::time::Instant::now() + Duration::from_millis(ms.saturating_sub(waited))
            });
            loop {
                // Looked for with a read; the write lock is taken only to take one.
                changes.borrow_and_update();
                let (wanted, run_text) = (name.clone(), run.to_string());
                let ready = engine
                    .db
                    .read(move |store| Ok(store.signal_ready(&wanted, &run_text, op.get())?))
                    .await
                    .map_err(unreadable)?;
                if ready {
                    let (wanted, run_text) = (name.clone(), run.to_string());
                    let taken = engine
                        .db
                        .write(move |store| store.take_signal(&wanted, &run_text, op.get()))
                        .await
                        .map_err(unreadable)?;
                    // This write is a change too: it is not a reason to look again.
                    changes.borrow_and_update();
                    if let Some(signal) = taken {
                        return Ok(received(signal));
                    }
                }
                let timeout = async {
                    match deadline {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = changes.changed() => {}
                    () = tokio::time::sleep(LOOK_AGAIN) => {}
                    _ = cancel.wait_for(|c| *c) => {
                        return Err(OperationError::new(OperationErrorKind::Cancelled, format!("the wait for signal `{name}` was cancelled")));
                    }
                    () = timeout => {
                        return Err(OperationError::new(
                            OperationErrorKind::Timeout,
                            format!(
                                "no signal `{name}` arrived within {}",
                                humantime::format_duration(Duration::from_millis(timeout_ms.unwrap_or(0)))
                            ),
                        ));
                    }
                }
            }
        })
    }

    fn after_crash(&self) -> AfterCrash {
        // Taking is idempotent for one wait: performed again, it finds what it took.
        AfterCrash::Repeat
    }
}

fn unreadable(error: EngineError) -> OperationError {
    OperationError::new(
        OperationErrorKind::Io,
        format!("signals could not be read: {error}"),
    )
}

fn received(signal: Signal) -> OperationResult {
    OperationResult::SignalReceived {
        signal_id: signal.signal_id,
        name: signal.name,
        payload: signal.payload,
        idempotency_key: signal.idempotency_key,
        correlation_id: signal.correlation_id,
    }
}

/// A signal as `stepwise signal` sends it.
#[derive(Debug, Clone)]
pub struct SendSignal {
    /// What waits for it name it so (`wait_signal`'s `name`).
    pub name: String,
    /// Its data: the waiting step's output.
    pub payload: Value,
    /// Without one, each send is a signal of its own.
    pub idempotency_key: Option<String>,
    /// Ties it to other records of one piece of work.
    pub correlation_id: Option<String>,
}

/// What recording a signal did.
#[derive(Debug, Clone)]
pub struct SignalSent {
    /// Its id in the database.
    pub signal_id: i64,
    /// `false`: a signal of that name and key was recorded already (this one is that one).
    pub recorded: bool,
    /// The run and operation that took it, if one did yet.
    pub taken_by: Option<(RunId, u64)>,
}

impl Engine {
    /// Records a signal (once per name and idempotency key); a `wait_signal` step waiting for
    /// it takes it, in whichever process drives that run.
    pub async fn send_signal(&self, signal: SendSignal) -> Result<SignalSent, EngineError> {
        self.ctx.db.check_writable()?;
        let invalid = EngineError::Signal;
        check_name(&signal.name).map_err(invalid)?;
        let payload_text = signal.payload.to_string();
        if payload_text.len() > MAX_PAYLOAD_BYTES {
            return Err(invalid(format!(
                "the signal's data is {} bytes of JSON; at most {} MiB",
                payload_text.len(),
                MAX_PAYLOAD_BYTES / (1024 * 1024)
            )));
        }
        if deeper_than(&signal.payload, MAX_VALUE_DEPTH) {
            return Err(invalid(format!(
                "the signal's data nests deeper than {MAX_VALUE_DEPTH} levels"
            )));
        }
        if signal
            .correlation_id
            .as_ref()
            .is_some_and(|c| c.is_empty() || c.len() > MAX_KEY_BYTES)
        {
            return Err(invalid(format!(
                "`--correlation` must be 1 to {MAX_KEY_BYTES} bytes"
            )));
        }
        let key = match signal.idempotency_key {
            Some(key) if key.is_empty() || key.len() > MAX_KEY_BYTES => {
                return Err(invalid(format!(
                    "`--key` must be 1 to {MAX_KEY_BYTES} bytes"
                )));
            }
            Some(key) => key,
            None => uuid::Uuid::new_v4().to_string(),
        };
        let new = NewSignal {
            name: signal.name,
            payload: signal.payload,
            idempotency_key: key,
            correlation_id: signal.correlation_id,
            source: self.ctx.config.user.clone(),
            created_at_ms: self.ctx.clock.now_ms(),
        };
        let (recorded, inserted) = self
            .ctx
            .db
            .write(move |store| store.record_signal(&new))
            .await?;
        Ok(SignalSent {
            signal_id: recorded.signal_id,
            recorded: inserted,
            taken_by: recorded.consumed_by.map(|(run, op)| (RunId::from(run), op)),
        })
    }

    /// Whether all `run_id` has under way is waits for signals none of which has arrived: it
    /// can move only when one is sent.
    pub async fn only_waits_for_signals(&self, run_id: &RunId) -> Result<bool, EngineError> {
        let loaded = self.load_run(run_id.as_str()).await?;
        let mut waits = Vec::new();
        for (op, _, request) in loaded.state.unanswered_operations() {
            match request {
                OperationRequest::WaitSignal { name, .. } => waits.push((name.clone(), op.get())),
                _ => return Ok(false),
            }
        }
        if waits.is_empty() {
            return Ok(false);
        }
        let run = run_id.to_string();
        self.ctx
            .db
            .read(move |store| {
                for (name, op) in &waits {
                    if store.signal_ready(name, &run, *op)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            })
            .await
    }

    /// The run a signal just sent should be driven on in this process: when no step took it
    /// yet and no process drives any run waiting for it, the oldest run waiting for it (so
    /// that a sender never drives a run another one takes the signal in). `None` otherwise.
    pub async fn run_to_wake_for(
        &self,
        name: &str,
        sent: &SignalSent,
    ) -> Result<Option<RunId>, EngineError> {
        if sent.taken_by.is_some() {
            return Ok(None);
        }
        let mut unheld = Vec::new();
        for run in self.runs_waiting_for_signal(name).await? {
            if self.holder(&run).await?.is_some() {
                return Ok(None);
            }
            unheld.push(run);
        }
        Ok(unheld.into_iter().next())
    }

    /// The unfinished runs, not paused, with a step waiting for a signal named `name`, oldest
    /// first.
    pub async fn runs_waiting_for_signal(&self, name: &str) -> Result<Vec<RunId>, EngineError> {
        let mut waiting = Vec::new();
        for row in self.unfinished_runs().await? {
            let Ok(loaded) = self.load_run(row.run_id.as_str()).await else {
                continue;
            };
            // A paused run stays paused: a signal is taken when it is resumed.
            if loaded.state.paused_by().is_some() {
                continue;
            }
            let waits = loaded.state.steps().any(|(def, state)| {
                state.status == stepwise_core::run::StepStatus::Running
                    && matches!(&def.action, stepwise_core::workflow::Action::WaitSignal { name: n } if n == name)
            });
            if waits {
                waiting.push(row.run_id);
            }
        }
        Ok(waiting)
    }
}
