//! Adopting runs: an engine that holds waiting runs (the app) can be the holder of last
//! resort, driving every unfinished run that no process holds, now and whenever one is let go
//! (its holder stopped, or died). The engine stands by on the lock of each run another process
//! holds, so a SIGKILLed holder's run is taken over the moment the kernel releases its lock.

use std::sync::Arc;

use stepwise_store::RunRow;
use tokio::task::JoinHandle;

use crate::context::Context;
use crate::drivers::spawn_driver;
use crate::engine::Engine;
use crate::error::EngineError;
use crate::standby::stand_by;

impl Engine {
    /// Drives, from now on, every unfinished run that no process holds: those waiting now, and
    /// each one another process lets go of later (because it stopped driving it, or died). Meant
    /// for an engine that holds waiting runs (see [`crate::EngineConfig::hold_waiting_runs`]).
    /// The returned task runs until the engine shuts down; abort it to stop adopting (runs
    /// already stood by for are still taken over when let go).
    pub async fn adopt_unheld_runs(&self) -> Result<JoinHandle<()>, EngineError> {
        self.ctx.db.check_writable()?;
        // Subscribed first, so that no run changing while the others are looked at is missed.
        let mut changes = self.subscribe_runs().await?;
        for row in self.unfinished_runs().await? {
            adopt(&self.ctx, &row).await;
        }
        let ctx = Arc::clone(&self.ctx);
        Ok(self.ctx.db.writer.spawn(async move {
            loop {
                match changes.next().await {
                    Ok(row) => adopt(&ctx, &row).await,
                    Err(EngineError::WriterStopped | EngineError::ShutDown) => return,
                    Err(error) => {
                        // A read failed (the disk, a busy database): look again shortly; the
                        // feed's cursor has not moved, so nothing is missed.
                        tracing::warn!(%error, "adopting runs: reading changes failed; retrying");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
            }
        }))
    }
}

/// Makes sure an unfinished run is driven here once nobody else drives it.
async fn adopt(ctx: &Arc<Context>, row: &RunRow) {
    let finished = row.status.is_finished();
    // Already waited for: trying its lock again at each change of a run held elsewhere would
    // close a lock file opened for writing each time, waking every process's waiters.
    if finished || ctx.live.drives(&row.run_id) || ctx.is_standing_by(&row.run_id) {
        return;
    }
    // A run of another machine is driven there, never adopted here.
    match ctx.other_machine(&row.run_id).await {
        Ok(None) => {}
        Ok(Some(_)) => return,
        Err(error) => {
            tracing::warn!(%error, run_id = %row.run_id, "cannot adopt a run");
            return;
        }
    }
    let result = match ctx.hold(&row.run_id).await {
        Ok(Ok(lock)) => {
            // Its outcome is looked at by the driver's task (see `failures`).
            drop(spawn_driver(ctx, &row.run_id, lock));
            Ok(())
        }
        Ok(Err(_holder)) => stand_by(ctx, &row.run_id),
        Err(error) => Err(error),
    };
    if let Err(error) = result {
        tracing::warn!(%error, run_id = %row.run_id, "cannot adopt a run");
    }
}
