//! The writer: one thread of the engine's own owns the read-write connection, and every write
//! to the database happens on it, one after the other. The runs' drivers live on that same
//! thread (a single-threaded runtime), so a driver commits without handing its write to
//! another thread and waiting to be woken again; anyone else (a client sending a command,
//! starting a run) hands its write over and awaits it. So no async worker of the process that
//! embeds the engine ever waits on SQLite's locks or fsyncs, and the process never competes
//! with itself for the write lock.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

use stepwise_store::{Store, StoreError};
use tokio::runtime::Handle;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::DbFile;
use crate::error::EngineError;

/// How long each of the engine's runtimes (the writer's, the executors') gives blocking work
/// to finish when it stops.
pub(crate) const RUNTIME_STOP: std::time::Duration = std::time::Duration::from_millis(200);

pub(crate) struct Writer {
    /// Locked on the writer thread, and only briefly by the change watch's thread (see
    /// `others_commits_version`).
    store: Mutex<Store>,
    runtime: Handle,
    thread: ThreadId,
    changes: Arc<watch::Sender<u64>>,
    commits: AtomicU64,
    /// The server process of the writer's PostgreSQL connection (0 on SQLite, or before the
    /// first write): the notifications of its own commits name it.
    backend_pid: std::sync::atomic::AtomicU32,
    /// The file the store opened: every write first checks it is still the one at the path.
    file: Arc<DbFile>,
    /// The write-ahead log has been handed over (see `let_go`).
    let_go: AtomicBool,
    /// Before the first write, grow the write-ahead log so that durable commits do not (see
    /// `Store::grow_wal_ahead`); set at `FULL` only.
    grow_wal_first: AtomicBool,
    /// Sending (or dropping) it ends the thread's runtime, and so every task still on it.
    stop: Mutex<Option<oneshot::Sender<()>>>,
    /// Turns `true` once the thread has stopped its runtimes and is ending.
    exited: watch::Receiver<bool>,
}

impl Writer {
    /// Starts the writer thread with its runtime. Once that runtime has stopped (see
    /// [`Writer::stop`]), the thread calls `after_exit` (which stops the executor runtime).
    pub(crate) fn start(
        store: Store,
        changes: Arc<watch::Sender<u64>>,
        file: Arc<DbFile>,
        grow_wal_first: bool,
        after_exit: Box<dyn FnOnce() + Send>,
    ) -> Result<Arc<Writer>, EngineError> {
        let (started_tx, started) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let (exited_tx, exited) = watch::channel(false);
        std::thread::Builder::new()
            .name("stepwise-engine".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                match runtime {
                    Ok(runtime) => {
                        let thread = std::thread::current().id();
                        if started_tx
                            .send(Ok((runtime.handle().clone(), thread)))
                            .is_ok()
                        {
                            runtime.block_on(async {
                                let _ = stopped.await;
                            });
                        }
                        runtime.shutdown_timeout(RUNTIME_STOP);
                    }
                    Err(error) => {
                        let _ = started_tx.send(Err(error));
                    }
                }
                after_exit();
                exited_tx.send_replace(true);
            })
            .map_err(|source| EngineError::Io {
                path: "the stepwise-engine thread".into(),
                source,
            })?;
        let (runtime, thread) = started
            .recv()
            .map_err(|_| EngineError::WriterStopped)?
            .map_err(|source| EngineError::Io {
                path: "the stepwise-engine runtime".into(),
                source,
            })?;
        Ok(Arc::new(Writer {
            store: Mutex::new(store),
            runtime,
            thread,
            changes,
            backend_pid: std::sync::atomic::AtomicU32::new(0),
            commits: AtomicU64::new(0),
            file,
            let_go: AtomicBool::new(false),
            grow_wal_first: AtomicBool::new(grow_wal_first),
            stop: Mutex::new(Some(stop)),
            exited,
        }))
    }

    /// `PRAGMA data_version` of the writer's own connection, which moves when another
    /// connection commits (another process, or another engine) and never for this writer's own
    /// commits: how the change watch tells others' commits from this engine's, which the
    /// writer signals itself. Off the writer thread; waits while a write is under way.
    pub(crate) fn others_commits_version(&self) -> Option<i64> {
        let store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        store.data_version().ok()
    }

    /// The server process of the writer's PostgreSQL connection, once it has written.
    #[cfg_attr(
        not(feature = "postgres"),
        expect(dead_code, reason = "PostgreSQL only")
    )]
    pub(crate) fn backend_pid(&self) -> Option<u32> {
        Some(self.backend_pid.load(Ordering::Relaxed)).filter(|pid| *pid != 0)
    }

    /// Writes now. Only on the writer thread (the drivers live there); anyone else uses
    /// [`Writer::write`].
    pub(crate) fn write_here<T>(
        &self,
        write: impl FnOnce(&mut Store) -> Result<T, StoreError>,
    ) -> Result<T, EngineError> {
        debug_assert_eq!(
            std::thread::current().id(),
            self.thread,
            "a write off the writer thread would block an async worker"
        );
        // Never poisoned in practice (only this thread locks it); a panic mid-write leaves the
        // connection consistent, as SQLite rolls the transaction back.
        let mut store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        // Nothing is written to a file that is no longer the database's (another was moved
        // over it), nor tried on one this user may not write.
        if let Err(error) = self.file.check(&store) {
            self.let_go(&store);
            return Err(error.into());
        }
        store.check_writable()?;
        if self.grow_wal_first.swap(false, Ordering::Relaxed) {
            // Only saves time; a log that could not grow is grown by the commits instead.
            if let Err(error) = store.grow_wal_ahead() {
                tracing::debug!(%error, "could not grow the write-ahead log ahead");
            }
        }
        // Known before the commit, so that the notification of the commit is known as this
        // writer's own whenever it comes.
        self.backend_pid
            .store(store.backend_pid().unwrap_or(0), Ordering::Relaxed);
        let result = write(&mut store).map_err(|error| error.at(self.file.path()));
        self.commits.store(store.commits(), Ordering::Relaxed);
        drop(store);
        self.changes
            .send_modify(|generation| *generation = generation.wrapping_add(1));
        Ok(result?)
    }

    /// Once the file has been replaced: this engine's commits leave the write-ahead log, which
    /// the file now at the path would otherwise read as its own (see `Store::empty_wal`). Only
    /// on the writer thread.
    pub(crate) fn let_go_here(&self) {
        let store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        self.let_go(&store);
    }

    fn let_go(&self, store: &Store) {
        if self.let_go.swap(true, Ordering::AcqRel) {
            return;
        }
        store.keep_wal_on_close();
        if let Err(error) = store.empty_wal() {
            tracing::error!(%error, db = %self.file.path().display(), "could not empty the write-ahead log of the replaced database file");
        }
    }

    /// Runs `write` on the writer thread and returns its result.
    pub(crate) async fn write<T, F>(self: &Arc<Self>, write: F) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    {
        let writer = Arc::clone(self);
        self.runtime
            .spawn(async move { writer.write_here(write) })
            .await
            .map_err(|_| EngineError::WriterStopped)?
    }

    /// Runs a task on the writer thread (drivers, and the engine's background tasks).
    pub(crate) fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime.spawn(task)
    }

    /// Ends the thread's runtime (every task on it is dropped), then the thread.
    pub(crate) fn stop(&self) {
        if let Some(stop) = self.stop.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = stop.send(());
        }
    }

    /// Waits until the thread has stopped its runtimes (see [`Writer::start`]).
    pub(crate) async fn exited(&self) {
        let mut exited = self.exited.clone();
        let _ = exited.wait_for(|exited| *exited).await;
    }

    /// Transactions committed so far by this engine.
    pub(crate) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
}
