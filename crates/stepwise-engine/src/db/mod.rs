//! The engine's access to its database: one writer thread that every write goes through (and
//! where the drivers live), a pool of read connections, and a signal that something was
//! committed (by this process or any other). No SQLite call ever runs on an async worker of
//! the process that embeds the engine.

mod changes;
mod identity;
mod readers;
pub(crate) mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use stepwise_store::{Store, StoreError};
use tokio::runtime::Handle;
use tokio::sync::watch;

use crate::config::Durability;
use crate::error::EngineError;

pub(crate) use changes::Changes;
pub(crate) use identity::DbFile;
pub(crate) use readers::Readers;
pub(crate) use writer::Writer;

/// Everything that touches the database file.
pub(crate) struct Db {
    pub(crate) writer: Arc<Writer>,
    pub(crate) readers: Arc<Readers>,
    pub(crate) changes: Changes,
    /// The file opened, and whether another has taken its place.
    pub(crate) file: Arc<DbFile>,
    /// This user may not write the database: it was opened for reading.
    read_only: bool,
    /// Run locks live beside the database: one file per run.
    pub(crate) lock_dir: PathBuf,
}

impl Db {
    /// Opens (creating and migrating if needed) the database and starts the writer thread and
    /// the change watch.
    /// Reads run on `exec`'s blocking threads; `after_exit` runs on the writer thread once it
    /// has stopped.
    pub(crate) fn open(
        path: &Path,
        durability: Durability,
        exec: Handle,
        after_exit: Box<dyn FnOnce() + Send>,
    ) -> Result<Db, EngineError> {
        let store = Store::open(path, durability.into())?;
        let read_only = store.is_read_only();
        let file = Arc::new(DbFile::new(&store));
        let lock_dir = lock_dir_for(path);
        let changes = Changes::start(path, Arc::clone(&file));
        let grow_wal_first = durability == Durability::Full && !read_only;
        let writer = Writer::start(
            store,
            changes.sender(),
            Arc::clone(&file),
            grow_wal_first,
            after_exit,
        )?;
        changes.tell_own_commits_by(&writer);
        Ok(Db {
            writer,
            readers: Arc::new(Readers::new(Arc::clone(&file), exec)),
            changes,
            file,
            read_only,
            lock_dir,
        })
    }

    /// Fails with the reason if this engine cannot change the database: before anything that
    /// would (starting or driving a run, sending a command) takes a lock or asks anyone.
    pub(crate) fn check_writable(&self) -> Result<(), EngineError> {
        if self.read_only {
            return Err(StoreError::ReadOnly {
                path: self.file.path().to_path_buf(),
            }
            .into());
        }
        Ok(())
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
