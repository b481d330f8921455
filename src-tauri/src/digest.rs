//! What the views read of each run's whole log (the files it touched, its pending edits, its
//! cost), kept per run and brought up to date by folding only the events recorded since. The
//! Workspace and Cost views refresh on live signals; reading every run's log on each refresh
//! would put hundreds of full reads on that path, and a long run that keeps growing would be
//! read whole at every step. The cache is bounded: the least recently used digests go first.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use stepwise_core::event::{Event, Proposal};
use stepwise_core::ids::{EventSeq, RunId, StepId};
use stepwise_core::operation::OperationRequest;
use stepwise_core::run::{CostReport, CostTally};
use stepwise_engine::{Engine, EngineError, RunRow};

/// At most this many runs' digests are kept (more than the Cost view counts).
const DIGESTS_KEPT: usize = 1_024;
/// How many events one read takes when a digest catches up.
const PAGE: usize = 2_000;

/// One run's log, boiled down.
#[derive(Clone, Default)]
pub struct RunDigest {
    last_seq: EventSeq,
    /// The machine the run was started on, when recorded.
    host: Option<String>,
    touched: BTreeSet<String>,
    /// The path of the edit each step waits on.
    pending: BTreeMap<StepId, String>,
    cost: CostTally,
}

impl RunDigest {
    /// Workspace paths its operations read or wrote.
    pub fn touched(&self) -> impl Iterator<Item = &String> {
        self.touched.iter()
    }

    /// Paths of the edits waiting for a person.
    pub fn pending_edits(&self) -> impl Iterator<Item = &String> {
        self.pending.values()
    }

    /// The machine the run was started on, where its workspace is.
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    pub fn cost(&self) -> &CostReport {
        self.cost.report()
    }

    fn apply(&mut self, seq: EventSeq, at: i64, event: &Event) {
        self.last_seq = seq;
        self.cost.apply(seq, at, event);
        match event {
            Event::RunStarted(started) => self.host.clone_from(&started.host),
            Event::OperationStarted {
                request:
                    OperationRequest::ReadFile { path, .. } | OperationRequest::WriteFile { path, .. },
                ..
            } => {
                self.touched.insert(path.clone());
            }
            Event::ApprovalRequested { step, proposal, .. } => match proposal {
                Proposal::EditFile { path, .. } => {
                    self.pending.insert(step.clone(), path.clone());
                }
                _ => {
                    self.pending.remove(step);
                }
            },
            Event::RunSucceeded {} | Event::RunFailed { .. } | Event::RunCancelled {} => {
                self.pending.clear();
            }
            // Anything else that happens to a step means it no longer waits on its edit; a
            // voided edit is asked again by the `ApprovalRequested` that follows.
            other => {
                if let Some(step) = other.step() {
                    self.pending.remove(step);
                }
            }
        }
    }
}

pub struct Digests {
    kept: Mutex<HashMap<RunId, (Arc<RunDigest>, u64)>>,
    /// Ticks of use, to find the least recently used.
    clock: Mutex<u64>,
    capacity: usize,
}

impl Default for Digests {
    fn default() -> Digests {
        Digests::with_capacity(DIGESTS_KEPT)
    }
}

impl Digests {
    /// Keeps at most `capacity` runs' digests.
    pub fn with_capacity(capacity: usize) -> Digests {
        Digests {
            kept: Mutex::default(),
            clock: Mutex::default(),
            capacity: capacity.max(1),
        }
    }

    fn kept(&self) -> MutexGuard<'_, HashMap<RunId, (Arc<RunDigest>, u64)>> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn tick(&self) -> u64 {
        let mut clock = self.clock.lock().unwrap_or_else(|p| p.into_inner());
        *clock += 1;
        *clock
    }

    /// The digest of `row`'s run, folding the events recorded since it was last made.
    pub async fn of(&self, engine: &Engine, row: &RunRow) -> Result<Arc<RunDigest>, EngineError> {
        let tick = self.tick();
        let cached = self.kept().get_mut(&row.run_id).map(|(digest, used)| {
            *used = tick;
            Arc::clone(digest)
        });
        if let Some(digest) = &cached
            && digest.last_seq >= row.last_seq
        {
            return Ok(Arc::clone(digest));
        }
        let mut digest = cached.map(|d| (*d).clone()).unwrap_or_default();
        loop {
            let page = engine
                .read_log(row.run_id.as_str(), digest.last_seq, PAGE)
                .await?;
            for logged in &page.events {
                digest.apply(logged.seq, logged.recorded_at_ms, &logged.event);
            }
            if page.events.len() < PAGE {
                break;
            }
        }
        let digest = Arc::new(digest);
        let mut kept = self.kept();
        kept.insert(row.run_id.clone(), (Arc::clone(&digest), tick));
        if kept.len() > self.capacity
            && let Some(oldest) = kept
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(id, _)| id.clone())
        {
            kept.remove(&oldest);
        }
        Ok(digest)
    }

    /// How many digests are kept (for tests).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.kept().len()
    }
}
