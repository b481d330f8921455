//! Starting a run's driver in a task of its own on the writer's thread, and what watches over
//! the drivers of this process: the task that wakes them when commands arrive from other
//! processes, and what becomes of a driver that fails (see `failures`).

use std::sync::{Arc, Weak};

use stepwise_core::ids::RunId;
use stepwise_core::run::RunStatus;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::context::Context;
use crate::driver;
use crate::error::EngineError;
use crate::lock::RunLock;

/// A run driven by this engine, in a task of its own.
#[derive(Debug)]
pub struct RunHandle {
    run_id: RunId,
    join: JoinHandle<Result<RunStatus, EngineError>>,
}

impl RunHandle {
    /// The run this handle follows.
    pub fn run_id(&self) -> &RunId {
        &self.run_id
    }

    /// Waits until the driver stops: the run finished, or (unless the engine holds waiting
    /// runs) nothing can move without a person. Returns the run's status then.
    pub async fn wait(self) -> Result<RunStatus, EngineError> {
        driver_ended(self.join.await)
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.join.is_finished()
    }

    pub(crate) fn join_mut(&mut self) -> &mut JoinHandle<Result<RunStatus, EngineError>> {
        &mut self.join
    }
}

/// Starts the driver task for a run whose lock this process has just taken. Its outcome is
/// always looked at: a failure is recorded in the run or logged (see `failures`).
pub(crate) fn spawn_driver(ctx: &Arc<Context>, run_id: &RunId, lock: RunLock) -> RunHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let registration = ctx.live.register(run_id, tx.clone());
    ensure_inbox_watch(ctx);
    let owned_ctx = Arc::clone(ctx);
    let owned_id = run_id.clone();
    // Unregisters (and tells waiters) however the driver ends, panics included, and also when
    // its task is dropped before it ever ran (the writer's runtime stopping). The driver (and
    // with it the lock) is dropped first; a command sent meanwhile falls back to the inbox and
    // a standby, which waits for the lock.
    let unregister = Unregister {
        ctx: Arc::clone(ctx),
        registration,
    };
    let join = ctx.db.writer.spawn(async move {
        let _unregister = unregister;
        if owned_ctx.is_shutting_down() {
            return Err(EngineError::ShutDown);
        }
        let result = driver::drive(Arc::clone(&owned_ctx), owned_id.clone(), lock, tx, rx).await;
        if let Err(error) = &result {
            owned_ctx.failures.driver_failed(&owned_id, error);
        }
        result
    });
    RunHandle {
        run_id: run_id.clone(),
        join,
    }
}

/// Records a prepared run (its `RunStarted`, then `reused`: a fork's events from its parent)
/// and starts driving it in a task of its own.
pub(crate) async fn record_and_spawn(
    ctx: &Arc<Context>,
    prepared: crate::start::PreparedRun,
    reused: Vec<stepwise_store::NewEvent>,
) -> Result<RunHandle, EngineError> {
    let crate::start::PreparedRun {
        workflow,
        row,
        first,
        lock,
        ..
    } = prepared;
    let run_id = row.run_id.clone();
    ctx.remember_workflow(&workflow);
    let mut log = vec![first];
    log.extend(reused);
    ctx.db
        .write(move |store| store.create_run(&row, &log))
        .await?;
    Ok(spawn_driver(ctx, &run_id, lock))
}

struct Unregister {
    ctx: Arc<Context>,
    registration: crate::live::Registration,
}

impl Drop for Unregister {
    fn drop(&mut self) {
        self.ctx.live.unregister(&self.registration);
    }
}

/// Starts the task that wakes this process's drivers when commands for their runs arrive from
/// other processes (once per engine).
fn ensure_inbox_watch(ctx: &Arc<Context>) {
    ctx.inbox_watch.get_or_init(|| {
        let changes = ctx.db.watch_changes();
        let shutdown = ctx.watch_shutdown();
        ctx.db
            .writer
            .spawn(watch_inbox(Arc::downgrade(ctx), changes, shutdown));
    });
}

/// How long the inbox watch lets a burst of commits settle before it looks.
const INBOX_SETTLE: std::time::Duration = std::time::Duration::from_millis(10);

/// On every change to the database, looks for commands that arrived for runs this process
/// drives and wakes their drivers. Ends with the engine.
async fn watch_inbox(
    ctx: Weak<Context>,
    mut changes: watch::Receiver<u64>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut seen = 0_i64;
    loop {
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = shutdown.wait_for(|down| *down) => return,
        }
        // Commits come in bursts (and each writes several pages, each a filesystem event):
        // let a burst settle and look once, instead of once per page.
        tokio::time::sleep(INBOX_SETTLE).await;
        changes.borrow_and_update();
        let Some(ctx) = ctx.upgrade() else {
            return;
        };
        if !ctx.live.drives_anything() {
            continue;
        }
        let after = seen;
        let pending = ctx
            .db
            .read(move |store| Ok(store.pending_commands_after(after)?))
            .await;
        match pending {
            Ok(pending) => {
                for (command_id, run_id) in pending {
                    seen = seen.max(command_id);
                    ctx.live.nudge(&run_id);
                }
            }
            Err(error) => tracing::warn!(%error, "cannot read the command inbox"),
        }
    }
}

/// How a driver's task ended, as the run's outcome: a task cancelled (its runtime stopped) is
/// the engine shutting down.
pub(crate) fn driver_ended(
    joined: Result<Result<RunStatus, EngineError>, tokio::task::JoinError>,
) -> Result<RunStatus, EngineError> {
    joined.map_err(|e| {
        if e.is_cancelled() {
            EngineError::ShutDown
        } else {
            EngineError::Internal(format!("the driver of a run stopped: {e}"))
        }
    })?
}
