//! Who owns what the engine starts, and how it all ends.
//!
//! - The writer thread (`db::writer`) owns its single-threaded runtime, and with it every task
//!   on it: the drivers, the inbox watch, the adopt task, the watch for a replaced database.
//! - The executor runtime ([`ExecRuntime`]), multi-threaded, is where operations are performed
//!   and reads are made; the writer thread stops it after its own runtime has stopped, so that
//!   drivers winding down can still hear from the operations they cancel.
//! - The watches (database changes, pending edits' files, run locks) each own a thread of
//!   `notify`'s, stopped with them.
//!
//! The last [`crate::Engine`] handle to go (its [`Owner`]), or [`crate::Engine::shutdown`],
//! raises the shutdown signal: drivers wind down and let go of their runs, feeds and waits
//! end with [`EngineError::ShutDown`], the watches stop, and once the drivers are gone (or
//! after [`WIND_DOWN`]) the writer thread stops both runtimes and ends. No thread of the
//! engine's is left behind.

use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::{Handle, Runtime};

use crate::context::Context;
use crate::db::writer::RUNTIME_STOP;
use crate::error::EngineError;
use crate::messages::Message;

/// How long drivers get to wind down (kill their commands, hear back from their operations)
/// before the runtimes are stopped under them.
pub(crate) const WIND_DOWN: Duration = Duration::from_millis(500);

/// Most worker threads the executor runtime has: operations mostly wait on the network and
/// on processes, so a few are enough, and a small machine is not crowded.
const MAX_EXEC_WORKERS: usize = 4;

/// How long an idle blocking thread of the executor runtime lives.
const BLOCKING_KEEP_ALIVE: Duration = Duration::from_secs(2);

/// The engine's multi-threaded runtime for operations and reads.
pub(crate) struct ExecRuntime {
    runtime: Option<Runtime>,
    handle: Handle,
}

impl ExecRuntime {
    pub(crate) fn start() -> Result<ExecRuntime, EngineError> {
        let workers = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(2)
            .clamp(2, MAX_EXEC_WORKERS);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("stepwise-exec")
            // Blocking threads (reads, file IO) that sit idle this long retire, so that a
            // burst leaves no crowd of them behind.
            .thread_keep_alive(BLOCKING_KEEP_ALIVE)
            .enable_all()
            .build()
            .map_err(|source| EngineError::Io {
                path: "the stepwise-exec runtime".into(),
                source,
            })?;
        Ok(ExecRuntime {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        })
    }

    pub(crate) fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Stops the runtime, giving blocking work a moment to finish. Not from inside a runtime:
    /// the writer thread calls it after its own runtime has ended.
    pub(crate) fn stop(mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(RUNTIME_STOP);
        }
    }
}

impl Drop for ExecRuntime {
    fn drop(&mut self) {
        // Dropped without `stop` (the engine failed to open): safe from any context.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Held by the engine's handles only: when the last one is dropped, the engine shuts down.
pub(crate) struct Owner {
    ctx: Arc<Context>,
}

impl Owner {
    pub(crate) fn new(ctx: Arc<Context>) -> Owner {
        Owner { ctx }
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        begin_shutdown(&self.ctx);
    }
}

/// Raises the shutdown signal and lets everything wind down (see the module's doc). Returns
/// at once; `Writer::exited` says when it is over.
pub(crate) fn begin_shutdown(ctx: &Arc<Context>) {
    if !ctx.raise_shutdown() {
        return;
    }
    ctx.stop_watches();
    crate::exec::discard_idle_supervisors();
    for driver in ctx.live.channels() {
        let _ = driver.send(Message::Shutdown);
    }
    let mut drivers = ctx.live.watch_count();
    let writer = Arc::clone(&ctx.db.writer);
    let stopper = Arc::clone(&writer);
    // On the writer's runtime: if it is gone already, so is everything that would need it.
    writer.spawn(async move {
        let _ = tokio::time::timeout(WIND_DOWN, drivers.wait_for(|n| *n == 0)).await;
        stopper.stop();
    });
}

/// Once holds on the PostgreSQL server are lost (the connection that held them ended), the
/// drivers of those runs stop, recording nothing: the server may have handed the runs to
/// another process already. On the writer thread, where the drivers live.
#[cfg(feature = "postgres")]
pub(crate) fn stop_drivers_of_lost_holds(ctx: &Arc<Context>) {
    let Some(holds) = ctx.db.holds.shared().cloned() else {
        return;
    };
    let weak = Arc::downgrade(ctx);
    let mut lost = holds.watch_lost();
    let mut shutdown = ctx.watch_shutdown();
    ctx.db.writer.spawn(async move {
        loop {
            tokio::select! {
                changed = lost.changed() => if changed.is_err() { return },
                _ = shutdown.wait_for(|down| *down) => return,
            }
            let Some(ctx) = weak.upgrade() else {
                return;
            };
            for run_id in holds.take_lost() {
                if let Some(driver) = ctx.live.channel(&run_id) {
                    let _ = driver.send(Message::HoldLost);
                }
            }
        }
    });
}

/// Once the database file is found replaced, nothing more of this process's runs may happen:
/// the writer hands its write-ahead log over, and every driver stops (killing the commands it
/// started), recording nothing. On the writer thread, where the drivers live.
pub(crate) fn stop_when_replaced(ctx: &Arc<Context>) {
    let weak = Arc::downgrade(ctx);
    let mut replaced = ctx.db.file.subscribe();
    let mut shutdown = ctx.watch_shutdown();
    ctx.db.writer.spawn(async move {
        tokio::select! {
            found = replaced.wait_for(|replaced| *replaced) => if found.is_err() { return },
            _ = shutdown.wait_for(|down| *down) => return,
        }
        let Some(ctx) = weak.upgrade() else {
            return;
        };
        ctx.db.writer.let_go_here();
        for driver in ctx.live.channels() {
            let _ = driver.send(Message::DatabaseReplaced);
        }
    });
}
