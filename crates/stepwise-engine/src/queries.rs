//! Answers about runs, read on pooled read connections: they never wait for a driver's
//! commit.

use std::sync::Arc;

use serde::Serialize;
use stepwise_core::ids::{RunId, StepId};
use stepwise_core::run::{PendingApproval, RunState, RunStatus};
use stepwise_store::RunRow;

use crate::engine::Engine;
use crate::error::EngineError;
use crate::loading::LoadedRun;
use crate::lock;

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
        self.ctx.find_run(id_or_prefix).await
    }

    /// Reads a run (by id or unique prefix) and folds its events.
    pub async fn load_run(&self, id_or_prefix: &str) -> Result<LoadedRun, EngineError> {
        self.ctx.load_run(id_or_prefix).await
    }

    /// Up to `limit` runs, newest first, each with the process driving it, if any.
    pub async fn list_runs(&self, limit: usize) -> Result<Vec<RunSummary>, EngineError> {
        let lock_dir = self.ctx.db.lock_dir.clone();
        self.ctx
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
        self.ctx.db.read(|store| Ok(store.unfinished_runs()?)).await
    }

    /// The process driving a run (`pid 4242`), if one is.
    pub async fn holder(&self, run_id: &RunId) -> Result<Option<String>, EngineError> {
        let lock_dir = self.ctx.db.lock_dir.clone();
        let run_id = run_id.clone();
        self.ctx
            .exec
            .spawn_blocking(move || lock::holder(&lock_dir, &run_id))
            .await
            .map_err(|e| EngineError::Internal(format!("asking for a run's holder stopped: {e}")))?
    }

    /// What waits for a person: in one run, or across every unfinished run (oldest run
    /// first, steps in workflow order). A run that cannot be read fails the whole answer,
    /// naming it: a list without its questions would say they are not there.
    pub async fn approvals(&self, run: Option<&str>) -> Result<Vec<Approval>, EngineError> {
        let ctx = Arc::clone(&self.ctx);
        let run = run.map(str::to_string);
        self.ctx
            .db
            .read(move |store| {
                let runs = match run {
                    Some(run) => vec![store.find_run(&run)?],
                    None => store.unfinished_runs()?,
                };
                let mut found = Vec::new();
                for row in runs {
                    let loaded = ctx.load_run_with(store, row.run_id.as_str())?;
                    found.extend(approvals_of(&loaded.row, &loaded.state));
                }
                Ok(found)
            })
            .await
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
