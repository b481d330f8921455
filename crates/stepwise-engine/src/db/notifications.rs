//! Knowing when a PostgreSQL database changed, whoever changed it and from whichever machine:
//! every write transaction of the store notifies a channel at its commit (see the store's
//! `postgres/listen.rs`), and a thread of the engine's listens on a connection of its own,
//! without polling. The engine's own commits are signalled by its writer already; their
//! notifications (named by the writer connection's server process) are let pass.
//!
//! When the connection is lost (the server restarts, the network drops), the thread connects
//! again, a second later and then every second, and raises the signal once it listens again:
//! whatever was committed meanwhile is read by sequence, as after any wake-up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use stepwise_store::PgTarget;
use tokio::sync::watch;

use super::changes::{WriterSlot, bump};

/// How long one wait for a notification lasts: how soon a stopping engine's thread ends.
const WAIT: Duration = Duration::from_secs(1);
/// How long after losing the connection it is made again.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// Starts the listening thread; it ends once `stopped` is raised or the engine is gone.
pub(super) fn spawn_listener(
    target: PgTarget,
    sender: Weak<watch::Sender<u64>>,
    stopped: Arc<AtomicBool>,
    writer: WriterSlot,
) {
    let spawned = std::thread::Builder::new()
        .name("stepwise-db-listen".into())
        .spawn(move || {
            let mut failing = false;
            while !stopped.load(Ordering::Acquire) {
                let mut listener = match target.listen() {
                    Ok(listener) => listener,
                    Err(error) => {
                        if !failing {
                            tracing::warn!(%error, "cannot listen for changes to the database; trying again every second");
                            failing = true;
                        }
                        std::thread::sleep(RECONNECT_AFTER);
                        continue;
                    }
                };
                if failing {
                    tracing::info!(database = %target.label(), "listening for changes again");
                    failing = false;
                }
                // What was committed while nobody listened is read now.
                let Some(strong) = sender.upgrade() else { return };
                bump(&strong);
                drop(strong);
                while !stopped.load(Ordering::Acquire) {
                    match listener.wait(WAIT) {
                        Ok(senders) if senders.is_empty() => {}
                        Ok(senders) => {
                            let own = writer
                                .get()
                                .and_then(Weak::upgrade)
                                .and_then(|writer| writer.backend_pid());
                            if senders.iter().any(|pid| Some(*pid) != own) {
                                let Some(strong) = sender.upgrade() else { return };
                                bump(&strong);
                            }
                        }
                        Err(error) => {
                            tracing::warn!(%error, "lost the connection that listens for changes; connecting again");
                            failing = true;
                            std::thread::sleep(RECONNECT_AFTER);
                            break;
                        }
                    }
                }
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start the database listening thread; live updates from other processes will be missed");
    }
}
