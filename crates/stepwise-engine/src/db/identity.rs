//! The database file this engine opened, and noticing when another takes its place.
//!
//! SQLite keeps writing through the descriptor it opened, so a file moved over the path (a
//! backup restored, a copy put in place) would split a run's history: this process goes on
//! appending to the old file while every other process reads and writes the new one. Every
//! write and every read first compares the file at the path with the one opened (one `stat`);
//! the change watch compares it too, at once, when anything touches the database's name. The
//! first to notice raises the signal: from then on the engine reads and writes nothing, and its
//! drivers stop. (A PostgreSQL database has no file to replace: there the checks always pass.)

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use stepwise_store::{FileId, Store, StoreError};
use tokio::sync::watch;

pub(crate) struct DbFile {
    path: PathBuf,
    opened: Option<FileId>,
    /// How another connection to the same database is opened.
    opener: Opener,
    replaced: watch::Sender<bool>,
    /// Set once the alarm is raised, for the cheap check before each read and write.
    gone: AtomicBool,
}

/// Where more connections to the engine's database come from.
#[derive(Clone)]
pub(crate) enum Opener {
    /// The SQLite file at the path.
    Sqlite,
    /// The PostgreSQL database of a team.
    #[cfg(feature = "postgres")]
    Postgres(Box<stepwise_store::PgTarget>, stepwise_store::Durability),
}

impl DbFile {
    pub(crate) fn new(store: &Store, opener: Opener) -> DbFile {
        DbFile {
            path: store.path().to_path_buf(),
            opened: store.file_id(),
            opener,
            replaced: watch::channel(false).0,
            gone: AtomicBool::new(false),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Another connection to the database, for reading.
    pub(crate) fn open_reader(&self) -> Result<Store, StoreError> {
        match &self.opener {
            Opener::Sqlite => Store::open_reader(&self.path),
            #[cfg(feature = "postgres")]
            Opener::Postgres(target, durability) => Store::open_postgres(target, *durability),
        }
    }

    /// The PostgreSQL database, when that is the engine's.
    #[cfg(feature = "postgres")]
    pub(crate) fn shared(&self) -> Option<&stepwise_store::PgTarget> {
        match &self.opener {
            Opener::Sqlite => None,
            Opener::Postgres(target, _) => Some(target),
        }
    }

    /// Fails, and raises the signal, if the file at the path is not the one the engine opened,
    /// or `store` (a connection of this engine) is on another file than the engine's.
    pub(crate) fn check(&self, store: &Store) -> Result<(), StoreError> {
        if self.gone.load(Ordering::Acquire) {
            return Err(self.error());
        }
        let same = store.file_id() == self.opened && store.check_file().is_ok();
        if same {
            return Ok(());
        }
        self.raise();
        Err(self.error())
    }

    /// Compares the file at the path with the one opened, raising the signal if it changed;
    /// `true` if it did.
    pub(crate) fn look(&self) -> bool {
        if self.gone.load(Ordering::Acquire) {
            return true;
        }
        if self.opened.is_some() && FileId::of_path(&self.path) != self.opened {
            self.raise();
            return true;
        }
        false
    }

    pub(crate) fn is_replaced(&self) -> bool {
        self.gone.load(Ordering::Acquire)
    }

    /// Turns `true` once the file has been found replaced.
    pub(crate) fn subscribe(&self) -> watch::Receiver<bool> {
        self.replaced.subscribe()
    }

    pub(crate) fn error(&self) -> StoreError {
        StoreError::Replaced {
            path: self.path.clone(),
        }
    }

    fn raise(&self) {
        if !self.gone.swap(true, Ordering::AcqRel) {
            tracing::error!(db = %self.path.display(), "the database file was replaced while this process had it open; stopping");
            self.replaced.send_replace(true);
        }
    }
}
