//! What the views read of each run's whole log (the files it touched, its pending edits, its
//! cost), kept per run and read again only when the run's log has grown. The Workspace and
//! Cost views refresh on live signals; reading every run's log on each refresh would put
//! hundreds of full reads on that path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use stepwise_core::event::{Event, Proposal};
use stepwise_core::ids::{EventSeq, RunId};
use stepwise_core::operation::OperationRequest;
use stepwise_core::run::{CostReport, cost_report};
use stepwise_engine::{Engine, EngineError, RunRow};

/// One run's log, boiled down.
pub struct RunDigest {
    last_seq: EventSeq,
    /// Workspace paths its operations read or wrote.
    pub touched: Vec<String>,
    /// Paths of the edits waiting for a person.
    pub pending_edits: Vec<String>,
    pub cost: CostReport,
}

#[derive(Default)]
pub struct Digests(Mutex<HashMap<RunId, Arc<RunDigest>>>);

impl Digests {
    /// The digest of `row`'s run, read from its log only if the log grew since the last time.
    pub async fn of(&self, engine: &Engine, row: &RunRow) -> Result<Arc<RunDigest>, EngineError> {
        if let Some(digest) = self.cached(&row.run_id)
            && digest.last_seq == row.last_seq
        {
            return Ok(digest);
        }
        let loaded = engine.load_run(row.run_id.as_str()).await?;
        let mut touched = Vec::new();
        for (_, event) in &loaded.events {
            if let Event::OperationStarted { request, .. } = event
                && let OperationRequest::ReadFile { path, .. }
                | OperationRequest::WriteFile { path, .. } = request
            {
                touched.push(path.clone());
            }
        }
        let pending_edits = loaded
            .state
            .pending_approvals()
            .into_iter()
            .filter_map(|(_, approval)| match &approval.proposal {
                Proposal::EditFile { path, .. } => Some(path.clone()),
                _ => None,
            })
            .collect();
        let cost = cost_report(
            loaded
                .events
                .iter()
                .map(|(s, e)| (s.seq, s.recorded_at_ms, e)),
        );
        let digest = Arc::new(RunDigest {
            last_seq: loaded.row.last_seq,
            touched,
            pending_edits,
            cost,
        });
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(row.run_id.clone(), Arc::clone(&digest));
        Ok(digest)
    }

    fn cached(&self, run: &RunId) -> Option<Arc<RunDigest>> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(run)
            .cloned()
    }
}
