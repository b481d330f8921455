//! A rewind's proposal: the files the run changed after the step started (from its log), each
//! compared with the disk now: put back, left alone as a conflict (something else changed it
//! since), or not restorable (its content then was not kept), with a diff for text.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use stepwise_core::event::FileRestore;
use stepwise_core::ids::{EventSeq, RunId, StepId};
use stepwise_core::run::{RewindTarget, rewind_hash, rewind_targets, unified_diff};

use crate::context::Context;
use crate::error::EngineError;
use crate::exec::file::read_bytes;
use crate::loading::LoadedRun;
use crate::sandbox::Workspace;

/// Contents larger than this are not read to show a diff.
const MAX_DIFFED_BYTES: usize = 256 * 1024;

/// What a rewind would do, for a person to approve by its hash.
#[derive(Debug, Clone, Serialize)]
pub struct RewindProposal {
    /// The run.
    pub run_id: RunId,
    /// The step whose start the files go back to.
    pub to: StepId,
    /// The seq of that start.
    pub at: EventSeq,
    /// Every file the run changed since (that is not as it was already), in path order.
    pub files: Vec<ProposedRestore>,
    /// Names exactly what is put back and what is left alone.
    pub proposal_hash: String,
}

/// One file of a rewind's proposal.
#[derive(Debug, Clone, Serialize)]
pub struct ProposedRestore {
    /// What it is put back to, and what it holds now.
    #[serde(flatten)]
    pub restore: FileRestore,
    /// What putting it back does.
    pub action: RestoreAction,
    /// Whether the rewind puts it back (a conflict only when included by name).
    pub included: bool,
    /// Why it cannot be put back at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// From what it holds now to what it is put back to, when both are text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

/// What putting a file back does to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RestoreAction {
    /// Its content goes back.
    Restore,
    /// It did not exist then: it is removed.
    Delete,
    /// It existed then and is gone now: it is made again.
    Recreate,
}

impl RewindProposal {
    /// The files it leaves as they are.
    pub fn left_alone(&self) -> Vec<String> {
        self.files
            .iter()
            .filter(|f| !f.included)
            .map(|f| f.restore.path.clone())
            .collect()
    }

    /// Why nothing would be put back, in words.
    pub fn nothing_because(&self) -> String {
        if self.files.is_empty() {
            return format!(
                "the files are as they were when step `{}` started (or it changed none)",
                self.to
            );
        }
        "every file it would put back changed since by something else (include one by name to put it back anyway) or cannot be restored".into()
    }
}

/// The proposal for rewinding `loaded` to the start of `to`, with the conflicts in `include`
/// put back too, and the changes of the results at `keep` left as they are.
pub(super) async fn propose(
    ctx: &Arc<Context>,
    loaded: &LoadedRun,
    to: &StepId,
    include: &[String],
    keep: &BTreeSet<EventSeq>,
) -> Result<RewindProposal, EngineError> {
    let events = loaded
        .events
        .iter()
        .map(|(stored, event)| (stored.seq, event));
    let (at, targets) = rewind_targets(events, to, keep).map_err(EngineError::Rewind)?;
    if let Some(unknown) = include
        .iter()
        .find(|path| !targets.iter().any(|t| &t.path == *path))
    {
        return Err(EngineError::Rewind(format!(
            "`{unknown}` is not among the files the run changed after step `{to}` started"
        )));
    }
    let root = PathBuf::from(&loaded.state.started().workspace);
    let paths: Vec<String> = targets.iter().map(|t| t.path.clone()).collect();
    let now: Vec<Result<Option<Vec<u8>>, String>> = tokio::task::spawn_blocking(move || {
        let ws = Workspace::open(&root)?;
        Ok::<_, EngineError>(
            paths
                .iter()
                .map(|path| read_bytes(&ws, path).map_err(|e| e.message))
                .collect(),
        )
    })
    .await
    .map_err(|e| EngineError::Internal(format!("looking at the workspace stopped: {e}")))??;
    let then = read_then(ctx, &targets).await?;
    let mut files = Vec::new();
    for (target, now) in targets.into_iter().zip(now) {
        let then_bytes = target
            .then
            .as_ref()
            .and_then(|v| then.get(&v.hash))
            .cloned();
        if let Some(file) = proposed(target, now, then_bytes, include) {
            files.push(file);
        }
    }
    let restores: Vec<FileRestore> = files
        .iter()
        .filter(|f| f.included)
        .map(|f| f.restore.clone())
        .collect();
    let left_alone: Vec<String> = files
        .iter()
        .filter(|f| !f.included)
        .map(|f| f.restore.path.clone())
        .collect();
    Ok(RewindProposal {
        run_id: loaded.row.run_id.clone(),
        to: to.clone(),
        at,
        proposal_hash: rewind_hash(to, at, &restores, &left_alone),
        files,
    })
}

/// The contents the files held then that are small enough to diff, by hash.
async fn read_then(
    ctx: &Arc<Context>,
    targets: &[RewindTarget],
) -> Result<BTreeMap<String, Vec<u8>>, EngineError> {
    let hashes: Vec<String> = targets
        .iter()
        .filter_map(|t| t.then.as_ref())
        .filter(|v| v.stored && v.size as usize <= MAX_DIFFED_BYTES)
        .map(|v| v.hash.clone())
        .collect();
    ctx.db
        .read(move |store| {
            let mut found = BTreeMap::new();
            for hash in &hashes {
                if let Some(bytes) = store.get_blob(hash)? {
                    found.insert(hash.clone(), bytes);
                }
            }
            Ok(found)
        })
        .await
}

/// One file's part of the proposal; `None` when it holds what it held then already.
fn proposed(
    target: RewindTarget,
    now: Result<Option<Vec<u8>>, String>,
    then_bytes: Option<Vec<u8>>,
    include: &[String],
) -> Option<ProposedRestore> {
    let (found, now_bytes, unreadable) = match now {
        Ok(bytes) => (
            bytes.as_ref().map(|b| stepwise_core::hash::content_hash(b)),
            bytes,
            None,
        ),
        Err(message) => (None, None, Some(message)),
    };
    let then_hash = target.then.as_ref().map(|v| v.hash.clone());
    if unreadable.is_none() && found == then_hash {
        return None;
    }
    let left_hash = target.left.as_ref().map(|v| v.hash.clone());
    let conflict = unreadable.is_some() || found != left_hash;
    let problem = match (&target.then, &unreadable) {
        (_, Some(message)) => Some(format!("it cannot be read now: {message}")),
        (Some(version), None) if !version.stored => Some(format!(
            "its content then ({} bytes) was over the checkpoints' size ceiling, so it was not kept",
            version.size
        )),
        _ => None,
    };
    let action = match (&target.then, &found) {
        (None, _) => RestoreAction::Delete,
        (Some(_), None) => RestoreAction::Recreate,
        (Some(_), Some(_)) => RestoreAction::Restore,
    };
    let included = problem.is_none() && (!conflict || include.contains(&target.path));
    // A side that does not exist diffs as empty; one too large or not text is not diffed.
    let text = |exists: bool, bytes: &Option<Vec<u8>>| -> Option<String> {
        match (exists, bytes) {
            (false, _) => Some(String::new()),
            (true, Some(b)) if b.len() <= MAX_DIFFED_BYTES => String::from_utf8(b.clone()).ok(),
            (true, _) => None,
        }
    };
    let now_text = text(found.is_some(), &now_bytes);
    let then_text = text(target.then.is_some(), &then_bytes);
    let diff = match (now_text, then_text) {
        (Some(now_text), Some(then_text)) if problem.is_none() => Some(unified_diff(
            &target.path,
            found.is_some().then_some(now_text.as_str()),
            &then_text,
        )),
        _ => None,
    };
    Some(ProposedRestore {
        restore: FileRestore {
            path: target.path,
            to: target.then,
            found,
            conflict,
        },
        action,
        included,
        problem,
        diff,
    })
}
