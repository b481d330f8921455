//! Workspace checkpoints: before an operation that may change the workspace's files (a
//! command, an MCP call) the engine looks at them, and after it looks again; what changed is
//! part of the operation's recorded result (`stepwise_core::checkpoint`). Every version seen
//! of a file at most the ceiling is kept as a content-addressed blob, so a file can be put back
//! as it was at any checkpoint: storage grows with what changed, since a content already kept
//! is not kept again.
//!
//! What each file's hash was when last looked at is kept per workspace for the life of the
//! engine (see `scan`), so that a checkpoint hashes only what moved. Checkpoints of one
//! workspace are taken one at a time.

mod scan;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use stepwise_core::checkpoint::{CheckpointSpec, FileChange, Snapshot, changes_between};
use stepwise_core::operation::{OperationError, OperationErrorKind, OperationResult};

use crate::db::Writer;
use crate::error::EngineError;
use crate::sandbox::Workspace;

/// Contents are handed to the store in batches of about this many bytes.
const BATCH_BYTES: usize = 8 * 1024 * 1024;

/// What was known of each file of one workspace when last looked at, by path.
type Known = Arc<Mutex<HashMap<String, scan::Known>>>;

/// What the engine knows of each workspace it has taken checkpoints of.
#[derive(Default)]
pub(crate) struct Checkpoints {
    known: Mutex<HashMap<PathBuf, Known>>,
    /// Blobs this engine has stored (or found stored), by hash.
    stored: Arc<Mutex<HashSet<String>>>,
}

impl Checkpoints {
    /// What takes checkpoints of `ws` as `spec` says.
    pub(crate) fn of(
        &self,
        ws: Arc<Workspace>,
        spec: &CheckpointSpec,
        writer: Arc<Writer>,
    ) -> Result<Checkpointer, String> {
        let known = Arc::clone(
            self.known
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(ws.root().to_path_buf())
                .or_default(),
        );
        Ok(Checkpointer {
            ws,
            ignore: ignore_set(&spec.ignore)?,
            max_file_bytes: spec.max_file_bytes,
            known,
            stored: Arc::clone(&self.stored),
            writer,
        })
    }
}

/// The checkpoint's `ignore` globs, matched against workspace-relative paths as `.gitignore`
/// patterns are: `*` within one directory; a glob ending in `/` names a directory; one without
/// a `/` before its end (`node_modules/`, `*.tmp`) matches at any depth, one with (`/build`,
/// `src/gen/`) from the workspace's top.
pub(crate) fn ignore_set(globs: &[String]) -> Result<GlobSet, String> {
    let mut set = GlobSetBuilder::new();
    let anchored = |glob: &str| glob.trim_end_matches('/').contains('/');
    let mut all: Vec<String> = Vec::new();
    for glob in globs {
        let glob = glob.strip_prefix('/').unwrap_or(glob);
        all.push(glob.to_string());
        if !anchored(glob) && !glob.starts_with("**") {
            all.push(format!("**/{glob}"));
        }
    }
    for glob in &all {
        let built = GlobBuilder::new(glob)
            .literal_separator(true)
            .build()
            .map_err(|e| format!("checkpoint.ignore glob `{glob}`: {e}"))?;
        set.add(built);
        // `build/` and `build/**` name what is inside a directory, and the directory.
        if let Some(dir) = glob.strip_suffix("/**")
            && let Ok(built) = GlobBuilder::new(dir).literal_separator(true).build()
        {
            set.add(built);
        }
    }
    set.build()
        .map_err(|e| format!("checkpoint.ignore globs: {e}"))
}

/// The paths of the files a checkpoint of `ws` looks at, as they are now (nothing is stored).
pub(crate) fn checkpointed_paths(
    ws: &Workspace,
    spec: &CheckpointSpec,
) -> Result<Vec<String>, String> {
    let ignore = ignore_set(&spec.ignore)?;
    let scanned = scan::scan(
        ws,
        &ignore,
        spec.max_file_bytes,
        &std::collections::HashMap::new(),
        &mut |_, _| Ok(()),
    )?;
    Ok(scanned.snapshot.into_keys().collect())
}

/// Takes checkpoints of one workspace.
#[derive(Clone)]
pub(crate) struct Checkpointer {
    ws: Arc<Workspace>,
    ignore: GlobSet,
    max_file_bytes: u64,
    known: Known,
    stored: Arc<Mutex<HashSet<String>>>,
    writer: Arc<Writer>,
}

impl Checkpointer {
    /// The workspace's files as they are now, every content seen stored before this returns.
    pub(crate) async fn take(&self) -> Result<Snapshot, String> {
        let this = self.clone();
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || this.take_blocking(&runtime))
            .await
            .map_err(|e| format!("the checkpoint stopped: {e}"))?
    }

    fn take_blocking(&self, runtime: &tokio::runtime::Handle) -> Result<Snapshot, String> {
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        let mut batch: Vec<(String, Vec<u8>)> = Vec::new();
        let mut in_batch: HashSet<String> = HashSet::new();
        let mut batch_bytes = 0usize;
        let mut read = |hash: String, content: Vec<u8>| {
            let kept = self
                .stored
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(&hash);
            if kept || !in_batch.insert(hash.clone()) {
                return Ok(());
            }
            batch_bytes += content.len();
            batch.push((hash, content));
            if batch_bytes >= BATCH_BYTES {
                batch_bytes = 0;
                in_batch.clear();
                return self.store(runtime, std::mem::take(&mut batch));
            }
            Ok(())
        };
        let scanned = scan::scan(
            &self.ws,
            &self.ignore,
            self.max_file_bytes,
            &known,
            &mut read,
        )?;
        self.store(runtime, batch)?;
        *known = scanned.known;
        Ok(scanned.snapshot)
    }

    /// Stores contents as blobs, in one transaction.
    fn store(
        &self,
        runtime: &tokio::runtime::Handle,
        batch: Vec<(String, Vec<u8>)>,
    ) -> Result<(), String> {
        if batch.is_empty() {
            return Ok(());
        }
        let hashes: Vec<String> = batch.iter().map(|(h, _)| h.clone()).collect();
        // Contents are stored once by their hash, so storing them again is harmless: a database
        // server that went away (a restart) is waited for, as a driver waits for it.
        let batch = Arc::new(batch);
        let began = std::time::Instant::now();
        loop {
            let contents = Arc::clone(&batch);
            let stored = runtime.block_on(
                self.writer
                    .write(move |store| store.put_hashed_blobs(&contents)),
            );
            match stored {
                Ok(()) => break,
                Err(EngineError::Database(error))
                    if error.is_server_gone() && began.elapsed() < crate::db::OUTAGE_PATIENCE =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(250));
                }
                Err(e) => {
                    return Err(format!(
                        "the checkpoint's contents could not be stored: {e}"
                    ));
                }
            }
        }
        self.stored
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(hashes);
        Ok(())
    }
}

/// Performs `work` between two checkpoints and records what changed in its result (a
/// command's, an MCP call's, an edit's), or in its error when it failed. Without a first checkpoint the work is not done: what it changes
/// could not be told apart from what was there. When the second cannot be taken, the result
/// says nothing of changes, and the log says why.
pub(crate) async fn around<F>(
    checkpointer: Option<&Checkpointer>,
    what: &str,
    work: F,
) -> Result<OperationResult, OperationError>
where
    F: Future<Output = Result<OperationResult, OperationError>>,
{
    let Some(checkpointer) = checkpointer else {
        return work.await;
    };
    let before = checkpointer.take().await.map_err(|why| {
        OperationError::new(
            OperationErrorKind::Io,
            format!("{what} was not started: the workspace's checkpoint could not be taken: {why}"),
        )
    })?;
    // Taken after a failure too: a command cancelled mid-way may have changed files already.
    let mut outcome = work.await;
    let changes = match &mut outcome {
        Ok(result) => changes_of(result),
        Err(error) => Some(&mut error.changes),
    };
    let Some(changes) = changes else {
        return outcome;
    };
    match checkpointer.take().await {
        Ok(after) => *changes = changes_between(&before, &after),
        Err(why) => tracing::warn!(%why, "the checkpoint after {what} could not be taken"),
    }
    outcome
}

/// Where a result keeps the changes its operation made.
fn changes_of(result: &mut OperationResult) -> Option<&mut Vec<FileChange>> {
    match result {
        OperationResult::CommandFinished(outcome) => Some(&mut outcome.changes),
        OperationResult::McpCalled { changes, .. } => Some(changes),
        OperationResult::FileWritten { changes, .. } => Some(changes),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
