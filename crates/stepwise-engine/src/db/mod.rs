//! The engine's access to its database: one writer thread that every write goes through (and
//! where the drivers live), a pool of read connections, and a signal that something was
//! committed (by this process or any other). No SQLite call ever runs on an async worker of
//! the process that embeds the engine.

mod changes;
mod identity;
#[cfg(feature = "postgres")]
mod notifications;
mod readers;
pub(crate) mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use stepwise_store::{Store, StoreError};
use tokio::runtime::Handle;
use tokio::sync::watch;

use crate::config::{Durability, SharedDatabase};
use crate::error::EngineError;

/// How long the engine waits for a database server that went away (a restart, a network cut)
/// before whatever waits on it gives up: reads, and drivers (see `driver::outage`).
pub(crate) const OUTAGE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(600);

pub(crate) use changes::Changes;
pub(crate) use identity::{DbFile, Opener};
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
    /// Run locks live beside the database: one file per run. With a PostgreSQL database,
    /// this machine's own files for it (progress, the commands' locks) live there, and runs
    /// are held on the server (see `holds`).
    pub(crate) lock_dir: PathBuf,
    /// Who drives which run: lock files in `lock_dir`, or holds on the PostgreSQL server.
    pub(crate) holds: crate::lock::Holds,
}

impl Db {
    /// Opens (creating and migrating if needed) the database and starts the writer thread and
    /// the change watch.
    /// Reads run on `exec`'s blocking threads; `after_exit` runs on the writer thread once it
    /// has stopped.
    pub(crate) fn open(
        path: &Path,
        shared: Option<&SharedDatabase>,
        durability: Durability,
        host: &str,
        exec: Handle,
        after_exit: Box<dyn FnOnce() + Send>,
    ) -> Result<Db, EngineError> {
        let (store, opener) = match shared {
            None => (Store::open(path, durability.into())?, Opener::Sqlite),
            Some(shared) => open_shared(path, shared, durability)?,
        };
        let read_only = store.is_read_only();
        let file = Arc::new(DbFile::new(&store, opener));
        let lock_dir = lock_dir_for(path);
        let holds = crate::lock::Holds::for_database(&file, &lock_dir, host)?;
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
            holds,
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
        F: Fn(&Store) -> Result<T, EngineError> + Send + Sync + 'static,
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

/// Connects to the PostgreSQL database, and makes the directory of this machine's own files
/// for it (`path` is in it).
#[cfg(feature = "postgres")]
fn open_shared(
    path: &Path,
    shared: &SharedDatabase,
    durability: Durability,
) -> Result<(Store, Opener), EngineError> {
    if let Some(parent) = path.parent() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|source| EngineError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
    }
    let target = stepwise_store::PgTarget::parse(&shared.url, shared.password_env.as_deref())?;
    let store = Store::open_postgres(&target, durability.into())?;
    Ok((store, Opener::Postgres(Box::new(target), durability.into())))
}

#[cfg(not(feature = "postgres"))]
fn open_shared(
    _path: &Path,
    shared: &SharedDatabase,
    _durability: Durability,
) -> Result<(Store, Opener), EngineError> {
    Err(EngineError::Settings {
        message: format!(
            "the database is on PostgreSQL ({} URL), and this stepwise was built without PostgreSQL (cargo feature `postgres`)",
            if shared.url.is_empty() {
                "an empty"
            } else {
                "a postgres://"
            }
        ),
    })
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
