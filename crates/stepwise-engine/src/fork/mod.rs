//! Forking a run from a step (`stepwise fork`): a new run whose log starts with the parent's
//! events from before the step first started (and the results of operations under way then),
//! so that nothing before the fork point is performed again and no model is called again; it
//! records where it comes from ([`ForkOrigin`]) and goes on from there with its own inputs or
//! workflow. Its workspace is first put back as it was when the step started: the parent's
//! own (a rewind, approved as one) or a copy of it in another directory.

mod copy;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;
use stepwise_core::custom_step::StepTypes;
use stepwise_core::event::{Event, ForkOrigin, RunStarted};
use stepwise_core::ids::{EventSeq, StepId};
use stepwise_core::run::{RewindTarget, RunState, rewind_targets};
use stepwise_core::workflow::{Workflow, parse_recorded_workflow_with};
use stepwise_store::{NewEvent, StoredEvent};

use crate::drivers::RunHandle;
use crate::engine::Engine;
use crate::error::EngineError;
use crate::loading::LoadedRun;
use crate::rewind::RewindProposal;
use crate::sandbox::Workspace;
use crate::start::StartRun;

/// What to fork.
#[derive(Debug, Clone, Default)]
pub struct ForkRun {
    /// The run forked from (id or unique prefix).
    pub parent: String,
    /// The step the new run goes its own way from.
    pub from: String,
    /// Inputs changed for the new run (`name=value` as typed); the others are the parent's.
    pub inputs: BTreeMap<String, String>,
    /// Another workflow file to go on with (default: the one the parent recorded).
    pub workflow_path: Option<PathBuf>,
    /// Another directory to run in, which receives a copy of the workspace as it was when
    /// the step started (default: the parent's own workspace, put back as it was).
    pub workspace: Option<PathBuf>,
    /// The hash of the restore proposal a person approved (the parent's workspace only).
    pub approved: Option<String>,
    /// Approve the restore whatever it is now.
    pub approve_any: bool,
    /// What started it (`cli`, `app`).
    pub trigger: String,
}

/// What a fork did.
pub enum Forked {
    /// The parent's workspace must be put back first: this is the proposal to approve.
    NeedsRestore(RewindProposal),
    /// The new run, started.
    Started(RunHandle),
}

impl Engine {
    /// Forks a run from a step (see [`ForkRun`]).
    pub async fn fork(&self, fork: ForkRun) -> Result<Forked, EngineError> {
        self.ctx.db.check_writable()?;
        let loaded = self.ctx.load_run(&fork.parent).await?;
        self.ctx.refuse_other_machine(&loaded.row.run_id).await?;
        crate::rewind::refuse_moving(&loaded.state, "fork")?;
        let from = StepId::from(fork.from.as_str());
        let events = || {
            loaded
                .events
                .iter()
                .map(|(stored, event)| (stored.seq, event))
        };
        let (at, _) =
            rewind_targets(events(), &from, &BTreeSet::new()).map_err(EngineError::Fork)?;
        let (reused, reused_events, kept) = reused_prefix(&loaded, at);
        // What the reused operations did to the files stays: the fork says they happened.
        let (_, targets) = rewind_targets(events(), &from, &kept).map_err(EngineError::Fork)?;
        let ((workflow, source, subworkflows), workflow_path) =
            self.fork_workflow(&loaded, &fork).await?;
        let parent_started = loaded.state.started().clone();
        let mut inputs = inherited_inputs(&parent_started.inputs, &workflow);
        inputs.extend(fork.inputs.clone());
        let origin = ForkOrigin {
            parent: loaded.row.run_id.clone(),
            from,
            at,
            reused: reused.len() as u64,
        };
        let parent_workspace = PathBuf::from(&parent_started.workspace);
        let start = |workspace: PathBuf| StartRun {
            workflow_path: workflow_path.clone(),
            workspace,
            inputs: inputs.clone(),
            trigger: fork.trigger.clone(),
            max_parallel: Some(parent_started.max_parallel),
            budget_micro_usd: parent_started.budget.and_then(|b| b.micro_usd),
            pauses: Default::default(),
            cause: None,
        };
        // Everything that can be refused is, before the workspace is touched: the start as
        // any start is checked, and the new state taking the reused events.
        let checked = self
            .prepare(
                start(parent_workspace.clone()),
                Some((Arc::clone(&workflow), source.clone(), subworkflows.clone())),
                Some(origin.clone()),
            )
            .await?;
        check_continues(&checked.workflow, checked.started.clone(), &reused_events)?;
        let prepared = match &fork.workspace {
            None => {
                let proposal =
                    crate::rewind::propose_keeping(&self.ctx, &loaded, &origin.from, &kept).await?;
                if proposal.files.iter().any(|f| f.included) {
                    if fork.approved.is_none() && !fork.approve_any {
                        checked.lock.remove();
                        return Ok(Forked::NeedsRestore(proposal));
                    }
                    let done = self
                        .rewind_keeping(
                            loaded.row.run_id.as_str(),
                            &fork.from,
                            &[],
                            fork.approved.as_deref(),
                            &kept,
                        )
                        .await;
                    let failed = match done {
                        Ok(done) => done.failed,
                        Err(error) => {
                            checked.lock.remove();
                            return Err(error);
                        }
                    };
                    if !failed.is_empty() {
                        checked.lock.remove();
                        let said: Vec<String> = failed
                            .iter()
                            .map(|f| format!("`{}`: {}", f.path, f.message))
                            .collect();
                        return Err(EngineError::Fork(format!(
                            "the workspace could not be put back as it was (the rewind is recorded in the run): {}",
                            said.join("; ")
                        )));
                    }
                }
                checked
            }
            Some(dir) => {
                checked.lock.remove();
                let to = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
                self.copy_workspace(&parent_started, &targets, &to).await?;
                let prepared = self
                    .prepare(
                        start(to.clone()),
                        Some((workflow, source, subworkflows)),
                        Some(origin),
                    )
                    .await;
                if prepared.is_err() {
                    let _ = std::fs::remove_dir_all(&to);
                }
                prepared?
            }
        };
        Ok(Forked::Started(
            self.record_and_drive(prepared, reused).await?,
        ))
    }

    /// Copies the parent's workspace as it was then into `to` (see `copy.rs`).
    async fn copy_workspace(
        &self,
        parent: &RunStarted,
        targets: &[RewindTarget],
        to: &std::path::Path,
    ) -> Result<(), EngineError> {
        let wanted: Vec<(String, Option<String>)> = targets
            .iter()
            .map(|t| {
                let hash = match &t.then {
                    Some(v) if !v.stored => {
                        return Err(EngineError::Fork(format!(
                            "`{}` was over the checkpoints' size ceiling then, so what it held was not kept",
                            t.path
                        )));
                    }
                    Some(v) => Some(v.hash.clone()),
                    None => None,
                };
                Ok((t.path.clone(), hash))
            })
            .collect::<Result<_, _>>()?;
        let then = self.read_contents(wanted).await?;
        let root = PathBuf::from(&parent.workspace);
        let spec = parent.checkpoint.clone();
        let target = to.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let ws = Workspace::open(&root)?;
            copy::copy_checkpoint(&ws, &target, &spec, &then)
        })
        .await
        .map_err(|e| EngineError::Internal(format!("copying the workspace stopped: {e}")))??;
        Ok(())
    }

    /// The workflow the fork goes on with: another file, or the one the parent recorded.
    async fn fork_workflow(
        &self,
        loaded: &LoadedRun,
        fork: &ForkRun,
    ) -> Result<(crate::start::ReadWorkflow, PathBuf), EngineError> {
        let started = loaded.state.started();
        match &fork.workflow_path {
            Some(path) => {
                let path = path.clone();
                let read = path.clone();
                let workspace = fork
                    .workspace
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(&started.workspace));
                let read_workflow = tokio::task::spawn_blocking(move || {
                    crate::workflow_file::load_in(&read, Some(&workspace))
                })
                .await
                .map_err(|e| {
                    EngineError::Internal(format!("reading the workflow stopped: {e}"))
                })??;
                Ok((read_workflow, path))
            }
            None => {
                let workflow = parse_recorded_workflow_with(
                    &started.workflow_path,
                    &started.workflow_source,
                    &StepTypes::from_recorded(&started.step_types),
                )
                .map_err(EngineError::Workflow)?;
                let gathered = crate::subrun::Gathered {
                    subworkflows: started.subworkflows.clone(),
                    step_types: started.step_types.clone(),
                };
                Ok((
                    (
                        Arc::new(workflow),
                        started.workflow_source.clone(),
                        gathered,
                    ),
                    PathBuf::from(&started.workflow_path),
                ))
            }
        }
    }

    /// Blobs by hash, for the files a copy puts back (`None`: the file did not exist).
    async fn read_contents(
        &self,
        wanted: Vec<(String, Option<String>)>,
    ) -> Result<Vec<(String, Option<Vec<u8>>)>, EngineError> {
        self.ctx
            .db
            .read(move |store| {
                wanted
                    .iter()
                    .cloned()
                    .map(|(path, hash)| {
                        let Some(hash) = hash else {
                            return Ok((path, None));
                        };
                        match store.get_blob(&hash)? {
                            Some(bytes) => Ok((path, Some(bytes))),
                            None => Err(EngineError::Fork(format!(
                                "what `{path}` held then ({hash}) is not in the database"
                            ))),
                        }
                    })
                    .collect()
            })
            .await
    }
}

/// The parent's events the fork starts with: those before `at` (after `RunStarted`), then
/// the results of operations they started that were still under way at `at`, as the parent
/// recorded them later. Rows to append, and the events they hold.
fn reused_prefix(
    loaded: &LoadedRun,
    at: EventSeq,
) -> (Vec<NewEvent>, Vec<(EventSeq, Event)>, BTreeSet<EventSeq>) {
    let before: Vec<&(StoredEvent, Event)> = loaded
        .events
        .iter()
        .skip(1)
        .filter(|(stored, _)| stored.seq < at)
        .collect();
    let mut open: BTreeSet<EventSeq> = BTreeSet::new();
    for (stored, event) in &before {
        match event {
            Event::OperationStarted { .. } => {
                open.insert(stored.seq);
            }
            Event::OperationSucceeded { op, .. }
            | Event::OperationFailed { op, .. }
            | Event::OperationOutcomeUnknown { op } => {
                open.remove(op);
            }
            _ => {}
        }
    }
    // An operation answered by a crash (`OperationOutcomeUnknown`) keeps its answer, and the
    // person's resolution of it, as the parent recorded them.
    let mut answered_unknown: BTreeSet<EventSeq> = BTreeSet::new();
    let answers: Vec<&(StoredEvent, Event)> = loaded
        .events
        .iter()
        .filter(|(stored, _)| stored.seq >= at)
        .filter(|(_, event)| match event {
            Event::OperationSucceeded { op, .. } | Event::OperationFailed { op, .. } => {
                open.remove(op)
            }
            Event::OperationOutcomeUnknown { op } if open.contains(op) => {
                answered_unknown.insert(*op);
                open.remove(op)
            }
            Event::OperationResolved { op, .. } => answered_unknown.remove(op),
            _ => false,
        })
        .collect();
    let kept: BTreeSet<EventSeq> = answers.iter().map(|(stored, _)| stored.seq).collect();
    let mut rows = Vec::new();
    let mut events = Vec::new();
    for (stored, event) in before.into_iter().chain(answers) {
        // Renumbered as they go in: those before `at` keep their seqs.
        let seq = EventSeq::new(events.len() as u64 + 2);
        rows.push(NewEvent::from(stored.clone()));
        events.push((seq, event.clone()));
    }
    (rows, events, kept)
}

/// The parent's inputs the new workflow declares, as text for the start to check again.
fn inherited_inputs(inputs: &Value, workflow: &Workflow) -> BTreeMap<String, String> {
    let Some(inputs) = inputs.as_object() else {
        return BTreeMap::new();
    };
    inputs
        .iter()
        .filter(|(name, _)| workflow.inputs.contains_key(*name))
        .map(|(name, value)| {
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (name.clone(), text)
        })
        .collect()
}

/// The new run's state must take the parent's events: a workflow that lacks a step that ran
/// before the fork point cannot go on from there.
fn check_continues(
    workflow: &Arc<Workflow>,
    started: RunStarted,
    reused: &[(EventSeq, Event)],
) -> Result<(), EngineError> {
    let mut state = RunState::new(Arc::clone(workflow), started)
        .map_err(|e| EngineError::Fork(e.to_string()))?;
    for (seq, event) in reused {
        state.apply(*seq, event).map_err(|e| {
            EngineError::Fork(format!(
                "the workflow cannot go on from the parent's events before the fork point: {e}"
            ))
        })?;
    }
    Ok(())
}
