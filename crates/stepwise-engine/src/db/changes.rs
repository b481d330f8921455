//! Knowing when the database changed, whoever changed it.
//!
//! This process's writer signals its own commits as it makes them. For everyone else's, every
//! commit in WAL mode writes to the `-wal` file beside the database, so a filesystem watch on
//! that file (inotify on Linux, through `notify`) says that a commit is being written, the
//! moment any process writes one, without polling: an idle engine sleeps in the kernel.
//!
//! A write to the WAL comes before the commit is visible (the fsync and the WAL index update
//! follow it, and neither makes a filesystem event), so a write only starts a watch:
//! `PRAGMA data_version` on a connection of its own is compared 1, 2, 4, … ms after the writes
//! stop, then every second for half a minute, and the signal is raised whenever it moves, i.e.
//! when a commit can be read. However slow the disk, a commit is seen within a second of
//! becoming visible; an idle engine does nothing. Where no filesystem watch can be had (an exotic
//! filesystem, inotify limits reached), `data_version` is compared every 50 ms instead.
//!
//! The signal is a generation counter in a `watch` channel: waiters see that it moved and go
//! and read what is new; many commits while they read coalesce into one wake-up.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use stepwise_store::Store;
use tokio::sync::watch;

use super::DbFile;

/// How long the watch lets a burst of writes to the WAL gather before it reads on.
const COALESCE: Duration = Duration::from_millis(1);
/// The first look after writes to the WAL; each later one waits twice as long, up to
/// `SLOWEST_LOOK`.
const FIRST_LOOK: Duration = Duration::from_millis(1);
const SLOWEST_LOOK: Duration = Duration::from_secs(1);
/// After the writes stop, looks go on this long (a commit may become visible that late on a
/// slow or overloaded disk).
const LOOK_FOR: Duration = Duration::from_secs(30);
/// How often the fallback compares `data_version`.
const FALLBACK_POLL: Duration = Duration::from_millis(50);

pub(crate) struct Changes {
    sender: Arc<watch::Sender<u64>>,
    /// Kept alive until the engine stops: dropping it stops the watch (and its thread, and with
    /// it the looker's).
    watcher: Mutex<Option<RecommendedWatcher>>,
    /// Raised to stop the looker where there is no watch (it polls).
    stopped: Arc<AtomicBool>,
}

impl Changes {
    pub(crate) fn start(db_path: &Path, file: Arc<DbFile>) -> Changes {
        let (sender, _) = watch::channel(0u64);
        let sender = Arc::new(sender);
        let stopped = Arc::new(AtomicBool::new(false));
        let watcher = match watch_wal(db_path, &sender, &file, &stopped) {
            Ok(watcher) => Some(watcher),
            Err(error) => {
                tracing::warn!(
                    %error,
                    db = %db_path.display(),
                    "cannot watch the database for changes; polling it instead"
                );
                spawn_looker(
                    db_path,
                    Arc::downgrade(&sender),
                    file,
                    None,
                    Arc::clone(&stopped),
                );
                None
            }
        };
        Changes {
            sender,
            watcher: Mutex::new(watcher),
            stopped,
        }
    }

    /// Stops watching: the watch's thread and the looker end.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        drop(
            self.watcher
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
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
/// create again) and tells the looker thread of every event about the `-wal` file, or about
/// the database's own name (another file moved over it).
fn watch_wal(
    db_path: &Path,
    sender: &Arc<watch::Sender<u64>>,
    file: &Arc<DbFile>,
    stopped: &Arc<AtomicBool>,
) -> notify::Result<RecommendedWatcher> {
    let canonical = db_path
        .canonicalize()
        .unwrap_or_else(|_| db_path.to_path_buf());
    let dir = canonical
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| ".".into());
    let db_name: OsString = canonical.file_name().unwrap_or_default().to_os_string();
    let mut wal_name = db_name.clone();
    wal_name.push("-wal");
    let (hints, hinted) = std::sync::mpsc::channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let relevant = match event {
            // Events may have been lost (the queue overflowed): look anyway.
            Ok(event) if event.need_rescan() => true,
            Ok(event) => event.paths.iter().any(|p| {
                p.file_name() == Some(wal_name.as_os_str())
                    || p.file_name() == Some(db_name.as_os_str())
            }),
            Err(_) => true,
        };
        if relevant {
            let _ = hints.send(());
            // One commit is several writes, each an event. Pausing here lets the kernel fold
            // the rest of the burst into one queued event, so that a commit costs this thread
            // a wake-up or two instead of one per page.
            std::thread::sleep(COALESCE);
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    spawn_looker(
        &canonical,
        Arc::downgrade(sender),
        Arc::clone(file),
        Some(hinted),
        Arc::clone(stopped),
    );
    Ok(watcher)
}

/// The thread that compares `data_version` and raises the signal when it moves: after each
/// hint of a write (with `hints`), or every `FALLBACK_POLL` (without). It also looks whether
/// the database file is still the one the engine opened. It ends with the engine.
fn spawn_looker(
    db_path: &Path,
    sender: Weak<watch::Sender<u64>>,
    file: Arc<DbFile>,
    hints: Option<Receiver<()>>,
    stopped: Arc<AtomicBool>,
) {
    let path: PathBuf = db_path.to_path_buf();
    let spawned = std::thread::Builder::new()
        .name("stepwise-db-watch".into())
        .spawn(move || {
            let store = match Store::open_reader(&path) {
                Ok(store) => store,
                Err(error) => {
                    tracing::error!(%error, "cannot watch the database; live updates from other processes will be missed");
                    return;
                }
            };
            let mut looker = Looker {
                store,
                sender,
                file,
                seen: None,
                replaced: false,
                stopped,
            };
            looker.look();
            match hints {
                Some(hints) => looker.follow_hints(&hints),
                None => looker.poll(),
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start the database watch thread; live updates from other processes will be missed");
    }
}

struct Looker {
    store: Store,
    sender: Weak<watch::Sender<u64>>,
    file: Arc<DbFile>,
    seen: Option<i64>,
    /// The file was found replaced (and the waiters woken to find out).
    replaced: bool,
    /// The engine stops: so does the looker.
    stopped: Arc<AtomicBool>,
}

impl Looker {
    /// Compares `data_version` with what was seen and raises the signal if it moved. `false`
    /// once the engine is gone.
    fn look(&mut self) -> bool {
        if self.stopped.load(Ordering::Acquire) {
            return false;
        }
        let Some(sender) = self.sender.upgrade() else {
            return false;
        };
        if self.replaced {
            return true;
        }
        if self.file.look() {
            // Everyone waiting wakes, reads, and learns that the file was replaced.
            self.replaced = true;
            self.store.keep_wal_on_close();
            bump(&sender);
            return true;
        }
        let now = self.store.data_version().ok();
        if now != self.seen {
            self.seen = now;
            bump(&sender);
        }
        true
    }

    fn follow_hints(&mut self, hints: &Receiver<()>) {
        let mut next_look: Option<Instant> = None;
        let mut step = FIRST_LOOK;
        let mut last_hint = Instant::now();
        loop {
            let hinted = match next_look {
                None => hints.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(at) => hints.recv_timeout(at.saturating_duration_since(Instant::now())),
            };
            match hinted {
                // Writes are landing: look soon, and keep looking for a while after they stop.
                Ok(()) => {
                    last_hint = Instant::now();
                    step = FIRST_LOOK;
                    next_look = Some(match next_look {
                        Some(at) => at.min(last_hint + FIRST_LOOK),
                        None => last_hint + FIRST_LOOK,
                    });
                }
                Err(RecvTimeoutError::Timeout) => {
                    if !self.look() {
                        return;
                    }
                    step = (step * 2).min(SLOWEST_LOOK);
                    next_look = (last_hint.elapsed() < LOOK_FOR).then(|| Instant::now() + step);
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    fn poll(&mut self) {
        loop {
            std::thread::sleep(FALLBACK_POLL);
            if !self.look() {
                return;
            }
        }
    }
}
