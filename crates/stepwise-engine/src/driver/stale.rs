//! Stale proposals: a pending edit whose target file changed, appeared or vanished since the
//! edit was proposed can no longer be approved. The driver voids it (`ProposalVoided`, an
//! input) and the step proposes anew against the file as it is now, with a fresh diff and
//! proposal hash.
//!
//! This is checked when an approval arrives, whenever a driver starts (so `resume` re-proposes),
//! and, while a driver holds a waiting run, whenever a watched target file changes, so that a
//! window shows the fresh diff before anyone approves the stale one.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use stepwise_core::event::{Event, Proposal};
use stepwise_core::ids::StepId;
use stepwise_core::run::StepStatus;

use super::Driver;
use crate::commands::{Refusal, RefusalKind};
use crate::error::EngineError;
use crate::exec;
use crate::messages::Message;

/// How long files must be quiet after a change before pending edits are checked: an editor's
/// save is often several writes, and a proposal against a half-written file helps nobody.
const SETTLE: Duration = Duration::from_millis(100);

/// After the watch proposes a step's edit again, the next time waits at least this long, and
/// each further time twice as long (up to `REPROPOSE_MOST`), as long as the file keeps
/// changing. An approval still checks the file at once.
const REPROPOSE_FIRST: Duration = Duration::from_secs(1);
const REPROPOSE_MOST: Duration = Duration::from_secs(300);

/// A pending edit whose file is no longer what it was proposed against.
pub(super) struct StaleEdit {
    step: StepId,
    attempt: u32,
    proposal_hash: String,
    path: String,
    was: Option<String>,
    now: FileNow,
}

/// What the target of a stale edit is now.
enum FileNow {
    Hash(String),
    Missing,
    /// It cannot be read any more (became a directory, a link, too large, …).
    Unreadable(String),
}

impl StaleEdit {
    /// What the person who tried to approve it is told.
    pub(super) fn refusal(&self) -> Refusal {
        let Self {
            step, path, was, ..
        } = self;
        let what = match (&self.now, was) {
            (FileNow::Hash(now), Some(was)) => format!(
                "`{path}` changed since step `{step}` proposed its edit (it was {}, it is now {})",
                short(was),
                short(now)
            ),
            (FileNow::Hash(_), None) => {
                format!("`{path}` was created since step `{step}` proposed to create it")
            }
            (FileNow::Missing, _) => {
                format!("`{path}` was deleted since step `{step}` proposed its edit")
            }
            (FileNow::Unreadable(why), _) => format!(
                "`{path}` can no longer be read as it was when step `{step}` proposed its edit: {why}"
            ),
        };
        Refusal {
            kind: RefusalKind::StaleProposal,
            message: format!(
                "{what}; the approval was refused, and the step proposes its edit again against the file as it is now"
            ),
        }
    }

    pub(super) fn into_event(self) -> Event {
        Event::ProposalVoided {
            step: self.step,
            attempt: self.attempt,
            proposal_hash: self.proposal_hash,
            path: self.path,
            found_hash: match self.now {
                FileNow::Hash(hash) => Some(hash),
                FileNow::Missing | FileNow::Unreadable(_) => None,
            },
        }
    }
}

fn short(hash: &str) -> &str {
    let end = hash
        .char_indices()
        .nth("sha256:".len() + 12)
        .map_or(hash.len(), |(i, _)| i);
    &hash[..end]
}

impl Driver {
    /// The step's pending edit, if it has one whose file no longer matches its proposal.
    pub(super) async fn stale_edit(&self, step: &StepId) -> Result<Option<StaleEdit>, EngineError> {
        let Some(state) = self.state.step_state(step) else {
            return Ok(None);
        };
        let Some(pending) = state
            .pending_approval
            .as_ref()
            .filter(|_| state.status == StepStatus::AwaitingApproval)
        else {
            return Ok(None);
        };
        let Proposal::EditFile {
            path, base_hash, ..
        } = &pending.proposal
        else {
            return Ok(None);
        };
        let workspace = self.workspace.clone();
        let target = path.clone();
        let found = tokio::task::spawn_blocking(move || exec::current_hash(&workspace, &target))
            .await
            .map_err(|e| EngineError::Internal(format!("checking a file stopped: {e}")))?;
        let now = match found {
            Ok(found) if found == *base_hash => return Ok(None),
            Ok(Some(hash)) => FileNow::Hash(hash),
            Ok(None) => FileNow::Missing,
            Err(error) => FileNow::Unreadable(error.message),
        };
        Ok(Some(StaleEdit {
            step: step.clone(),
            attempt: pending.attempt,
            proposal_hash: pending.proposal_hash.clone(),
            path: path.clone(),
            was: base_hash.clone(),
            now,
        }))
    }

    /// Voids every pending edit whose file changed, in one commit; the steps propose anew.
    /// `watched`: the check comes from the file watch, and is paced per step (see
    /// `REPROPOSE_FIRST`), so that a file rewritten all the time cannot fill the log.
    pub(super) async fn void_stale_edits(&mut self, watched: bool) -> Result<(), EngineError> {
        let steps: Vec<StepId> = pending_edits(self)
            .into_iter()
            .map(|(step, _)| step)
            .collect();
        let mut groups = Vec::new();
        let mut later: Option<Duration> = None;
        for step in steps {
            if watched && let Some(wait) = self.repropose_wait(&step) {
                later = Some(later.map_or(wait, |l| l.min(wait)));
                continue;
            }
            if let Some(stale) = self.stale_edit(&step).await? {
                tracing::info!(run_id = %self.run_id, %step, path = %stale.path, "a pending edit's file changed; proposing it again");
                if watched {
                    self.note_reproposal(&step);
                }
                groups.push(self.take_input(stale.into_event())?);
            }
        }
        self.commit(groups, Vec::new())?;
        if let Some(wait) = later {
            self.schedule_edit_check_in(wait);
        }
        Ok(())
    }

    /// How long until the watch may propose this step's edit again, if it must wait.
    fn repropose_wait(&self, step: &StepId) -> Option<Duration> {
        let (at, pause) = self.reproposed.get(step)?;
        pause.checked_sub(at.elapsed())
    }

    fn note_reproposal(&mut self, step: &StepId) {
        let pause = match self.reproposed.get(step) {
            // Quiet for a while since the last one: start over.
            Some((at, pause)) if at.elapsed() < *pause * 4 => (*pause * 2).min(REPROPOSE_MOST),
            _ => REPROPOSE_FIRST,
        };
        self.reproposed
            .insert(step.clone(), (Instant::now(), pause));
    }

    /// While holding a waiting run: watch the directories of the files its pending edits
    /// target, and check them at once whenever that set changes (a change between the
    /// proposal's snapshot and the watch must not be missed).
    pub(super) fn refresh_edit_watch(&mut self) {
        let root = self.workspace.root().to_path_buf();
        let targets: BTreeSet<PathBuf> = pending_edits(self)
            .into_iter()
            .map(|(_, path)| root.join(path))
            .collect();
        let watching = self
            .ctx
            .started_file_watch()
            .map(|watch| watch.targets(self.watch_id))
            .unwrap_or_default();
        if watching == targets {
            return;
        }
        let watch = self.ctx.file_watch();
        let changed = !targets.is_empty();
        watch.set(self.watch_id, &root, targets, self.on_files_changed());
        if changed {
            self.schedule_edit_check();
        }
    }

    /// Directories may have appeared (or gone) since the watch was set: watch the nearest
    /// existing ones again.
    pub(super) fn rewatch_edit_dirs(&mut self) {
        let root = self.workspace.root().to_path_buf();
        let watch = self.ctx.file_watch();
        let targets = watch.targets(self.watch_id);
        if !targets.is_empty() {
            watch.set(self.watch_id, &root, targets, self.on_files_changed());
        }
    }

    /// Checks pending edits once files have been quiet for a moment.
    pub(super) fn schedule_edit_check(&mut self) {
        if self.edit_check_armed {
            return;
        }
        self.edit_check_armed = true;
        self.schedule_edit_check_in(SETTLE);
    }

    fn schedule_edit_check_in(&self, wait: Duration) {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let _ = tx.send(Message::CheckEdits);
        });
    }
}

/// `(step, path)` of every edit waiting for approval.
fn pending_edits(driver: &Driver) -> Vec<(StepId, String)> {
    driver
        .state
        .pending_approvals()
        .into_iter()
        .filter_map(|(step, pending)| match &pending.proposal {
            Proposal::EditFile { path, .. } => Some((step.clone(), path.clone())),
            _ => None,
        })
        .collect()
}
