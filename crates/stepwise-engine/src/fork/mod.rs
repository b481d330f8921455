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
use stepwise_core::event::{Event, ForkOrigin};
use stepwise_core::ids::{EventSeq, StepId};
use stepwise_core::run::{RunState, rewind_targets};
use stepwise_core::workflow::{Workflow, parse_recorded_workflow};
use stepwise_store::{NewEvent, StoredEvent};

use crate::drivers::{RunHandle, spawn_driver};
use crate::engine::Engine;
use crate::error::EngineError;
use crate::loading::LoadedRun;
use crate::rewind::RewindProposal;
use crate::sandbox::Workspace;
use crate::start::{PreparedRun, StartRun};

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
        let from = StepId::from(fork.from.as_str());
        let events = loaded
            .events
            .iter()
            .map(|(stored, event)| (stored.seq, event));
        let (at, targets) = rewind_targets(events, &from).map_err(EngineError::Fork)?;
        let (workflow, source, workflow_path) = self.fork_workflow(&loaded, &fork).await?;
        let parent_started = loaded.state.started().clone();
        // Everything that can be refused is, before the workspace is touched.
        let (reused, reused_events) = reused_prefix(&loaded, at);
        let mut inputs = inherited_inputs(&parent_started.inputs, &workflow);
        inputs.extend(fork.inputs.clone());
        let origin = ForkOrigin {
            parent: loaded.row.run_id.clone(),
            from,
            at,
            reused: reused.len() as u64,
        };
        let mut trial = parent_started.clone();
        trial.inputs = workflow.resolve_inputs(&inputs)?;
        trial.fork = Some(origin.clone());
        check_continues(&workflow, trial, &reused_events)?;
        let workspace = match &fork.workspace {
            None => {
                let proposal = self
                    .propose_rewind(loaded.row.run_id.as_str(), &fork.from, &[])
                    .await?;
                if proposal.files.iter().any(|f| f.included) {
                    if fork.approved.is_none() && !fork.approve_any {
                        return Ok(Forked::NeedsRestore(proposal));
                    }
                    self.rewind(
                        loaded.row.run_id.as_str(),
                        &fork.from,
                        &[],
                        fork.approved.as_deref(),
                    )
                    .await?;
                }
                PathBuf::from(&parent_started.workspace)
            }
            Some(dir) => {
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
                let root = PathBuf::from(&parent_started.workspace);
                let to = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
                let spec = parent_started.checkpoint.clone();
                let target = to.clone();
                tokio::task::spawn_blocking(move || {
                    let ws = Workspace::open(&root)?;
                    copy::copy_checkpoint(&ws, &target, &spec, &then)
                })
                .await
                .map_err(|e| {
                    EngineError::Internal(format!("copying the workspace stopped: {e}"))
                })??;
                to
            }
        };
        let start = StartRun {
            workflow_path,
            workspace,
            inputs,
            trigger: fork.trigger.clone(),
            max_parallel: Some(parent_started.max_parallel),
            budget_micro_usd: None,
            pauses: Default::default(),
        };
        let prepared = self
            .prepare(start, Some((workflow, source)), Some(origin))
            .await?;
        let PreparedRun {
            workflow,
            row,
            first,
            lock,
        } = prepared;
        let run_id = row.run_id.clone();
        self.ctx.remember_workflow(&workflow);
        let mut log = vec![first];
        log.extend(reused);
        self.ctx
            .db
            .write(move |store| store.create_run(&row, &log))
            .await?;
        Ok(Forked::Started(spawn_driver(&self.ctx, &run_id, lock)))
    }

    /// The workflow the fork goes on with: another file, or the one the parent recorded.
    async fn fork_workflow(
        &self,
        loaded: &LoadedRun,
        fork: &ForkRun,
    ) -> Result<(Arc<Workflow>, String, PathBuf), EngineError> {
        let started = loaded.state.started();
        match &fork.workflow_path {
            Some(path) => {
                let path = path.clone();
                let read = path.clone();
                let (workflow, source) =
                    tokio::task::spawn_blocking(move || crate::workflow_file::load(&read))
                        .await
                        .map_err(|e| {
                            EngineError::Internal(format!("reading the workflow stopped: {e}"))
                        })??;
                Ok((workflow, source, path))
            }
            None => {
                let workflow =
                    parse_recorded_workflow(&started.workflow_path, &started.workflow_source)
                        .map_err(EngineError::Workflow)?;
                Ok((
                    Arc::new(workflow),
                    started.workflow_source.clone(),
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
                    .into_iter()
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
fn reused_prefix(loaded: &LoadedRun, at: EventSeq) -> (Vec<NewEvent>, Vec<(EventSeq, Event)>) {
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
    let answers = loaded
        .events
        .iter()
        .filter(|(stored, _)| stored.seq >= at)
        .filter(|(_, event)| match event {
            Event::OperationSucceeded { op, .. } | Event::OperationFailed { op, .. } => {
                open.remove(op)
            }
            _ => false,
        });
    let mut rows = Vec::new();
    let mut events = Vec::new();
    for (stored, event) in before.into_iter().chain(answers) {
        // Renumbered as they go in: those before `at` keep their seqs.
        let seq = EventSeq::new(events.len() as u64 + 2);
        rows.push(NewEvent {
            event_type: stored.event_type.clone(),
            schema_version: stored.schema_version,
            recorded_at_ms: stored.recorded_at_ms,
            correlation_id: stored.correlation_id.clone(),
            causation_seq: stored.causation_seq,
            payload: stored.payload.clone(),
        });
        events.push((seq, event.clone()));
    }
    (rows, events)
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
    started: stepwise_core::event::RunStarted,
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
