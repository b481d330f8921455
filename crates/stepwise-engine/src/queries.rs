//! Answers about runs, read on pooled read connections: they never wait for a driver's
//! commit.

use std::sync::Arc;

use serde::Serialize;
use stepwise_core::event::Event;
use stepwise_core::ids::{EventSeq, RunId, StepId};
use stepwise_core::run::{PendingApproval, RunState, RunStatus};
use stepwise_core::workflow::{Workflow, parse_recorded_workflow};
use stepwise_store::{RunRow, Store, StoredEvent};

use crate::engine::Engine;
use crate::error::EngineError;
use crate::lock;
use crate::record::decode;

/// A run read back from the store and folded.
#[derive(Debug)]
pub struct LoadedRun {
    pub row: RunRow,
    pub events: Vec<(StoredEvent, Event)>,
    pub state: RunState,
}

/// A run as a list shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    #[serde(flatten)]
    pub row: RunRow,
    /// The process driving the run (`pid 4242`), if one is.
    pub held_by: Option<String>,
}

impl RunSummary {
    /// The status to show: a run recorded as running that no process drives was interrupted
    /// (its driver died) and waits for `resume`.
    pub fn shown_status(&self) -> &str {
        if self.row.status == RunStatus::Running.as_str() && self.held_by.is_none() {
            "interrupted"
        } else {
            &self.row.status
        }
    }
}

/// A question waiting for a person, in one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Approval {
    pub run_id: RunId,
    pub workflow: String,
    pub step: StepId,
    pub approval: PendingApproval,
}

impl Engine {
    /// A run by id or unique prefix.
    pub async fn find_run(&self, id_or_prefix: &str) -> Result<RunRow, EngineError> {
        let id = id_or_prefix.to_string();
        self.inner
            .db
            .read(move |store| Ok(store.find_run(&id)?))
            .await
    }

    /// Up to `limit` runs, newest first, each with the process driving it, if any.
    pub async fn list_runs(&self, limit: usize) -> Result<Vec<RunSummary>, EngineError> {
        let lock_dir = self.inner.db.lock_dir.clone();
        self.inner
            .db
            .read(move |store| {
                store
                    .list_runs(limit)?
                    .into_iter()
                    .map(|row| {
                        let held_by =
                            if RunStatus::parse(&row.status).is_some_and(|s| !s.is_finished()) {
                                lock::holder(&lock_dir, &row.run_id)?
                            } else {
                                None
                            };
                        Ok(RunSummary { row, held_by })
                    })
                    .collect()
            })
            .await
    }

    /// Runs that have not finished, oldest first.
    pub async fn unfinished_runs(&self) -> Result<Vec<RunRow>, EngineError> {
        self.inner
            .db
            .read(|store| Ok(store.unfinished_runs()?))
            .await
    }

    /// The process driving a run (`pid 4242`), if one is.
    pub async fn holder(&self, run_id: &RunId) -> Result<Option<String>, EngineError> {
        let lock_dir = self.inner.db.lock_dir.clone();
        let run_id = run_id.clone();
        tokio::task::spawn_blocking(move || lock::holder(&lock_dir, &run_id))
            .await
            .map_err(|e| EngineError::Internal(format!("asking for a run's holder stopped: {e}")))?
    }

    /// Reads a run (by id or unique prefix) and folds its events.
    pub async fn load_run(&self, id_or_prefix: &str) -> Result<LoadedRun, EngineError> {
        let engine = self.clone();
        let id = id_or_prefix.to_string();
        self.inner
            .db
            .read(move |store| engine.load_run_with(store, &id))
            .await
    }

    pub(crate) fn load_run_with(
        &self,
        store: &Store,
        id_or_prefix: &str,
    ) -> Result<LoadedRun, EngineError> {
        let row = store.find_run(id_or_prefix)?;
        let run_id = row.run_id.clone();
        self.fold_run(store, row)
            .map_err(|error| unreadable(&run_id, store, error))
    }

    fn fold_run(&self, store: &Store, row: RunRow) -> Result<LoadedRun, EngineError> {
        let stored = store.load_events(&row.run_id, EventSeq::ZERO)?;
        let events = stored
            .into_iter()
            .map(|s| decode(&row.run_id, &s).map(|e| (s, e)))
            .collect::<Result<Vec<_>, _>>()?;
        let workflow = self.run_workflow(&row, &events)?;
        let numbered: Vec<(EventSeq, Event)> =
            events.iter().map(|(s, e)| (s.seq, e.clone())).collect();
        let state = RunState::load(workflow, &numbered).map_err(|source| EngineError::State {
            run_id: row.run_id.clone(),
            source,
        })?;
        Ok(LoadedRun { row, events, state })
    }

    /// What waits for a person: in one run, or across every unfinished run (oldest run
    /// first, steps in workflow order). A run that cannot be read fails the whole answer,
    /// naming it: a list without its questions would say they are not there.
    pub async fn approvals(&self, run: Option<&str>) -> Result<Vec<Approval>, EngineError> {
        let engine = self.clone();
        let run = run.map(str::to_string);
        self.inner
            .db
            .read(move |store| {
                let runs = match run {
                    Some(run) => vec![store.find_run(&run)?],
                    None => store.unfinished_runs()?,
                };
                let mut found = Vec::new();
                for row in runs {
                    let loaded = engine.load_run_with(store, row.run_id.as_str())?;
                    found.extend(approvals_of(&loaded.row, &loaded.state));
                }
                Ok(found)
            })
            .await
    }

    fn run_workflow(
        &self,
        row: &RunRow,
        events: &[(StoredEvent, Event)],
    ) -> Result<Arc<Workflow>, EngineError> {
        if let Some(workflow) = self.cached_workflow(&row.workflow_hash) {
            return Ok(workflow);
        }
        let workflow = recorded_workflow(&row.run_id, events)?;
        self.remember_workflow(&workflow);
        Ok(workflow)
    }
}

/// A run that was found but cannot be read, named in the error (where its cause does not name
/// it already), with the database named in what SQLite reported.
pub(crate) fn unreadable(run_id: &RunId, store: &Store, error: EngineError) -> EngineError {
    match error {
        EngineError::Store(error) => EngineError::UnreadableRun {
            run_id: run_id.clone(),
            cause: Box::new(EngineError::Store(error.at(store.path()))),
        },
        error @ EngineError::Workflow(_) => EngineError::UnreadableRun {
            run_id: run_id.clone(),
            cause: Box::new(error),
        },
        other => other,
    }
}

/// The questions a run's state waits on.
pub(crate) fn approvals_of(row: &RunRow, state: &RunState) -> Vec<Approval> {
    state
        .pending_approvals()
        .into_iter()
        .map(|(step, pending)| Approval {
            run_id: row.run_id.clone(),
            workflow: row.workflow_name.clone(),
            step: step.clone(),
            approval: pending.clone(),
        })
        .collect()
}

/// The workflow a run was started with, from the source recorded in its first event.
pub fn recorded_workflow(
    run_id: &RunId,
    events: &[(StoredEvent, Event)],
) -> Result<Arc<Workflow>, EngineError> {
    match events.first() {
        Some((_, Event::RunStarted(started))) => {
            parse_recorded_workflow(&started.workflow_path, &started.workflow_source)
                .map(Arc::new)
                .map_err(EngineError::Workflow)
        }
        _ => Err(EngineError::State {
            run_id: run_id.clone(),
            source: stepwise_core::run::StateError::NotStarted {
                seq: EventSeq::FIRST,
            },
        }),
    }
}
