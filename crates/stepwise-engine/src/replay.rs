//! Replaying a recorded run: re-driving the core over its log with no side effects, against
//! the workflow it recorded or a workflow file, and saying whether every decision matches
//! (see `stepwise_core::run::replay`). The one replay of the CLI and the app.

use std::path::PathBuf;
use std::sync::Arc;

use stepwise_core::event::Event;
use stepwise_core::ids::{EventSeq, RunId};
use stepwise_core::run::{Divergence, ReplayError, ReplayReport, replay};
use stepwise_core::workflow::Workflow;

use crate::engine::Engine;
use crate::error::EngineError;
use crate::workflow_file;

/// Which workflow a run is replayed against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayAgainst {
    /// The workflow text recorded when the run started.
    Recorded,
    /// The run's workflow file as it is now.
    CurrentFile,
    /// Another workflow file.
    File(PathBuf),
}

/// What replaying a run found.
#[derive(Debug, Clone, PartialEq)]
pub struct Replayed {
    /// The run replayed.
    pub run_id: RunId,
    /// The workflow replayed against, in words (`the recorded workflow`, or its path).
    pub against: String,
    /// The workflow differs from the one the run recorded (its content hash).
    pub workflow_changed: bool,
    /// The recorded workflow's content hash, and the one replayed against.
    pub hashes: (String, String),
    /// Events in the log.
    pub events: usize,
    /// Every decision matched (the report), or where the first one did not.
    pub verdict: Result<ReplayReport, Box<Divergence>>,
    /// The child runs its `workflow` steps started, each replayed against the workflow it
    /// recorded, with the step that started it.
    pub children: Vec<(stepwise_core::ids::StepId, Replayed)>,
}

impl Replayed {
    /// Whether this run and every child run below it replayed without a divergence.
    pub fn all_match(&self) -> bool {
        self.verdict.is_ok() && self.children.iter().all(|(_, child)| child.all_match())
    }
}

impl Engine {
    /// Replays a run (by id or unique prefix) against `against`. Nothing is performed and no
    /// model is called. A log the core cannot replay at all is an error; a decision that does
    /// not match is a verdict.
    pub async fn replay(&self, run: &str, against: ReplayAgainst) -> Result<Replayed, EngineError> {
        let loaded = self.load_run(run).await?;
        let mut children = Vec::new();
        for (step, child) in crate::subrun::child_runs(&loaded) {
            match Box::pin(self.replay(child.as_str(), ReplayAgainst::Recorded)).await {
                Ok(replayed) => children.push((step, replayed)),
                // Asked for, but a crash came before it was recorded: nothing to replay.
                Err(EngineError::RunNotFound { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        let run_id = loaded.row.run_id.clone();
        let (workflow, words): (Arc<Workflow>, String) = match against {
            ReplayAgainst::Recorded => (
                // As it was recorded, not as the run's state has it now: steps a plan or a
                // `for_each` joined are joined again by the replay.
                crate::loading::recorded_workflow(&run_id, &loaded.events)?,
                "the recorded workflow".into(),
            ),
            ReplayAgainst::CurrentFile | ReplayAgainst::File(_) => {
                let path = match against {
                    ReplayAgainst::File(path) => path,
                    _ => PathBuf::from(&loaded.row.workflow_path),
                };
                let read = path.clone();
                // The step types as the run saw them: a manifest changed since is not what
                // the run ran.
                let step_types = stepwise_core::custom_step::StepTypes::from_recorded(
                    &loaded.state.started().step_types,
                );
                let (workflow, _) = self
                    .ctx
                    .exec
                    .spawn_blocking(move || workflow_file::load(&read, &step_types))
                    .await
                    .map_err(|_| EngineError::ShutDown)??;
                (workflow, path.display().to_string())
            }
        };
        let events: Vec<(EventSeq, Event)> = loaded
            .events
            .iter()
            .map(|(stored, event)| (stored.seq, event.clone()))
            .collect();
        let verdict = match replay(Arc::clone(&workflow), &events) {
            Ok(report) => Ok(report),
            Err(ReplayError::Diverged(divergence)) => Err(divergence),
            Err(ReplayError::State(source)) => {
                return Err(EngineError::State {
                    run_id: run_id.clone(),
                    source,
                });
            }
        };
        Ok(Replayed {
            workflow_changed: workflow.source_hash != loaded.row.workflow_hash,
            hashes: (
                loaded.row.workflow_hash.clone(),
                workflow.source_hash.clone(),
            ),
            run_id,
            against: words,
            events: events.len(),
            verdict,
            children,
        })
    }
}
