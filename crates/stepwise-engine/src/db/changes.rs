//! Knowing when the database changed, whoever changed it.
//!
//! Every commit in WAL mode writes to the `-wal` file beside the database, so a filesystem
//! watch on that file (inotify on Linux, through `notify`) says "something was committed" the
//! moment any process commits, with no polling: an idle follower sleeps in the kernel. This
//! process's own writer signals directly as well. Where no watch can be had (an exotic
//! filesystem, inotify limits reached), a thread compares `PRAGMA data_version` ten times a
//! second instead.
//!
//! The signal is a generation counter in a `watch` channel: waiters see that it moved and go
//! and read what is new; many commits while they read coalesce into one wake-up.

use std::ffi::OsString;
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use stepwise_store::Store;
use tokio::sync::watch;

/// How long the watch lets a burst of writes to the WAL gather before it looks again.
const COALESCE: Duration = Duration::from_millis(2);

/// How often the fallback compares `data_version`.
const FALLBACK_POLL: Duration = Duration::from_millis(100);

pub(crate) struct Changes {
    sender: Arc<watch::Sender<u64>>,
    /// Kept alive for as long as the engine: dropping it stops the watch.
    _watcher: Option<RecommendedWatcher>,
}

impl Changes {
    pub(crate) fn start(db_path: &Path) -> Changes {
        let (sender, _) = watch::channel(0u64);
        let sender = Arc::new(sender);
        let watcher = match watch_wal(db_path, &sender) {
            Ok(watcher) => Some(watcher),
            Err(error) => {
                tracing::warn!(
                    %error,
                    db = %db_path.display(),
                    "cannot watch the database for changes; polling it instead"
                );
                poll_data_version(db_path, Arc::downgrade(&sender));
                None
            }
        };
        Changes {
            sender,
            _watcher: watcher,
        }
    }

    /// For the writer, which signals its own commits at once.
    pub(crate) fn sender(&self) -> Arc<watch::Sender<u64>> {
        Arc::clone(&self.sender)
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.sender.subscribe()
    }
}

fn bump(sender: &watch::Sender<u64>) {
    sender.send_modify(|generation| *generation = generation.wrapping_add(1));
}

/// Watches the database's directory (not the `-wal` file itself, which SQLite may delete and
/// create again) and signals every event about the `-wal` file.
fn watch_wal(
    db_path: &Path,
    sender: &Arc<watch::Sender<u64>>,
) -> notify::Result<RecommendedWatcher> {
    let canonical = db_path
        .canonicalize()
        .unwrap_or_else(|_| db_path.to_path_buf());
    let dir = canonical
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| ".".into());
    let mut wal_name: OsString = canonical.file_name().unwrap_or_default().to_os_string();
    wal_name.push("-wal");
    let sender = Arc::downgrade(sender);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Some(sender) = sender.upgrade() else {
            return;
        };
        match event {
            Ok(event) => {
                if event
                    .paths
                    .iter()
                    .any(|p| p.file_name() == Some(wal_name.as_os_str()))
                {
                    bump(&sender);
                    // One commit is several writes, each an event. Pausing here lets the
                    // kernel fold the rest of the burst into one queued event, so a commit
                    // costs this thread a wake-up or two instead of one per page.
                    std::thread::sleep(COALESCE);
                }
            }
            // Events may have been lost (queue overflow): wake everyone to look again.
            Err(_) => bump(&sender),
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

fn poll_data_version(db_path: &Path, sender: Weak<watch::Sender<u64>>) {
    let path = db_path.to_path_buf();
    let spawned = std::thread::Builder::new()
        .name("stepwise-db-poll".into())
        .spawn(move || {
            let Ok(store) = Store::open_reader(&path) else {
                return;
            };
            let mut seen = store.data_version().ok();
            loop {
                std::thread::sleep(FALLBACK_POLL);
                let Some(sender) = sender.upgrade() else {
                    return;
                };
                let now = store.data_version().ok();
                if now != seen {
                    seen = now;
                    bump(&sender);
                }
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start the database poll thread; live updates from other processes will be missed");
    }
}
