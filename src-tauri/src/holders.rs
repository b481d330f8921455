//! Who drives each unfinished run, learnt from the runs feed: when a run changes, its lock is
//! asked about once, and a list answers from what is known, so that showing thousands of runs
//! never probes thousands of locks. Runs this process drives are known without asking; the app
//! adopts every run nobody drives (`Engine::adopt_unheld_runs`), so a holder that dies is
//! replaced here at once and its run never stays shown as driven by a dead process.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use stepwise_core::ids::RunId;
use stepwise_core::run::RunStatus;
use stepwise_engine::{Engine, RunRow};

#[derive(Debug, Clone)]
struct Known {
    status: RunStatus,
    held_by: Option<String>,
}

#[derive(Default)]
pub struct Holders {
    /// Unfinished runs only: a run that finishes is forgotten.
    known: Mutex<HashMap<RunId, Known>>,
}

fn finished(status: RunStatus) -> bool {
    status.is_finished()
}

impl Holders {
    fn known(&self) -> MutexGuard<'_, HashMap<RunId, Known>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Looks again at who drives a run that changed (its row as the feed gave it).
    pub async fn refresh(&self, engine: &Engine, row: &RunRow) {
        if finished(row.status) {
            self.known().remove(&row.run_id);
            return;
        }
        let held_by = if engine.drives(&row.run_id) {
            None
        } else {
            match engine.holder(&row.run_id).await {
                Ok(holder) => holder,
                Err(error) => {
                    tracing::warn!(run_id = %row.run_id, "cannot tell who drives the run: {error}");
                    Some("unknown (its lock cannot be read)".to_string())
                }
            }
        };
        self.known().insert(
            row.run_id.clone(),
            Known {
                status: row.status,
                held_by,
            },
        );
    }

    /// Who drives a run: this process, the holder last seen, or nobody. Asks the run's lock
    /// only for an unfinished run the feed has not reported yet.
    pub async fn held_by(&self, engine: &Engine, row: &RunRow) -> Option<String> {
        if finished(row.status) {
            return None;
        }
        if engine.drives(&row.run_id) {
            return Some(format!("pid {}", std::process::id()));
        }
        let known = self.known().get(&row.run_id).cloned();
        match known {
            Some(known) => known.held_by,
            None => {
                self.refresh(engine, row).await;
                self.known()
                    .get(&row.run_id)
                    .and_then(|k| k.held_by.clone())
            }
        }
    }

    /// Runs recorded as running that nobody drives (their driver died): shown as interrupted.
    pub fn interrupted(&self, engine: &Engine) -> Vec<RunId> {
        self.known()
            .iter()
            .filter(|(id, known)| {
                known.status == RunStatus::Running && known.held_by.is_none() && !engine.drives(id)
            })
            .map(|(id, _)| id.clone())
            .collect()
    }
}
