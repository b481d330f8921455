//! Holding runs of a PostgreSQL database: a hold is a session-level advisory lock on the
//! server (see the store's `postgres/holds.rs`), so it spans machines, and the server lets go
//! of it the moment the holder's connection ends: a process killed, a machine gone.
//!
//! One thread per engine owns the connection every hold of the engine is taken on, and
//! answers requests for it. A hold taken twice on one connection would be granted twice, so
//! the thread keeps the runs this engine holds and refuses a second hold of one: one driver
//! per run, as with lock files. Each hold carries a token, so that a hold let go of late (by
//! a driver stopping after its hold was lost and the run taken anew) never releases its
//! successor.
//!
//! While it holds anything, the thread asks the server every second whether the connection
//! still answers. When it does not, every hold is gone (the server may hand the runs to
//! another process): the runs are listed as lost, and the engine stops their drivers, recording
//! nothing (see `lifetime::stop_drivers_of_lost_holds`). The next hold is taken on a new
//! connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use stepwise_core::ids::RunId;
use stepwise_store::{Store, StoreError};
use tokio::sync::watch;

use crate::db::DbFile;
use crate::error::EngineError;

/// How often the holding connection is asked whether it still answers.
const HEALTH_EVERY: Duration = Duration::from_secs(1);

enum Request {
    Take {
        run_id: RunId,
        now_ms: i64,
        reply: SyncSender<Result<Result<Taken, String>, StoreError>>,
    },
    Release {
        run_id: RunId,
        token: u64,
    },
}

/// A hold the thread took: its token, and the flag raised when it is lost.
type Taken = (u64, Arc<AtomicBool>);

/// The engine's holds on a PostgreSQL database.
pub(crate) struct SharedHolds {
    requests: Mutex<mpsc::Sender<Request>>,
    /// What this engine's holds say of it: `pid 4242 on buildbox`.
    me: String,
    /// Runs whose holds were lost, not yet told to their drivers.
    lost: Mutex<Vec<RunId>>,
    /// Moves whenever holds are lost.
    lost_signal: watch::Sender<u64>,
}

/// One held run; dropping it lets go of the hold.
#[derive(Debug)]
pub(crate) struct Hold {
    run_id: RunId,
    token: u64,
    /// Raised when the connection the hold was on is gone: whoever has it must not drive
    /// the run (another process may have taken it).
    lost: Arc<AtomicBool>,
    holds: Weak<SharedHolds>,
}

impl Hold {
    /// Whether the hold was lost since it was taken.
    pub(crate) fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let Some(holds) = self.holds.upgrade() {
            holds.send(Request::Release {
                run_id: self.run_id.clone(),
                token: self.token,
            });
        }
    }
}

impl SharedHolds {
    /// Starts the holding thread, on a connection of its own to the database `file` opens;
    /// its holds say they are this process's on `host`.
    pub(crate) fn start(file: &Arc<DbFile>, host: &str) -> Result<Arc<SharedHolds>, EngineError> {
        let store = file.open_reader()?;
        let (requests, received) = mpsc::channel();
        let holds = Arc::new(SharedHolds {
            requests: Mutex::new(requests),
            me: format!("pid {} on {host}", std::process::id()),
            lost: Mutex::new(Vec::new()),
            lost_signal: watch::channel(0).0,
        });
        let weak = Arc::downgrade(&holds);
        std::thread::Builder::new()
            .name("stepwise-holds".into())
            .spawn(move || serve(store, &received, &weak))
            .map_err(|source| EngineError::Io {
                path: "the stepwise-holds thread".into(),
                source,
            })?;
        Ok(holds)
    }

    fn send(&self, request: Request) {
        let _ = self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(request);
    }

    /// Takes the hold of `run_id` if nobody (this engine included) holds it; else who does.
    /// Blocks for a round trip to the server.
    pub(crate) fn try_take(
        self: &Arc<Self>,
        run_id: &RunId,
        now_ms: i64,
    ) -> Result<Result<Hold, String>, EngineError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.send(Request::Take {
            run_id: run_id.clone(),
            now_ms,
            reply,
        });
        let taken = answer.recv().map_err(|_| EngineError::WriterStopped)??;
        Ok(taken.map(|(token, lost)| Hold {
            run_id: run_id.clone(),
            token,
            lost,
            holds: Arc::downgrade(self),
        }))
    }

    /// What this engine's holds say of it.
    pub(crate) fn me(&self) -> &str {
        &self.me
    }

    /// Who holds `run_id`, asked on `store` (any connection to the database).
    pub(crate) fn holder(store: &Store, run_id: &RunId) -> Result<Option<String>, EngineError> {
        match store.as_postgres() {
            Some(store) => Ok(store.holder(run_id.as_str())?),
            None => Ok(None),
        }
    }

    /// Moves whenever holds are lost; [`SharedHolds::take_lost`] says which.
    pub(crate) fn watch_lost(&self) -> watch::Receiver<u64> {
        self.lost_signal.subscribe()
    }

    /// The runs whose holds were lost since the last call.
    pub(crate) fn take_lost(&self) -> Vec<RunId> {
        std::mem::take(&mut *self.lost.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn lose(&self, runs: Vec<RunId>) {
        if runs.is_empty() {
            return;
        }
        tracing::error!(
            runs = runs.len(),
            "lost the connection that holds this process's runs; their drivers stop, and the runs go to whoever takes them next"
        );
        self.lost
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(runs);
        self.lost_signal.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// The holding thread: answers requests, and checks the connection while it holds anything.
/// Ends when the engine's holds are dropped.
fn serve(store: Store, requests: &mpsc::Receiver<Request>, holds: &Weak<SharedHolds>) {
    let Some(me) = holds.upgrade().map(|holds| holds.me.clone()) else {
        return;
    };
    let Some(pg) = store.as_postgres() else {
        return;
    };
    let mut held: HashMap<RunId, Held> = HashMap::new();
    let mut next_token: u64 = 1;
    // Which connection the holds are on: a call that found the connection closed made a new
    // one, without them.
    let mut holding_on = pg.generation();
    let lose_all = |held: &mut HashMap<RunId, Held>| {
        let runs: Vec<RunId> = held
            .drain()
            .map(|(run_id, held)| {
                held.lost.store(true, Ordering::Release);
                run_id
            })
            .collect();
        if let Some(holds) = holds.upgrade() {
            holds.lose(runs);
        }
    };
    let check = |held: &mut HashMap<RunId, Held>, holding_on: u64| {
        if !held.is_empty() && pg.generation() != holding_on {
            lose_all(held);
        }
    };
    let mut last_health = Instant::now();
    loop {
        // However busy with requests, the connection is checked every second.
        if last_health.elapsed() >= HEALTH_EVERY {
            last_health = Instant::now();
            if !held.is_empty() && !pg.is_alive() {
                lose_all(&mut held);
            }
            check(&mut held, holding_on);
        }
        match requests.recv_timeout(HEALTH_EVERY.saturating_sub(last_health.elapsed())) {
            Ok(Request::Take {
                run_id,
                now_ms,
                reply,
            }) => {
                if held.contains_key(&run_id) {
                    let _ = reply.send(Ok(Err(me.clone())));
                    continue;
                }
                let taken = pg.try_hold(run_id.as_str(), &me, now_ms);
                // The connection went (and perhaps was made anew): whatever it held went with it.
                check(&mut held, holding_on);
                if taken.as_ref().is_ok_and(Result::is_ok) {
                    holding_on = pg.generation();
                }
                let answer = taken.map(|taken| {
                    taken.map(|()| {
                        let token = next_token;
                        next_token += 1;
                        let lost = Arc::new(AtomicBool::new(false));
                        held.insert(
                            run_id,
                            Held {
                                token,
                                lost: Arc::clone(&lost),
                            },
                        );
                        (token, lost)
                    })
                });
                let _ = reply.send(answer);
            }
            Ok(Request::Release { run_id, token }) => {
                if held.get(&run_id).is_some_and(|held| held.token == token) {
                    held.remove(&run_id);
                    if let Err(error) = pg.release_hold(run_id.as_str()) {
                        tracing::warn!(%error, %run_id, "could not let go of a run's hold");
                    }
                    check(&mut held, holding_on);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// A hold the thread keeps: its token, and the flag raised when it is lost.
struct Held {
    token: u64,
    lost: Arc<AtomicBool>,
}
