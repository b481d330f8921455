//! Changes Stepwise's own runs made: a file trigger does not answer them (no feedback loops)
//! unless it says `include_own`. A change is a run's own when a run in the workspace, written
//! to since the change began, recorded leaving the path as it is now. While such a run has an
//! operation under way that may change files (a command, an edit) in a live process, what it
//! changed is not known yet, and the trigger waits for it.

use std::collections::{HashMap, HashSet};

use stepwise_core::event::Event;
use stepwise_core::run::workspace_changes;
use stepwise_store::Store;

use crate::error::EngineError;

/// How far before the first change a run's writes still count (clocks of processes, the
/// time between a write and its record).
const SLACK_MS: i64 = 10_000;

/// What the runs of a workspace did to its files lately.
#[derive(Debug, Default)]
pub(super) struct OwnChanges {
    /// A run still changing files: what it changes is not known yet.
    pub(super) busy: bool,
    /// For each path, what runs left it holding (`None`: deleted).
    left: HashMap<String, HashSet<Option<String>>>,
}

impl OwnChanges {
    /// Whether a run left `path` holding `now`.
    pub(super) fn made(&self, path: &str, now: &Option<String>) -> bool {
        self.left
            .get(path)
            .is_some_and(|states| states.contains(now))
    }
}

/// Reads what the runs of `workspace` written to at or after `since_ms` changed.
pub(super) fn read(
    store: &Store,
    lock_dir: &std::path::Path,
    workspace: &str,
    since_ms: i64,
) -> Result<OwnChanges, EngineError> {
    let mut own = OwnChanges::default();
    for run in store.runs_in_workspace_since(workspace, since_ms.saturating_sub(SLACK_MS))? {
        let stored = store.load_events(&run.run_id, stepwise_core::ids::EventSeq::ZERO)?;
        let mut events = Vec::with_capacity(stored.len());
        for event in &stored {
            // A run this stepwise cannot read changed nothing it can tell.
            if let Ok(decoded) = crate::record::decode(&run.run_id, event) {
                events.push((event.seq, decoded));
            }
        }
        for (_, _, changes) in workspace_changes(events.iter().map(|(seq, e)| (*seq, e))) {
            for change in changes {
                let after = change.after.map(|version| version.hash);
                own.left.entry(change.path).or_default().insert(after);
            }
        }
        if !own.busy && changing_files(&events) {
            own.busy = crate::lock::holder(lock_dir, &run.run_id)
                .ok()
                .flatten()
                .is_some();
        }
    }
    Ok(own)
}

/// Whether an operation that may change files was started and has no outcome yet.
fn changing_files(events: &[(stepwise_core::ids::EventSeq, Event)]) -> bool {
    let mut open = HashSet::new();
    for (seq, event) in events {
        match event {
            Event::OperationStarted { request, .. } if request.may_change_files() => {
                open.insert(*seq);
            }
            Event::OperationSucceeded { op, .. }
            | Event::OperationFailed { op, .. }
            | Event::OperationOutcomeUnknown { op } => {
                open.remove(op);
            }
            _ => {}
        }
    }
    !open.is_empty()
}
