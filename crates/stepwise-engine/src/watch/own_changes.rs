//! Changes Stepwise's own runs made: a file trigger does not answer them (no feedback loops)
//! unless it says `include_own`. A change is a run's own when a run in the workspace recorded,
//! since the change began (give or take the slack), leaving the path as it is now: what an
//! edit wrote, what a command's checkpoint found, a rename's old path gone. While such a run
//! has an operation under way that may change files (a command, an edit) in a live process,
//! what it changed is not known yet, and the trigger waits for it.

use std::collections::{HashMap, HashSet};

use stepwise_core::event::Event;
use stepwise_core::ids::EventSeq;
use stepwise_core::run::workspace_changes;
use stepwise_store::Store;

use super::file_state::MAX_HASHED_BYTES;
use crate::error::EngineError;

/// How far before the first change a run's record still counts (clocks of processes, the
/// time between a write and its record).
const SLACK_MS: i64 = 10_000;

/// What a path was left holding: its content hash (`None`: deleted), and its size.
type Left = (Option<String>, Option<u64>);

/// What the runs of a workspace did to its files lately.
#[derive(Debug, Default)]
pub(super) struct OwnChanges {
    /// A run still changing files: what it changes is not known yet.
    pub(super) busy: bool,
    left: HashMap<String, HashSet<Left>>,
}

impl OwnChanges {
    /// Whether a run left `path` holding `now` (a watcher's content: a hash, or `size:N` for a
    /// file too large to read, matched by size).
    pub(super) fn made(&self, path: &str, now: &Option<String>) -> bool {
        let Some(left) = self.left.get(path) else {
            return false;
        };
        match now.as_deref() {
            None => left.iter().any(|(hash, _)| hash.is_none()),
            Some(content) => match content.strip_prefix("size:") {
                Some(size) => {
                    let size = size.parse::<u64>().ok();
                    left.iter().any(|(hash, left_size)| {
                        hash.is_some() && *left_size == size && size > Some(MAX_HASHED_BYTES)
                    })
                }
                None => left
                    .iter()
                    .any(|(hash, _)| hash.as_deref() == Some(content)),
            },
        }
    }
}

/// Reads what the runs of `workspace` written to at or after `since_ms` recorded changing
/// since then.
pub(super) fn read(
    store: &Store,
    holds: &crate::lock::Holds,
    workspace: &str,
    since_ms: i64,
) -> Result<OwnChanges, EngineError> {
    let since = since_ms.saturating_sub(SLACK_MS);
    let mut own = OwnChanges::default();
    for run in store.runs_in_workspace_since(workspace, since)? {
        let stored = store.load_events(&run.run_id, EventSeq::ZERO)?;
        let mut events = Vec::with_capacity(stored.len());
        let mut recent: HashSet<EventSeq> = HashSet::new();
        for event in &stored {
            // A run this stepwise cannot read changed nothing it can tell.
            if let Ok(decoded) = crate::record::decode(&run.run_id, event) {
                if event.recorded_at_ms >= since {
                    recent.insert(event.seq);
                }
                events.push((event.seq, decoded));
            }
        }
        let changes = workspace_changes(events.iter().map(|(seq, e)| (*seq, e)));
        for (_, _, changes) in changes
            .into_iter()
            .filter(|(seq, _, _)| recent.contains(seq))
        {
            for change in changes {
                if let Some(from) = change.from {
                    own.left.entry(from).or_default().insert((None, None));
                }
                let after = change.after.map(|v| (Some(v.hash), Some(v.size)));
                own.left
                    .entry(change.path)
                    .or_default()
                    .insert(after.unwrap_or((None, None)));
            }
        }
        if !own.busy && changing_files(&events) {
            own.busy = holds.holder(store, &run.run_id).ok().flatten().is_some();
        }
    }
    Ok(own)
}

/// Whether an operation that may change files was started and has no outcome yet.
fn changing_files(events: &[(EventSeq, Event)]) -> bool {
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
