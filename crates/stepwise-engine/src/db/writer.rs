//! The writer: one thread owns the read-write connection and runs every write, one after the
//! other, so that async code never blocks on SQLite's locks or fsyncs, and this process never
//! competes with itself for the write lock.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use stepwise_store::{Store, StoreError};
use tokio::sync::{oneshot, watch};

use crate::error::EngineError;

type Job = Box<dyn FnOnce(&mut Store) + Send>;

/// A handle to the writer thread. The thread ends when the last handle is dropped, after
/// finishing the writes already sent.
pub(crate) struct Writer {
    jobs: std::sync::mpsc::Sender<Job>,
    commits: Arc<AtomicU64>,
}

impl Writer {
    pub(crate) fn spawn(
        store: Store,
        changes: Arc<watch::Sender<u64>>,
    ) -> Result<Writer, EngineError> {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let commits = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&commits);
        std::thread::Builder::new()
            .name("stepwise-writer".into())
            .spawn(move || {
                let mut store = store;
                while let Ok(job) = queue.recv() {
                    // A panicking write must not take every later write down with it: its
                    // transaction rolls back when dropped and its caller sees the writer gone.
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut store)));
                    counted.store(store.commits(), Ordering::Relaxed);
                    changes.send_modify(|generation| *generation = generation.wrapping_add(1));
                }
            })
            .map_err(|source| EngineError::Io {
                path: "stepwise-writer thread".into(),
                source,
            })?;
        Ok(Writer { jobs, commits })
    }

    /// Runs `write` on the writer thread and returns its result.
    pub(crate) async fn write<T, F>(&self, write: F) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Box::new(move |store: &mut Store| {
                let _ = reply.send(write(store));
            }))
            .map_err(|_| EngineError::WriterStopped)?;
        Ok(answer.await.map_err(|_| EngineError::WriterStopped)??)
    }

    /// Transactions committed so far by this engine.
    pub(crate) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
}
