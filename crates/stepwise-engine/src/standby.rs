//! Making sure a run is driven while someone waits on it: by a driver in this process, by the
//! process that holds the run, or, when nobody holds it (it stopped, or died), by a driver
//! started here. For a run another process holds, one thread per run stands by on its lock and
//! drives the run here the moment the holder lets go or dies (the kernel releases the lock of
//! a SIGKILLed process), without polling.

use stepwise_core::ids::RunId;
use tokio::sync::watch;

use crate::engine::{Engine, RunHandle};
use crate::error::EngineError;
use crate::lock::RunLock;

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
    pub(crate) fn new(engine: &Engine, run_id: &RunId) -> Standby {
        Standby {
            run_id: run_id.clone(),
            own: None,
            local: None,
            drivers: engine.watch_drivers(),
        }
    }

    /// Makes sure somebody drives the run now: wakes this process's driver to read its inbox,
    /// or starts one if nobody holds the run, or else stands by on the lock of the process
    /// that holds it.
    pub(crate) fn ensure_driven(&mut self, engine: &Engine) -> Result<(), EngineError> {
        self.drivers.borrow_and_update();
        if self.own.as_ref().is_some_and(|own| !own.is_finished()) {
            engine.nudge(&self.run_id);
            return Ok(());
        }
        if let Some(stopped) = engine.local_driver(&self.run_id) {
            engine.nudge(&self.run_id);
            self.local = Some(stopped);
            return Ok(());
        }
        match RunLock::try_acquire(&engine.inner.db.lock_dir, &self.run_id)? {
            Ok(lock) => self.own = Some(engine.spawn_driver(&self.run_id, lock)),
            Err(_holder) => engine.stand_by(&self.run_id)?,
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
                match ended {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(error)) => Err(error),
                    Err(join) => Err(EngineError::Internal(format!(
                        "the driver of a run stopped: {join}"
                    ))),
                }
            }
            Change::LocalStopped => {
                self.local = None;
                Ok(())
            }
            Change::Drivers => Ok(()),
        }
    }
}

impl Engine {
    /// Stands by for a run another process holds: a thread waits for its lock and, once it has
    /// it, drives the run here (a driver of a finished run stops at once). One such thread per
    /// run and engine, however many wait on the run.
    pub(crate) fn stand_by(&self, run_id: &RunId) -> Result<(), EngineError> {
        if !self.start_standing_by(run_id) {
            return Ok(());
        }
        let engine = self.clone();
        let lock_dir = self.inner.db.lock_dir.clone();
        let owned = run_id.clone();
        let spawned = std::thread::Builder::new()
            .name("stepwise-standby".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let lock = RunLock::wait(&lock_dir, &owned);
                engine.stop_standing_by(&owned);
                match lock {
                    Ok(lock) => {
                        // The driver runs on the engine's own thread; waiters follow it there.
                        drop(engine.spawn_driver(&owned, lock));
                        tracing::debug!(run_id = %owned, "took over a run its holder let go of");
                    }
                    Err(error) => {
                        tracing::warn!(%error, run_id = %owned, "cannot stand by for a run");
                    }
                }
            });
        match spawned {
            Ok(_) => Ok(()),
            Err(source) => {
                self.stop_standing_by(run_id);
                Err(EngineError::Io {
                    path: "a thread to stand by for a run's lock".into(),
                    source,
                })
            }
        }
    }
}
