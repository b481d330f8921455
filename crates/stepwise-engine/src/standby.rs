//! Making sure a run is driven while someone waits on it: by a driver in this process, by the
//! process that holds the run, or, when nobody holds it (it stopped, or died), by a driver
//! started here. For a run another process holds, the engine's locks directory watch (see
//! `locks_dir_watch`)
//! waits for its lock and drives the run here the moment the holder lets go or dies (the
//! kernel releases the lock of a SIGKILLed process), without a thread of its own or polling.

use std::sync::Arc;

use stepwise_core::ids::RunId;
use tokio::sync::watch;

use crate::context::Context;
use crate::drivers::{RunHandle, spawn_driver};
use crate::error::EngineError;
use crate::lock::{LockCandidate, RunLock};

pub(crate) struct Standby {
    run_id: RunId,
    /// The driver this standby started, to learn how it ended.
    own: Option<RunHandle>,
    /// A driver of this process that someone else started.
    local: Option<watch::Receiver<bool>>,
    /// How many drivers this process runs: it moves when a standing-by thread starts one.
    drivers: watch::Receiver<usize>,
}

impl Standby {
    pub(crate) fn new(ctx: &Context, run_id: &RunId) -> Standby {
        Standby {
            run_id: run_id.clone(),
            own: None,
            local: None,
            drivers: ctx.live.watch_count(),
        }
    }

    /// Makes sure somebody drives the run now: wakes this process's driver to read its inbox,
    /// or starts one if nobody holds the run, or else stands by on the lock of the process
    /// that holds it.
    pub(crate) fn ensure_driven(&mut self, ctx: &Arc<Context>) -> Result<(), EngineError> {
        self.drivers.borrow_and_update();
        if self.own.as_ref().is_some_and(|own| !own.is_finished()) {
            ctx.live.nudge(&self.run_id);
            return Ok(());
        }
        if let Some(stopped) = ctx.live.stopped(&self.run_id) {
            ctx.live.nudge(&self.run_id);
            self.local = Some(stopped);
            return Ok(());
        }
        match ctx.db.holds.try_acquire(&self.run_id, ctx.clock.now_ms())? {
            Ok(lock) => self.own = Some(spawn_driver(ctx, &self.run_id, lock)),
            Err(_holder) => stand_by(ctx, &self.run_id)?,
        }
        Ok(())
    }

    /// Whether this standby started a driver that has not been taken yet.
    pub(crate) fn has_own(&self) -> bool {
        self.own.is_some()
    }

    /// The driver this standby started, if any.
    pub(crate) fn take_own(&mut self) -> Option<RunHandle> {
        self.own.take()
    }

    /// Waits until who drives the run may have changed: a driver of this process started or
    /// stopped. An error is the failure of a driver this standby started.
    pub(crate) async fn changed(&mut self) -> Result<(), EngineError> {
        enum Change {
            OwnEnded(
                Result<Result<stepwise_core::run::RunStatus, EngineError>, tokio::task::JoinError>,
            ),
            LocalStopped,
            Drivers,
        }
        let change = {
            let Standby {
                own,
                local,
                drivers,
                ..
            } = self;
            let own_ended = async {
                match own.as_mut() {
                    Some(own) => own.join_mut().await,
                    None => std::future::pending().await,
                }
            };
            let local_stopped = async {
                match local.as_mut() {
                    Some(local) => {
                        let _ = local.wait_for(|stopped| *stopped).await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                ended = own_ended => Change::OwnEnded(ended),
                () = local_stopped => Change::LocalStopped,
                changed = drivers.changed() => {
                    if changed.is_err() {
                        return Err(EngineError::WriterStopped);
                    }
                    Change::Drivers
                }
            }
        };
        match change {
            Change::OwnEnded(ended) => {
                self.own = None;
                crate::drivers::driver_ended(ended).map(drop)
            }
            Change::LocalStopped => {
                self.local = None;
                Ok(())
            }
            Change::Drivers => Ok(()),
        }
    }
}

/// How long a standby that failed waits before it stands by again.
const STAND_BY_AGAIN: std::time::Duration = std::time::Duration::from_secs(1);

/// Stands by for a run another process holds: once its lock is free, the run is driven here (a
/// driver of a finished run stops at once). One waiter per run and engine, however many wait
/// on the run.
pub(crate) fn stand_by(ctx: &Arc<Context>, run_id: &RunId) -> Result<(), EngineError> {
    if ctx.is_shutting_down() || !ctx.start_standing_by(run_id) {
        return Ok(());
    }
    #[cfg(feature = "postgres")]
    if ctx.db.holds.shared().is_some() {
        poll_for_hold(ctx, run_id);
        return Ok(());
    }
    let candidate = match LockCandidate::open(&ctx.db.lock_dir, run_id) {
        Ok(candidate) => candidate,
        Err(error) => {
            ctx.stop_standing_by(run_id);
            return Err(error);
        }
    };
    let weak = Arc::downgrade(ctx);
    let owned = run_id.clone();
    let on_taken = Box::new(move |taken: Result<RunLock, EngineError>| {
        let Some(ctx) = weak.upgrade() else {
            return;
        };
        ctx.stop_standing_by(&owned);
        match taken {
            Ok(lock) => {
                // The driver runs on the engine's own thread; waiters follow it there.
                drop(spawn_driver(&ctx, &owned, lock));
                tracing::debug!(run_id = %owned, "took over a run its holder let go of");
            }
            Err(error) => {
                // Whoever waits on the run is not left waiting for nothing: stand by again in
                // a moment (a lock file being removed and made anew, a passing IO error).
                tracing::warn!(%error, run_id = %owned, "cannot stand by for a run; trying again");
                let again = Arc::clone(&ctx);
                ctx.exec.spawn(async move {
                    tokio::time::sleep(STAND_BY_AGAIN).await;
                    if let Err(error) = stand_by(&again, &owned) {
                        tracing::error!(%error, run_id = %owned, "cannot stand by for a run");
                    }
                });
            }
        }
    });
    if !ctx.locks_dir_watch().wait_for(candidate, run_id, on_taken) {
        ctx.stop_standing_by(run_id);
    }
    Ok(())
}

/// How often a standby asks the PostgreSQL server for a run another process holds.
#[cfg(feature = "postgres")]
const POLL_HOLD: std::time::Duration = std::time::Duration::from_millis(250);

/// Stands by for a run held on the PostgreSQL server: a hold cannot be waited for without a
/// connection of its own, so the standby asks for it four times a second (a cheap query),
/// and drives the run here once it is free: its holder let go, or its connection ended.
#[cfg(feature = "postgres")]
fn poll_for_hold(ctx: &Arc<Context>, run_id: &RunId) {
    let weak = Arc::downgrade(ctx);
    let run_id = run_id.clone();
    ctx.exec.spawn(async move {
        loop {
            tokio::time::sleep(POLL_HOLD).await;
            let Some(ctx) = weak.upgrade() else {
                return;
            };
            if ctx.is_shutting_down() {
                ctx.stop_standing_by(&run_id);
                return;
            }
            // Asked on a reader first (a query), so that the engine's one holding connection
            // is not kept busy by every run it waits for.
            let holds = ctx.db.holds.clone();
            let asked = run_id.clone();
            let held = ctx.db.read(move |store| holds.holder(store, &asked)).await;
            if matches!(held, Ok(Some(_))) {
                continue;
            }
            match ctx.hold(&run_id).await {
                Ok(Ok(lock)) => {
                    ctx.stop_standing_by(&run_id);
                    drop(spawn_driver(&ctx, &run_id, lock));
                    tracing::debug!(%run_id, "took over a run its holder let go of");
                    return;
                }
                Ok(Err(_holder)) => {}
                Err(error) => {
                    tracing::debug!(%error, %run_id, "cannot ask for a run's hold; asking again")
                }
            }
        }
    });
}
