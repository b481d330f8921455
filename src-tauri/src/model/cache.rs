//! The run models the window uses, kept between its requests and bounded: at most a few runs,
//! and at most so many events folded in all, the least recently used dropped first (it is read
//! again, once, if it is shown again).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use stepwise_core::ids::RunId;
use stepwise_engine::{Engine, EngineError};

use super::{Changes, RunModel};

/// At most this many runs are kept.
const RUNS_KEPT: usize = 8;
/// At most this many events folded in all (the newest model is kept whatever its size).
const EVENTS_KEPT: u64 = 400_000;
/// How many events one read takes when a model catches up.
const CATCH_UP_PAGE: usize = 2_000;

pub type SharedModel = Arc<Mutex<RunModel>>;

/// Locks a model; a panic while it was held leaves it usable (every change is checked
/// before it is made).
pub fn lock(model: &SharedModel) -> MutexGuard<'_, RunModel> {
    model.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct RunModels {
    /// Most recently used first.
    kept: Mutex<VecDeque<(RunId, SharedModel)>>,
    runs_kept: usize,
    events_kept: u64,
}

impl Default for RunModels {
    fn default() -> RunModels {
        RunModels::with_limits(RUNS_KEPT, EVENTS_KEPT)
    }
}

impl RunModels {
    /// Keeps at most `runs` models and `events` folded events in all.
    pub fn with_limits(runs: usize, events: u64) -> RunModels {
        RunModels {
            kept: Mutex::default(),
            runs_kept: runs.max(1),
            events_kept: events,
        }
    }

    /// The model of `run` (by id or unique prefix), read the first time, then brought up to
    /// date with the events recorded since.
    pub async fn current(&self, engine: &Engine, run: &str) -> Result<SharedModel, EngineError> {
        let model = match self.cached(run) {
            Some(model) => model,
            None => {
                let loaded = engine.load_run(run).await?;
                let run_id = loaded.row.run_id.clone();
                match self.cached(run_id.as_str()) {
                    Some(model) => model,
                    None => {
                        let model = Arc::new(Mutex::new(RunModel::new(loaded)));
                        self.keep(run_id, Arc::clone(&model));
                        model
                    }
                }
            }
        };
        self.catch_up(engine, &model).await?;
        Ok(model)
    }

    /// Folds the events recorded since the model's last one, a page at a time.
    pub async fn catch_up(
        &self,
        engine: &Engine,
        model: &SharedModel,
    ) -> Result<Changes, EngineError> {
        let mut all = Changes::default();
        loop {
            let (run_id, after) = {
                let model = lock(model);
                (model.row().run_id.clone(), model.last_seq())
            };
            let page = engine
                .read_log(run_id.as_str(), after, CATCH_UP_PAGE)
                .await?;
            let more = page.events.len() == CATCH_UP_PAGE;
            let mut guard = lock(model);
            let changes = match guard.apply(&page.events) {
                Ok(changes) => changes,
                Err(source) => {
                    drop(guard);
                    self.forget(&run_id);
                    return Err(EngineError::State { run_id, source });
                }
            };
            guard.set_row(page.run);
            all.steps.extend(changes.steps);
            all.reshaped |= changes.reshaped;
            all.newest_at_ms = all.newest_at_ms.max(changes.newest_at_ms);
            all.oldest_at_ms = all.oldest_at_ms.min(changes.oldest_at_ms);
            if !more {
                return Ok(all);
            }
        }
    }

    /// Drops a run's model (it could not be brought up to date).
    pub fn forget(&self, run_id: &RunId) {
        self.kept().retain(|(id, _)| id != run_id);
    }

    fn kept(&self) -> MutexGuard<'_, VecDeque<(RunId, SharedModel)>> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn cached(&self, run: &str) -> Option<SharedModel> {
        let mut kept = self.kept();
        let at = kept.iter().position(|(id, _)| id.as_str() == run)?;
        let entry = kept.remove(at)?;
        let model = Arc::clone(&entry.1);
        kept.push_front(entry);
        Some(model)
    }

    fn keep(&self, run_id: RunId, model: SharedModel) {
        let mut kept = self.kept();
        kept.retain(|(id, _)| *id != run_id);
        kept.push_front((run_id, model));
        let events = |kept: &VecDeque<(RunId, SharedModel)>| -> u64 {
            kept.iter().map(|(_, m)| lock(m).last_seq().get()).sum()
        };
        while kept.len() > 1 && (kept.len() > self.runs_kept || events(&kept) > self.events_kept) {
            kept.pop_back();
        }
    }

    /// How many runs are kept (for tests).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.kept().len()
    }
}
