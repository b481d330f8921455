//! The drivers this process runs, by run: the channel to each, a signal for when it stops, and
//! how many there are (what `Engine::idle` and the shutdown wait for).

use std::collections::HashMap;
use std::sync::Mutex;

use stepwise_core::ids::RunId;
use tokio::sync::{mpsc, watch};

use crate::messages::Message;

/// A driver running in this process.
struct LiveDriver {
    id: u64,
    tx: mpsc::UnboundedSender<Message>,
    stopped: watch::Receiver<bool>,
}

pub(crate) struct LiveDrivers {
    live: Mutex<HashMap<RunId, LiveDriver>>,
    /// How many drivers this process runs.
    count: watch::Sender<usize>,
    next_id: std::sync::atomic::AtomicU64,
}

/// A registered driver's way out: dropping it unregisters the driver and tells waiters that it
/// stopped (however its task ended, panics included).
pub(crate) struct Registration {
    run_id: RunId,
    id: u64,
    stopped: watch::Sender<bool>,
}

impl LiveDrivers {
    pub(crate) fn new() -> LiveDrivers {
        LiveDrivers {
            live: Mutex::new(HashMap::new()),
            count: watch::channel(0).0,
            next_id: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// Registers the driver of a run, replacing any entry of a driver that is stopping.
    pub(crate) fn register(
        &self,
        run_id: &RunId,
        tx: mpsc::UnboundedSender<Message>,
    ) -> Registration {
        let (stopped_tx, stopped) = watch::channel(false);
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut live = self.lock();
        live.insert(run_id.clone(), LiveDriver { id, tx, stopped });
        self.count.send_replace(live.len());
        Registration {
            run_id: run_id.clone(),
            id,
            stopped: stopped_tx,
        }
    }

    /// Unregisters a driver whose task ended.
    pub(crate) fn unregister(&self, registration: &Registration) {
        {
            let mut live = self.lock();
            // Only this driver's entry: a new driver for the run may have registered already.
            if live
                .get(&registration.run_id)
                .is_some_and(|d| d.id == registration.id)
            {
                live.remove(&registration.run_id);
            }
            self.count.send_replace(live.len());
        }
        registration.stopped.send_replace(true);
    }

    /// Whether this process drives the run now.
    pub(crate) fn drives(&self, run_id: &RunId) -> bool {
        self.lock().contains_key(run_id)
    }

    pub(crate) fn drives_anything(&self) -> bool {
        !self.lock().is_empty()
    }

    /// The channel to this process's driver of the run, if there is one.
    pub(crate) fn channel(&self, run_id: &RunId) -> Option<mpsc::UnboundedSender<Message>> {
        self.lock().get(run_id).map(|driver| driver.tx.clone())
    }

    /// Every driver's channel.
    pub(crate) fn channels(&self) -> Vec<mpsc::UnboundedSender<Message>> {
        self.lock()
            .values()
            .map(|driver| driver.tx.clone())
            .collect()
    }

    /// Wakes this process's driver of the run to read its inbox; `false` when there is none.
    pub(crate) fn nudge(&self, run_id: &RunId) -> bool {
        self.lock()
            .get(run_id)
            .is_some_and(|driver| driver.tx.send(Message::InboxChanged).is_ok())
    }

    /// If this process drives the run: a receiver that turns `true` when that driver stops.
    pub(crate) fn stopped(&self, run_id: &RunId) -> Option<watch::Receiver<bool>> {
        self.lock().get(run_id).map(|driver| driver.stopped.clone())
    }

    /// Moves whenever a driver starts or stops; holds how many run.
    pub(crate) fn watch_count(&self) -> watch::Receiver<usize> {
        self.count.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RunId, LiveDriver>> {
        // A panic while holding this lock cannot leave the map half-changed.
        self.live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
