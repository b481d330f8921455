//! Faults and delays a test injects into an engine, to show how it behaves under them: a slow
//! disk (a run's commits held up), a disk that refuses writes (a run's commits failing). Never
//! armed outside tests; unarmed, a commit pays one atomic load for them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use stepwise_core::ids::RunId;

use crate::error::EngineError;

/// What a test asked for one run.
#[derive(Debug, Default, Clone, Copy)]
struct RunFaults {
    commit_delay: Option<Duration>,
    failing_commits: u32,
}

/// Faults a test injects (see [`crate::Engine::test_hooks`]).
#[derive(Debug, Default)]
pub struct TestHooks {
    armed: AtomicBool,
    /// By run; `None`: every run.
    runs: Mutex<HashMap<Option<RunId>, RunFaults>>,
}

impl TestHooks {
    /// Holds up each commit of the run's driver (`None`: of every run's) by `delay` on the
    /// engine's writer thread, as a slow fsync would.
    pub fn slow_commits(&self, run_id: Option<&RunId>, delay: Duration) {
        self.runs().entry(run_id.cloned()).or_default().commit_delay = Some(delay);
        self.armed.store(true, Ordering::Release);
    }

    /// Makes the next `count` commits of the run's driver (`None`: of any run's) fail as a
    /// disk that refuses writes would.
    pub fn fail_commits(&self, run_id: Option<&RunId>, count: u32) {
        self.runs()
            .entry(run_id.cloned())
            .or_default()
            .failing_commits = count;
        self.armed.store(true, Ordering::Release);
    }

    /// Called by a driver before each commit of its run.
    pub(crate) fn before_commit(
        &self,
        run_id: &RunId,
        db: &std::path::Path,
    ) -> Result<(), EngineError> {
        if !self.armed.load(Ordering::Acquire) {
            return Ok(());
        }
        let (delay, fail) = {
            let mut runs = self.runs();
            let key = Some(run_id.clone());
            let key = if runs.contains_key(&key) { key } else { None };
            let Some(faults) = runs.get_mut(&key) else {
                return Ok(());
            };
            let fail = faults.failing_commits > 0;
            faults.failing_commits = faults.failing_commits.saturating_sub(1);
            (faults.commit_delay, fail)
        };
        if let Some(delay) = delay {
            std::thread::sleep(delay);
        }
        if fail {
            return Err(EngineError::Io {
                path: db.to_path_buf(),
                source: std::io::Error::other(
                    "the disk refused the write (a fault a test injected)",
                ),
            });
        }
        Ok(())
    }

    fn runs(&self) -> std::sync::MutexGuard<'_, HashMap<Option<RunId>, RunFaults>> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }
}
