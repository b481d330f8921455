//! What a run's operations changed in its workspace's files, read back from its log by step.

use std::collections::BTreeMap;

use crate::checkpoint::FileChange;
use crate::event::Event;
use crate::ids::{EventSeq, StepId};

/// The workspace changes a run's operations made, in log order: the seq of the result that
/// records them, the step, and the changes.
pub fn workspace_changes<'a>(
    events: impl IntoIterator<Item = (EventSeq, &'a Event)>,
) -> Vec<(EventSeq, StepId, Vec<FileChange>)> {
    let mut steps: BTreeMap<EventSeq, StepId> = BTreeMap::new();
    let mut found = Vec::new();
    for (seq, event) in events {
        match event {
            Event::OperationStarted { step, request, .. } if request.may_change_files() => {
                steps.insert(seq, step.clone());
            }
            Event::OperationSucceeded { op, result } => {
                let changes = result.file_changes();
                if let (Some(step), false) = (steps.get(op), changes.is_empty()) {
                    found.push((seq, step.clone(), changes.to_vec()));
                }
            }
            Event::OperationFailed { op, error } => {
                if let (Some(step), false) = (steps.get(op), error.changes.is_empty()) {
                    found.push((seq, step.clone(), error.changes.clone()));
                }
            }
            _ => {}
        }
    }
    found
}
