//! A trigger's firing: recorded first as a signal (once, however many watchers see it), then
//! the run it starts, which records the signal as its cause. The store lets one firing start
//! at most one run of a workflow, so a second watcher's start is refused, and is no error.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};
use stepwise_core::cause::{CauseKind, RunCause, WATCH_TRIGGER};
use stepwise_core::ids::RunId;
use stepwise_core::workflow::Workflow;
use stepwise_core::workflow::triggers::TRIGGER_INPUT;
use stepwise_store::Signal;

use crate::engine::Engine;
use crate::error::EngineError;
use crate::start::StartRun;

/// A workflow a watcher starts runs of.
pub(super) struct Target {
    /// The workflow file, its path made absolute and free of links, as every watcher sees it.
    pub(super) path: PathBuf,
    pub(super) workspace: PathBuf,
    pub(super) workflow: Arc<Workflow>,
}

impl Target {
    /// The path as runs record it.
    pub(super) fn path_text(&self) -> String {
        self.path.display().to_string()
    }
}

/// The cause a run started by `signal` records: a named signal by its name, a firing by the
/// summary it was recorded with.
pub(super) fn cause_of(kind: CauseKind, signal: &Signal) -> RunCause {
    let summary = match kind {
        CauseKind::Signal => format!("signal {}", signal.name),
        CauseKind::Files | CauseKind::Schedule => signal.payload["summary"]
            .as_str()
            .unwrap_or("a firing")
            .to_string(),
    };
    RunCause {
        signal_id: signal.signal_id,
        kind,
        summary,
    }
}

/// Starts the run of `target` that `signal` asks for, with `cause`: its id, or `None` when
/// the firing started one already (another watcher's, or this one's before a crash).
pub(super) async fn start(
    engine: &Engine,
    target: &Target,
    cause: &RunCause,
    signal: &Signal,
) -> Result<Option<RunId>, EngineError> {
    let mut inputs = BTreeMap::new();
    if target.workflow.inputs.contains_key(TRIGGER_INPUT) {
        inputs.insert(
            TRIGGER_INPUT.to_string(),
            trigger_input(cause, signal).to_string(),
        );
    }
    let start = StartRun {
        workflow_path: target.path.clone(),
        workspace: target.workspace.clone(),
        inputs,
        trigger: WATCH_TRIGGER.to_string(),
        max_parallel: None,
        budget_micro_usd: None,
        pauses: Default::default(),
        cause: Some(cause.clone()),
    };
    match engine.start_run(start).await {
        Ok(handle) => Ok(Some(handle.run_id().clone())),
        Err(EngineError::Database(error)) if error.is_cause_started() => Ok(None),
        Err(error) => Err(error),
    }
}

/// What a run's `trigger` input holds: what fired, as people read it, and the signal's data.
fn trigger_input(cause: &RunCause, signal: &Signal) -> Value {
    json!({
        "kind": cause.kind,
        "summary": cause.summary,
        "signal_id": signal.signal_id,
        "signal": signal.name,
        "data": signal.payload,
    })
}
