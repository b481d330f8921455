//! Read connections, pooled. In WAL mode a reader sees the last commit without waiting for the
//! writer, so listing runs or following a feed never queues behind a driver's fsync.

use std::sync::{Arc, Mutex};

use stepwise_store::Store;
use tokio::runtime::Handle;

use super::DbFile;
use crate::error::{DatabaseError, EngineError};

/// Idle connections kept for reuse; more are opened when needed and closed after.
const KEEP_IDLE: usize = 4;

/// How often a read is tried again while the database server is away.
const RETRY_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

pub(crate) struct Readers {
    file: Arc<DbFile>,
    /// Where reads run: the engine's executor runtime's blocking threads.
    exec: Handle,
    idle: Mutex<Vec<Store>>,
}

impl Readers {
    pub(crate) fn new(file: Arc<DbFile>, exec: Handle) -> Readers {
        Readers {
            file,
            exec,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `read` with a read connection on a blocking thread, in one read transaction (all it
    /// reads is from the same commit). On a database server that went away (restarted, out of
    /// reach), the read is tried again every [`RETRY_EVERY`] until it answers, for up to
    /// [`super::OUTAGE_PATIENCE`]: a read changes nothing, and whoever waits on it (a feed, a
    /// driver, a client following a run) goes on where it was once the server is back.
    pub(crate) async fn read<T, F>(self: &Arc<Self>, read: F) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: Fn(&Store) -> Result<T, EngineError> + Send + Sync + 'static,
    {
        let read = Arc::new(read);
        let began = std::time::Instant::now();
        let mut warned = false;
        loop {
            match self.read_once(Arc::clone(&read)).await {
                Err(EngineError::Database(error))
                    if error.is_server_gone() && began.elapsed() < super::OUTAGE_PATIENCE =>
                {
                    if !warned {
                        warned = true;
                        tracing::warn!(%error, "the database server does not answer; waiting for it");
                    }
                    tokio::time::sleep(RETRY_EVERY).await;
                }
                done => return done,
            }
        }
    }

    async fn read_once<T, F>(self: &Arc<Self>, read: Arc<F>) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: Fn(&Store) -> Result<T, EngineError> + Send + Sync + 'static,
    {
        let readers = Arc::clone(self);
        self.exec
            .spawn_blocking(move || {
                let store = readers.take()?;
                let result = store.snapshot(|store| read(store));
                readers.give_back(store);
                // A failure SQLite reports names the database it happened in.
                result.map_err(|error| match error {
                    EngineError::Database(DatabaseError(error)) => {
                        EngineError::from(error.at(readers.file.path()))
                    }
                    other => other,
                })
            })
            .await
            .map_err(|e| {
                if e.is_cancelled() {
                    EngineError::ShutDown
                } else {
                    EngineError::Internal(format!("a database read stopped: {e}"))
                }
            })?
    }

    /// A connection to the file the engine opened, never to one that has taken its place
    /// (what it read would not be what the engine writes).
    fn take(&self) -> Result<Store, EngineError> {
        if self.file.is_replaced() {
            self.let_go_of_all();
            return Err(self.file.error().into());
        }
        let pooled = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop();
        let store = match pooled {
            Some(store) => store,
            None => self.file.open_reader()?,
        };
        if let Err(error) = self.file.check(&store) {
            store.keep_wal_on_close();
            self.let_go_of_all();
            return Err(error.into());
        }
        Ok(store)
    }

    fn give_back(&self, store: Store) {
        if self.file.is_replaced() {
            store.keep_wal_on_close();
            return;
        }
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if idle.len() < KEEP_IDLE {
            idle.push(store);
        }
    }

    /// Closes the idle connections of a replaced file without touching its write-ahead log.
    fn let_go_of_all(&self) {
        let idle = std::mem::take(
            &mut *self
                .idle
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        for store in idle {
            store.keep_wal_on_close();
        }
    }
}
