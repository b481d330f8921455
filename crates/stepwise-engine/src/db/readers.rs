//! Read connections, pooled. In WAL mode a reader sees the last commit without waiting for the
//! writer, so listing runs or following a feed never queues behind a driver's fsync.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use stepwise_store::Store;

use crate::error::EngineError;

/// Idle connections kept for reuse; more are opened when needed and closed after.
const KEEP_IDLE: usize = 4;

pub(crate) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Store>>,
}

impl Readers {
    pub(crate) fn new(path: &Path) -> Readers {
        Readers {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `read` with a read connection on a blocking thread, in one read transaction (all it
    /// reads is from the same commit).
    pub(crate) async fn read<T, F>(self: &Arc<Self>, read: F) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, EngineError> + Send + 'static,
    {
        let readers = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let store = readers.take()?;
            let result = store.snapshot(read);
            readers.give_back(store);
            result
        })
        .await
        .map_err(|e| EngineError::Internal(format!("a database read stopped: {e}")))?
    }

    fn take(&self) -> Result<Store, EngineError> {
        let pooled = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop();
        match pooled {
            Some(store) => Ok(store),
            None => Ok(Store::open_reader(&self.path)?),
        }
    }

    fn give_back(&self, store: Store) {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if idle.len() < KEEP_IDLE {
            idle.push(store);
        }
    }
}
