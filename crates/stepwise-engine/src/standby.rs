//! Making sure a run is driven while someone waits on it: by a driver in this process, by the
//! process that holds the run, or, when nobody holds it (it stopped, or died), by a driver
//! started here. A thread stands by on the run's lock, so a holder that is SIGKILLed is
//! replaced the moment the kernel releases its lock, without polling.

use tokio::sync::{oneshot, watch};

use crate::engine::{Engine, RunHandle};
use crate::error::EngineError;
use crate::lock::RunLock;

pub(crate) struct Standby {
    run_id: String,
    /// A thread blocked on the run's lock; it hands the lock over when it gets it.
    waiter: Option<oneshot::Receiver<Result<RunLock, EngineError>>>,
    /// The driver this standby started, to learn how it ended.
    own: Option<RunHandle>,
    /// A driver of this process that someone else started.
    local: Option<watch::Receiver<bool>>,
}

impl Standby {
    pub(crate) fn new(run_id: &str) -> Standby {
        Standby {
            run_id: run_id.to_string(),
            waiter: None,
            own: None,
            local: None,
        }
    }

    /// Makes sure somebody drives the run now: wakes this process's driver to read its inbox,
    /// or starts one if nobody holds the run, or else stands by on the lock of the process
    /// that holds it.
    pub(crate) fn ensure_driven(&mut self, engine: &Engine) -> Result<(), EngineError> {
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
            Err(_holder) => {
                if self.waiter.is_none() {
                    self.waiter = Some(wait_for_lock(engine, &self.run_id));
                }
            }
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

    /// Waits until who drives the run changes: the lock came free (a driver is started here
    /// with it), or a driver of this process stopped. An error is the failure of a driver this
    /// standby started. Never returns while nothing changes.
    pub(crate) async fn changed(&mut self, engine: &Engine) -> Result<(), EngineError> {
        enum Change {
            Lock(Result<Result<RunLock, EngineError>, oneshot::error::RecvError>),
            OwnEnded(
                Result<Result<stepwise_core::run::RunStatus, EngineError>, tokio::task::JoinError>,
            ),
            LocalStopped,
        }
        let change = {
            let Standby {
                waiter, own, local, ..
            } = self;
            let lock = async {
                match waiter.as_mut() {
                    Some(waiter) => waiter.await,
                    None => std::future::pending().await,
                }
            };
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
                lock = lock => Change::Lock(lock),
                ended = own_ended => Change::OwnEnded(ended),
                () = local_stopped => Change::LocalStopped,
            }
        };
        match change {
            Change::Lock(lock) => {
                self.waiter = None;
                match lock {
                    Ok(Ok(lock)) => {
                        self.own = Some(engine.spawn_driver(&self.run_id, lock));
                        Ok(())
                    }
                    Ok(Err(error)) => Err(error),
                    // The waiting thread could not be started or died: try again next time.
                    Err(_) => Ok(()),
                }
            }
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
        }
    }

    /// Whether `changed` has anything to wait for.
    pub(crate) fn is_watching(&self) -> bool {
        self.waiter.is_some() || self.own.is_some() || self.local.is_some()
    }
}

/// Takes the run's lock on a thread of its own, as soon as its holder lets go or dies. If
/// nobody wants the lock by then, it is released again at once.
fn wait_for_lock(engine: &Engine, run_id: &str) -> oneshot::Receiver<Result<RunLock, EngineError>> {
    let (tx, rx) = oneshot::channel();
    let lock_dir = engine.inner.db.lock_dir.clone();
    let run_id = run_id.to_string();
    let spawned = std::thread::Builder::new()
        .name("stepwise-standby".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let _ = tx.send(RunLock::wait(&lock_dir, &run_id));
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "cannot start a thread to stand by for a run's lock");
    }
    rx
}
