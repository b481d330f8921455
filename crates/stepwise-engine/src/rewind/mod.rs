//! Rewinding a run's workspace to how it was when a step started (`stepwise rewind`): the
//! proposal (every file the run changed since, put back from the blobs its checkpoints kept,
//! shown as a multi-file diff, with the files something else changed since listed as
//! conflicts), and the rewind itself, approved by its hash, recorded before any file is
//! touched ([`Event::RewindApproved`]) and after ([`Event::RewindFinished`]).
//!
//! A rewind holds the run's lock while it works, so that no driver moves the run meanwhile: a
//! driver of this process lets go of a waiting run first (and the run is driven again after,
//! by whoever adopts it); a run another process drives is refused, naming that process.

mod plan;

use serde::Serialize;
use std::collections::BTreeSet;
use stepwise_core::checkpoint::{ChangeKind, FileChange, FileVersion};
use stepwise_core::event::{Event, FileRestore, RewindApproved, RewindFailure};

use stepwise_core::ids::{EventSeq, RunId, StepId};
use stepwise_core::run::{RunStatus, StepStatus};

use crate::drivers::spawn_driver;
use crate::engine::Engine;
use crate::error::EngineError;
use crate::exec::file::{read_bytes, remove_file, replace_bytes};
use crate::messages::Message;
use crate::record::new_event;
use crate::sandbox::Workspace;
use tokio::sync::oneshot;

pub use plan::{ProposedRestore, RestoreAction, RewindProposal};

/// What a rewind did.
#[derive(Debug, Clone, Serialize)]
pub struct RewindDone {
    /// The run.
    pub run_id: RunId,
    /// The step its files went back to.
    pub to: StepId,
    /// The files put back.
    pub restored: Vec<FileChange>,
    /// The files that could not be, and why.
    pub failed: Vec<RewindFailure>,
    /// The files left alone (changed since by something else, or not restorable).
    pub left_alone: Vec<String>,
}

/// The proposal for rewinding a run already read to the start of `to`, the changes of the
/// results at `keep` left as they are (a fork's).
pub(crate) async fn propose_keeping(
    ctx: &std::sync::Arc<crate::context::Context>,
    loaded: &crate::loading::LoadedRun,
    to: &StepId,
    keep: &BTreeSet<EventSeq>,
) -> Result<RewindProposal, EngineError> {
    plan::propose(ctx, loaded, to, &[], keep).await
}

impl Engine {
    /// What rewinding run `run` (id or prefix) to the start of step `to` would do, the files
    /// in `include` put back even where something else changed them since.
    pub async fn propose_rewind(
        &self,
        run: &str,
        to: &str,
        include: &[String],
    ) -> Result<RewindProposal, EngineError> {
        let loaded = self.ctx.load_run(run).await?;
        self.ctx.refuse_other_machine(&loaded.row.run_id).await?;
        plan::propose(
            &self.ctx,
            &loaded,
            &StepId::from(to),
            include,
            &BTreeSet::new(),
        )
        .await
    }

    /// Rewinds run `run` to the start of step `to`, as [`Engine::propose_rewind`] proposes it
    /// now. With `approved` (the hash of the proposal a person saw, or a prefix of at least 8
    /// digits), refused if the proposal is no longer that one.
    pub async fn rewind(
        &self,
        run: &str,
        to: &str,
        include: &[String],
        approved: Option<&str>,
    ) -> Result<RewindDone, EngineError> {
        self.rewind_keeping(run, to, include, approved, &BTreeSet::new())
            .await
    }

    /// [`Engine::rewind`], the changes recorded by the results at the seqs in `keep` left as
    /// they are (a fork keeps those of the operations it reuses).
    pub(crate) async fn rewind_keeping(
        &self,
        run: &str,
        to: &str,
        include: &[String],
        approved: Option<&str>,
        keep: &BTreeSet<EventSeq>,
    ) -> Result<RewindDone, EngineError> {
        let run_id = self.ctx.find_run(run).await?.run_id;
        self.ctx.db.check_writable()?;
        // Everything that can be refused is, before any driver is asked to let go.
        let loaded = self.ctx.load_run(run_id.as_str()).await?;
        self.ctx.refuse_other_machine(&run_id).await?;
        refuse_moving(&loaded.state, "rewind")?;
        self.refuse_child_of_unended(&loaded).await?;
        let to_step = StepId::from(to);
        let proposal = plan::propose(&self.ctx, &loaded, &to_step, include, keep).await?;
        check_approved(&proposal, approved)?;
        // A waiting run this process drives: its driver lets go only if nothing is under way,
        // and takes the run up again after.
        let mut take_up_again = false;
        if let Some(driver) = self.ctx.live.channel(&run_id) {
            let mut stopped = self.ctx.live.stopped(&run_id);
            let (reply, idle) = oneshot::channel();
            if driver.send(Message::LetGoIfIdle { reply }).is_ok() {
                if idle.await == Ok(false) {
                    return Err(EngineError::Rewind(running("rewind")));
                }
                if let Some(stopped) = stopped.as_mut() {
                    let _ = stopped.wait_for(|stopped| *stopped).await;
                }
                take_up_again = true;
            }
        }
        let lock = match self.ctx.hold(&run_id).await? {
            Ok(lock) => lock,
            Err(holder) => return Err(EngineError::RunLocked { run_id, holder }),
        };
        let result = self
            .rewind_locked(&run_id, &to_step, include, approved, keep)
            .await;
        let finished = self
            .ctx
            .find_run(run_id.as_str())
            .await
            .is_ok_and(|row| row.status.is_finished());
        if finished {
            lock.remove();
        } else if take_up_again {
            drop(spawn_driver(&self.ctx, &run_id, lock));
        }
        // Otherwise the lock goes: whoever adopts runs let go (the app) takes it up, as the
        // change this rewind recorded tells them.
        result
    }

    async fn rewind_locked(
        &self,
        run_id: &RunId,
        to: &StepId,
        include: &[String],
        approved: Option<&str>,
        keep: &BTreeSet<EventSeq>,
    ) -> Result<RewindDone, EngineError> {
        // Read again under the lock: what was checked before may have moved.
        let loaded = self.ctx.load_run(run_id.as_str()).await?;
        refuse_moving(&loaded.state, "rewind")?;
        let proposal = plan::propose(&self.ctx, &loaded, to, include, keep).await?;
        check_approved(&proposal, approved)?;
        let restores: Vec<FileRestore> = proposal
            .files
            .iter()
            .filter(|f| f.included)
            .map(|f| f.restore.clone())
            .collect();
        let root = std::path::PathBuf::from(&loaded.state.started().workspace);
        let max_file_bytes = loaded.state.started().checkpoint.max_file_bytes;
        // What the files hold now is kept first, so that the rewind can be undone whatever
        // happens after.
        let paths: Vec<String> = restores.iter().map(|r| r.path.clone()).collect();
        let ws_root = root.clone();
        let held = tokio::task::spawn_blocking(move || {
            let ws = Workspace::open(&ws_root)?;
            Ok::<_, EngineError>(current_contents(&ws, &paths, max_file_bytes))
        })
        .await
        .map_err(|e| EngineError::Internal(format!("the rewind stopped: {e}")))??;
        self.ctx
            .db
            .write(move |store| store.put_hashed_blobs(&held))
            .await?;
        let approved_event = Event::RewindApproved(RewindApproved {
            to: proposal.to.clone(),
            at: proposal.at,
            restores: restores.clone(),
            left_alone: proposal.left_alone(),
            proposal_hash: proposal.proposal_hash.clone(),
            by: self.ctx.config.user.clone(),
        });
        let expected = loaded.state.last_seq();
        let row = new_event(&approved_event, None, self.ctx.clock.now_ms())?;
        let id = run_id.clone();
        let recorded = self
            .ctx
            .db
            .write(move |store| store.append(&id, expected, &[row], None))
            .await?;
        let wanted = self.contents_then(restores).await?;
        let (restored, failed) = tokio::task::spawn_blocking(move || {
            let ws = Workspace::open(&root)?;
            Ok::<_, EngineError>(put_back(&ws, wanted, max_file_bytes))
        })
        .await
        .map_err(|e| EngineError::Internal(format!("the rewind stopped: {e}")))??;
        let finished_event = Event::RewindFinished {
            restored: restored.clone(),
            failed: failed.clone(),
        };
        let row = new_event(&finished_event, Some(recorded), self.ctx.clock.now_ms())?;
        let id = run_id.clone();
        self.ctx
            .db
            .write(move |store| store.append(&id, recorded, &[row], None))
            .await?;
        Ok(RewindDone {
            run_id: run_id.clone(),
            to: proposal.to.clone(),
            restored,
            failed,
            left_alone: proposal.left_alone(),
        })
    }

    /// Each restore with the content it goes back to (`None` for a file removed).
    async fn contents_then(
        &self,
        restores: Vec<FileRestore>,
    ) -> Result<Vec<(FileRestore, Option<Vec<u8>>)>, EngineError> {
        self.ctx
            .db
            .read(move |store| {
                restores
                    .iter()
                    .cloned()
                    .map(|restore| {
                        let bytes = match &restore.to {
                            Some(version) => store.get_blob(&version.hash)?,
                            None => None,
                        };
                        Ok((restore, bytes))
                    })
                    .collect::<Result<Vec<_>, EngineError>>()
            })
            .await
    }
}

impl Engine {
    /// A child run whose parent has not ended is not rewound: the parent goes on with the
    /// child's files (its output says what they hold), which a rewind would change under it.
    async fn refuse_child_of_unended(&self, loaded: &crate::LoadedRun) -> Result<(), EngineError> {
        let Some(parent) = loaded.state.started().parent.as_ref() else {
            return Ok(());
        };
        let ended = match self.ctx.find_run(parent.run_id.as_str()).await {
            Ok(row) => row.status.is_finished(),
            Err(EngineError::RunNotFound { .. }) => true,
            Err(error) => return Err(error),
        };
        if ended {
            return Ok(());
        }
        Err(EngineError::Rewind(format!(
            "run {} is a child run of {} (its step `{}`), which has not ended: it goes on from what this run left in the files; rewind it once the parent has ended, or rewind the parent",
            loaded.row.run_id, parent.run_id, parent.step
        )))
    }
}

/// Why a run with operations under way is not rewound (or forked).
fn running(what: &str) -> String {
    format!(
        "the run is running: {what} it once it waits for a person, is paused with nothing under way, or has ended (pause it with `stepwise pause`)"
    )
}

/// Refuses a rewind of another proposal than the one the person approved, or of nothing.
fn check_approved(proposal: &RewindProposal, approved: Option<&str>) -> Result<(), EngineError> {
    if let Some(seen) = approved {
        let digits = crate::commands::proposal_digits(seen)?;
        let current = proposal.proposal_hash.trim_start_matches("sha256:");
        if !current.starts_with(&digits) {
            return Err(EngineError::Rewind(format!(
                "the rewind now proposes {}, not {seen}: the files changed since you looked; look at it again",
                proposal.proposal_hash
            )));
        }
    }
    if !proposal.files.iter().any(|f| f.included) {
        return Err(EngineError::Rewind(format!(
            "there is nothing to put back: {}",
            proposal.nothing_because()
        )));
    }
    Ok(())
}

/// What the files at `paths` hold now, as blobs to keep (those at most the ceiling).
fn current_contents(ws: &Workspace, paths: &[String], max_file_bytes: u64) -> FoundBlobs {
    paths
        .iter()
        .filter_map(|path| read_bytes(ws, path).ok().flatten())
        .filter(|bytes| bytes.len() as u64 <= max_file_bytes)
        .map(|bytes| (stepwise_core::hash::content_hash(&bytes), bytes))
        .collect()
}

/// A run with operations under way cannot be rewound (nor forked): their files would change
/// under it.
pub(crate) fn refuse_moving(
    state: &stepwise_core::run::RunState,
    what: &str,
) -> Result<(), EngineError> {
    let status = state.status();
    let busy = state
        .steps()
        .any(|(_, step)| step.status == StepStatus::Running);
    if status == RunStatus::Running || (busy && !status.is_finished()) {
        return Err(match what {
            "fork" => EngineError::Fork(running(what)),
            _ => EngineError::Rewind(running(what)),
        });
    }
    Ok(())
}

/// What the files a rewind touched held, kept as blobs: `(hash, content)`.
type FoundBlobs = Vec<(String, Vec<u8>)>;

/// Puts each file back, if it still holds what the proposal found: its change, or why not.
fn put_back(
    ws: &Workspace,
    wanted: Vec<(FileRestore, Option<Vec<u8>>)>,
    max_file_bytes: u64,
) -> (Vec<FileChange>, Vec<RewindFailure>) {
    let mut restored = Vec::new();
    let mut failed = Vec::new();
    for (restore, bytes) in wanted {
        let path = restore.path.clone();
        let fail = |message: String| RewindFailure {
            path: path.clone(),
            message,
        };
        let before = match read_bytes(ws, &restore.path) {
            Ok(before) => before,
            Err(error) => {
                failed.push(fail(error.message));
                continue;
            }
        };
        let before_version = before.as_ref().map(|b| version_of(b, max_file_bytes));
        let found_now = before_version.as_ref().map(|v| v.hash.clone());
        if found_now != restore.found {
            failed.push(fail(
                "it changed while the rewind was being approved; left as it is".into(),
            ));
            continue;
        }
        let outcome = match (&restore.to, bytes) {
            (None, _) => match &restore.found {
                Some(hash) => remove_file(ws, &restore.path, hash),
                None => Ok(()),
            },
            (Some(_), Some(bytes)) => {
                replace_bytes(ws, &restore.path, restore.found.as_deref(), &bytes).map(|_| ())
            }
            (Some(version), None) => {
                failed.push(fail(format!(
                    "its content then ({}) is not in the database",
                    version.hash
                )));
                continue;
            }
        };
        if let Err(error) = outcome {
            failed.push(fail(error.message));
            continue;
        }
        let kind = match (&before_version, &restore.to) {
            (None, _) => ChangeKind::Created,
            (Some(_), None) => ChangeKind::Deleted,
            (Some(_), Some(_)) => ChangeKind::Modified,
        };
        restored.push(FileChange {
            path: restore.path.clone(),
            kind,
            from: None,
            before: before_version,
            after: restore.to.clone(),
        });
    }
    (restored, failed)
}

/// A file's version as checkpoints name it: its content kept when at most the ceiling.
fn version_of(bytes: &[u8], max_file_bytes: u64) -> FileVersion {
    FileVersion {
        hash: stepwise_core::hash::content_hash(bytes),
        size: bytes.len() as u64,
        stored: bytes.len() as u64 <= max_file_bytes,
    }
}
