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
//!
//! The engine's own commits write to the WAL too, and wake the watch. So that they do not raise
//! the signal a second time (every feed and list would read again for nothing), the looker
//! compares the `data_version` of the writer's own connection once there is one: it moves only
//! for other connections' commits.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use stepwise_store::Store;
use tokio::sync::watch;

use super::DbFile;
use super::writer::Writer;

/// The engine's writer, once it has started: its connection tells others' commits apart.
pub(super) type WriterSlot = Arc<OnceLock<Weak<Writer>>>;

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
    writer: WriterSlot,
}

impl Changes {
    pub(crate) fn start(db_path: &Path, file: Arc<DbFile>) -> Changes {
        let (sender, _) = watch::channel(0u64);
        let sender = Arc::new(sender);
        let stopped = Arc::new(AtomicBool::new(false));
        let writer = WriterSlot::default();
        #[cfg(feature = "postgres")]
        if let Some(target) = file.shared() {
            super::notifications::spawn_listener(
                target.clone(),
                Arc::downgrade(&sender),
                Arc::clone(&stopped),
                Arc::clone(&writer),
            );
            return Changes {
                sender,
                watcher: Mutex::new(None),
                stopped,
                writer,
            };
        }
        let watcher = match watch_wal(db_path, &sender, &file, &stopped, &writer) {
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
                    Arc::clone(&writer),
                );
                None
            }
        };
        Changes {
            sender,
            watcher: Mutex::new(watcher),
            stopped,
            writer,
        }
    }

    /// From now on, tells the engine's own commits (which `writer` signals itself) from
    /// others' by the writer's connection.
    pub(crate) fn tell_own_commits_by(&self, writer: &Arc<Writer>) {
        let _ = self.writer.set(Arc::downgrade(writer));
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

pub(super) fn bump(sender: &watch::Sender<u64>) {
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
    writer: &WriterSlot,
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
        Arc::clone(writer),
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
    writer: WriterSlot,
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
                writer,
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
    /// The last `data_version` seen, and whether it was the writer's connection's.
    seen: Option<(bool, i64)>,
    /// The file was found replaced (and the waiters woken to find out).
    replaced: bool,
    /// The engine stops: so does the looker.
    stopped: Arc<AtomicBool>,
    writer: WriterSlot,
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
        let now = match self.writer.get().and_then(Weak::upgrade) {
            Some(writer) => writer.others_commits_version().map(|v| (true, v)),
            None => self.store.data_version().ok().map(|v| (false, v)),
        };
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use stepwise_core::ids::RunId;
    use stepwise_store::NewRun;

    use super::super::Db;
    use crate::config::Durability;

    fn new_run(id: &str) -> NewRun {
        NewRun {
            run_id: id.into(),
            workflow_name: "w".into(),
            workflow_path: "w.yaml".into(),
            workflow_hash: "sha256:0".into(),
            workspace: "/ws".into(),
            trigger: "test".into(),
            status: "running".into(),
            created_at_ms: 0,
            parent: None,
            cause: None,
        }
    }

    /// Waits for the signal to move; `false` if it did not within `patience`.
    async fn moved(changes: &mut tokio::sync::watch::Receiver<u64>, patience: Duration) -> bool {
        tokio::time::timeout(patience, changes.changed())
            .await
            .is_ok()
    }

    #[test]
    fn own_commits_are_signalled_once_and_others_are_seen() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stepwise.db");
        let db = Db::open(
            &path,
            None,
            Durability::Normal,
            "test-host",
            runtime.handle().clone(),
            Box::new(|| {}),
        )
        .unwrap();
        runtime.block_on(async {
            let mut changes = db.watch_changes();
            // Let the first look settle.
            tokio::time::sleep(Duration::from_millis(100)).await;
            changes.mark_unchanged();

            // This engine's commit: the writer signals it, and the watch (which sees its writes
            // to the WAL too, and looks for a second afterwards) does not signal it again.
            db.write(|store| store.create_run(&new_run("own"), &[]))
                .await
                .unwrap();
            assert!(moved(&mut changes, Duration::from_secs(1)).await);
            changes.mark_unchanged();
            assert!(
                !moved(&mut changes, Duration::from_millis(300)).await,
                "an own commit was signalled twice"
            );

            // Another connection's commit (another process's, as far as SQLite can tell).
            let other = stepwise_store::Store::open(&path, stepwise_store::Durability::Normal);
            let mut other = other.unwrap();
            other.create_run(&new_run("other"), &[]).unwrap();
            assert!(moved(&mut changes, Duration::from_secs(5)).await);
            let seen = db
                .read(|store| Ok(store.run(&RunId::from("other"))?.is_some()))
                .await
                .unwrap();
            assert!(seen);
        });
        db.changes.stop();
    }
}
