//! The engine's access to its database: one writer thread that every write goes through (and
//! where the drivers live), a pool of read connections, and a signal that something was
//! committed (by this process or any other). No SQLite call ever runs on an async worker of
//! the process that embeds the engine.

mod changes;
mod readers;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use stepwise_store::{Durability, Store, StoreError};
use tokio::sync::watch;

use crate::error::EngineError;

pub(crate) use changes::Changes;
pub(crate) use readers::Readers;
pub(crate) use writer::Writer;

/// Everything that touches the database file.
pub(crate) struct Db {
    pub(crate) writer: Arc<Writer>,
    pub(crate) readers: Arc<Readers>,
    pub(crate) changes: Changes,
    /// Run locks live beside the database: one file per run.
    pub(crate) lock_dir: PathBuf,
}

impl Db {
    /// Opens (creating and migrating if needed) the database and starts the writer thread and
    /// the change watch.
    pub(crate) fn open(path: &Path, durability: Durability) -> Result<Db, EngineError> {
        let store = Store::open(path, durability)?;
        let lock_dir = lock_dir_for(path);
        let changes = Changes::start(path);
        let writer = Writer::start(store, changes.sender())?;
        Ok(Db {
            writer,
            readers: Arc::new(Readers::new(path)),
            changes,
            lock_dir,
        })
    }

    /// Runs `read` on a pooled read connection, off the async workers.
    pub(crate) async fn read<T, F>(&self, read: F) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, EngineError> + Send + 'static,
    {
        self.readers.read(read).await
    }

    /// Runs `write` on the writer thread and waits for it.
    pub(crate) async fn write<T, F>(&self, write: F) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    {
        self.writer.write(write).await
    }

    /// Wakes when anything may have been committed to the database since the last look.
    pub(crate) fn watch_changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

/// Locks live beside the database: one file per run.
fn lock_dir_for(db_path: &Path) -> PathBuf {
    // The same database reached through another path (a symlink, a relative path) must share
    // its locks; the store has created the file by now, so it can be canonicalised.
    let canonical = db_path.canonicalize().ok();
    let db_path = canonical.as_deref().unwrap_or(db_path);
    let name = db_path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "stepwise".into());
    db_path
        .parent()
        .unwrap_or(Path::new("."))
        .join(format!("{name}.locks"))
}
