//! What becomes of a driver that fails. Nothing fails silently: the driver records in the run
//! why it could not go on, where it can (see `Driver::record_failure`); every failure is also
//! logged at `error` with its run and told to whoever subscribed (the app shows it).

use stepwise_core::ids::RunId;
use tokio::sync::broadcast;

use crate::error::EngineError;

/// How many failures a slow subscriber may fall behind by before it misses some.
const FAILURES_KEPT: usize = 64;

/// A driver of this process that stopped on an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverFailure {
    /// The run it drove.
    pub run_id: RunId,
    /// What went wrong, in the engine's words.
    pub message: String,
}

/// The failures of this engine's drivers, as they happen.
pub(crate) struct Failures {
    sender: broadcast::Sender<DriverFailure>,
}

impl Failures {
    pub(crate) fn new() -> Failures {
        Failures {
            sender: broadcast::channel(FAILURES_KEPT).0,
        }
    }

    /// A driver ended with `error` (already recorded in the run where it could be).
    pub(crate) fn driver_failed(&self, run_id: &RunId, error: &EngineError) {
        // Stopping, and a run of another machine (its own processes drive it), are no failures.
        if matches!(
            error,
            EngineError::ShutDown | EngineError::DrivenElsewhere { .. }
        ) {
            return;
        }
        tracing::error!(%run_id, %error, "the driver of a run failed");
        let _ = self.sender.send(DriverFailure {
            run_id: run_id.clone(),
            message: error.to_string(),
        });
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<DriverFailure> {
        self.sender.subscribe()
    }
}
