//! Adopting runs: an engine that holds waiting runs (the app) can be the holder of last
//! resort, driving every unfinished run that no process holds, now and whenever one is let go
//! (its holder stopped, or died). A thread stands by on the lock of each run another process
//! holds, so a SIGKILLed holder's run is taken over the moment the kernel releases its lock.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use stepwise_core::run::RunStatus;
use stepwise_store::RunRow;
use tokio::task::JoinHandle;

use crate::engine::Engine;
use crate::error::EngineError;
use crate::lock::RunLock;

impl Engine {
    /// Drives, from now on, every unfinished run that no process holds: those waiting now, and
    /// each one another process lets go of later (because it stopped driving it, or died). Meant
    /// for an engine that holds waiting runs (see [`crate::EngineConfig::hold_waiting_runs`]).
    /// The returned task runs until the engine's database writer stops; abort it to stop
    /// adopting.
    pub async fn adopt_unheld_runs(&self) -> Result<JoinHandle<()>, EngineError> {
        // Subscribed first, so that no run changing while the others are looked at is missed.
        let mut changes = self.subscribe_runs().await?;
        let standing_by = Arc::new(Mutex::new(HashSet::new()));
        for row in self.unfinished_runs().await? {
            self.stand_by(&row, &standing_by);
        }
        let engine = self.clone();
        Ok(self.inner.db.writer.spawn(async move {
            loop {
                match changes.next().await {
                    Ok(row) => engine.stand_by(&row, &standing_by),
                    Err(error) => {
                        tracing::warn!(%error, "adopting runs stopped");
                        return;
                    }
                }
            }
        }))
    }

    /// Makes sure an unfinished run is driven here once nobody else drives it.
    fn stand_by(&self, row: &RunRow, standing_by: &Arc<Mutex<HashSet<String>>>) {
        let finished = RunStatus::parse(&row.status).is_none_or(RunStatus::is_finished);
        if finished || self.drives(&row.run_id) {
            return;
        }
        if !standing_by
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(row.run_id.clone())
        {
            return;
        }
        let engine = self.clone();
        let run_id = row.run_id.clone();
        let lock_dir = self.inner.db.lock_dir.clone();
        let standing_by = Arc::clone(standing_by);
        let spawned = std::thread::Builder::new()
            .name("stepwise-adopt".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let lock = RunLock::wait(&lock_dir, &run_id);
                standing_by
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&run_id);
                match lock {
                    Ok(lock) => {
                        // The driver runs on the engine's own thread; its handle is not needed.
                        drop(engine.spawn_driver(&run_id, lock));
                        tracing::info!(run_id, "adopted a run nobody drives");
                    }
                    Err(error) => tracing::warn!(%error, run_id, "cannot stand by for a run"),
                }
            });
        if let Err(error) = spawned {
            tracing::warn!(%error, "cannot start a thread to stand by for a run");
        }
    }
}
