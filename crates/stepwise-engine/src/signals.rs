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
            let deadline =
                timeout_ms.map(|ms| tokio::time::Instant::now() + Duration::from_millis(ms));
            loop {
                let (wanted, run, op) = (name.clone(), ctx.run_id.to_string(), ctx.op.get());
                let taken = engine
                    .db
                    .write(move |store| store.take_signal(&wanted, &run, op))
                    .await
                    .map_err(|e| {
                        OperationError::new(
                            OperationErrorKind::Io,
                            format!("signals could not be read: {e}"),
                        )
                    })?;
                if let Some(signal) = taken {
                    return Ok(received(signal));
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

    /// The unfinished runs with a step waiting for a signal named `name`, oldest first.
    pub async fn runs_waiting_for_signal(&self, name: &str) -> Result<Vec<RunId>, EngineError> {
        let mut waiting = Vec::new();
        for row in self.unfinished_runs().await? {
            let Ok(loaded) = self.load_run(row.run_id.as_str()).await else {
                continue;
            };
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
