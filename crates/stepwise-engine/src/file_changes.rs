//! What a run's operations changed in its workspace's files, as people are shown it: each
//! step's changes in log order, with a diff for text files (both versions kept, each small
//! enough to read).

use serde::Serialize;
use stepwise_core::checkpoint::{FileChange, FileVersion, change_diff};
use stepwise_core::ids::{EventSeq, StepId};
use stepwise_core::run::workspace_changes;
use stepwise_store::Store;

use crate::engine::Engine;
use crate::error::EngineError;
use crate::loading::LoadedRun;

/// Versions larger than this are not read to make a diff.
const MAX_DIFFED_BYTES: u64 = 256 * 1024;
/// A diff longer than this is cut, saying so.
const MAX_DIFF_BYTES: usize = 64 * 1024;
/// The most changes of one operation given a diff (a step that touched thousands of files is
/// listed whole, its first diffs shown).
const MAX_DIFFS_PER_OPERATION: usize = 50;

/// The changes one operation of a step made.
#[derive(Debug, Clone, Serialize)]
pub struct OperationChanges {
    /// The seq of the result that records them.
    pub seq: EventSeq,
    /// The step whose operation it was.
    pub step: StepId,
    /// What changed, path by path.
    pub changes: Vec<ShownChange>,
}

/// One change, with its diff when it is text.
#[derive(Debug, Clone, Serialize)]
pub struct ShownChange {
    /// The change as recorded.
    #[serde(flatten)]
    pub change: FileChange,
    /// A unified diff, when both versions are text small enough to compare.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

impl Engine {
    /// What the operations of a run already read (`load_run`) changed in its workspace's
    /// files, in log order: only the versions' blobs are read for the diffs.
    pub async fn file_changes(
        &self,
        loaded: &LoadedRun,
    ) -> Result<Vec<OperationChanges>, EngineError> {
        let found = workspace_changes(loaded.events.iter().map(|(s, e)| (s.seq, e)));
        if found.is_empty() {
            return Ok(Vec::new());
        }
        self.ctx
            .db
            .read(move |store| {
                Ok(found
                    .iter()
                    .map(|(seq, step, changes)| OperationChanges {
                        seq: *seq,
                        step: step.clone(),
                        changes: shown_all(store, changes.clone()),
                    })
                    .collect())
            })
            .await
    }

    /// Each change with its diff when it is text: for changes already read from the log (the
    /// app's step panel reads its step's operations).
    pub async fn show_changes(
        &self,
        changes: Vec<FileChange>,
    ) -> Result<Vec<ShownChange>, EngineError> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        self.ctx
            .db
            .read(move |store| Ok(shown_all(store, changes.clone())))
            .await
    }
}

/// Each change, the first [`MAX_DIFFS_PER_OPERATION`] with their diffs.
fn shown_all(store: &Store, changes: Vec<FileChange>) -> Vec<ShownChange> {
    changes
        .into_iter()
        .enumerate()
        .map(|(i, change)| match i < MAX_DIFFS_PER_OPERATION {
            true => shown(store, change),
            false => ShownChange { change, diff: None },
        })
        .collect()
}

fn shown(store: &Store, change: FileChange) -> ShownChange {
    let text = |version: &Option<FileVersion>| -> Option<String> {
        let version = version.as_ref()?;
        if !version.stored || version.size > MAX_DIFFED_BYTES {
            return None;
        }
        let bytes = store.get_blob(&version.hash).ok()??;
        String::from_utf8(bytes).ok()
    };
    let (before, after) = (text(&change.before), text(&change.after));
    let diff = change_diff(&change, before.as_deref(), after.as_deref()).map(|mut diff| {
        if diff.len() > MAX_DIFF_BYTES {
            let mut end = MAX_DIFF_BYTES;
            while !diff.is_char_boundary(end) {
                end -= 1;
            }
            diff.truncate(end);
            diff.push_str("\n… (the diff is cut here)\n");
        }
        diff
    });
    ShownChange { change, diff }
}
