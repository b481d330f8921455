//! Reading a run back: its row, its events decoded, and its state folded from them, with the
//! workflow it recorded compiled once per engine.

use std::sync::Arc;

use stepwise_core::custom_step::StepTypes;
use stepwise_core::event::Event;
use stepwise_core::ids::{EventSeq, RunId};
use stepwise_core::run::RunState;
use stepwise_core::workflow::{Workflow, parse_recorded_workflow_with};
use stepwise_store::{RunRow, Store, StoredEvent};

use crate::context::Context;
use crate::error::{DatabaseError, EngineError};
use crate::record::decode;

/// A run read back from the store and folded.
#[derive(Debug)]
pub struct LoadedRun {
    /// The run's row.
    pub row: RunRow,
    /// Its events, as the log holds them and typed.
    pub events: Vec<(StoredEvent, Event)>,
    /// Its state, folded from them.
    pub state: RunState,
}

impl Context {
    /// A run by id or unique prefix.
    pub(crate) async fn find_run(&self, id_or_prefix: &str) -> Result<RunRow, EngineError> {
        let id = id_or_prefix.to_string();
        self.db.read(move |store| Ok(store.find_run(&id)?)).await
    }

    /// The runs forked from a run or started by its steps, oldest first.
    pub(crate) async fn runs_from(&self, run_id: &RunId) -> Result<Vec<RunRow>, EngineError> {
        let run_id = run_id.clone();
        self.db
            .read(move |store| Ok(store.runs_from(&run_id)?))
            .await
    }

    /// The child runs a run's `workflow` steps started, oldest first.
    pub(crate) async fn children_of(&self, run_id: &RunId) -> Result<Vec<RunRow>, EngineError> {
        let runs = self.runs_from(run_id).await?;
        Ok(runs.into_iter().filter(RunRow::is_child).collect())
    }

    /// Reads a run (by id or unique prefix) and folds its events.
    pub(crate) async fn load_run(
        self: &Arc<Self>,
        id_or_prefix: &str,
    ) -> Result<LoadedRun, EngineError> {
        let ctx = Arc::clone(self);
        let id = id_or_prefix.to_string();
        self.db
            .read(move |store| ctx.load_run_with(store, &id))
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
        // The server away is no fault of the run: said as it is, so that a read waits it out.
        EngineError::Database(DatabaseError(error)) if error.is_server_gone() => {
            EngineError::Database(DatabaseError(error))
        }
        EngineError::Database(DatabaseError(error)) => EngineError::UnreadableRun {
            run_id: run_id.clone(),
            cause: Box::new(EngineError::from(error.at(store.path()))),
        },
        error @ EngineError::Workflow(_) => EngineError::UnreadableRun {
            run_id: run_id.clone(),
            cause: Box::new(error),
        },
        other => other,
    }
}

/// The workflow a run was started with, from the source recorded in its first event.
pub fn recorded_workflow(
    run_id: &RunId,
    events: &[(StoredEvent, Event)],
) -> Result<Arc<Workflow>, EngineError> {
    match events.first() {
        Some((_, Event::RunStarted(started))) => parse_recorded_workflow_with(
            &started.workflow_path,
            &started.workflow_source,
            &StepTypes::from_recorded(&started.step_types),
        )
        .map(Arc::new)
        .map_err(EngineError::Workflow),
        _ => Err(EngineError::State {
            run_id: run_id.clone(),
            source: stepwise_core::run::StateError::NotStarted {
                seq: EventSeq::FIRST,
            },
        }),
    }
}
