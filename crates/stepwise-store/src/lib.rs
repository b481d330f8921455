//! Stepwise's durable event log, in one SQLite file.
//!
//! Every run is an append-only sequence of events numbered `1, 2, 3, …`; the engine converts
//! its typed events to [`NewEvent`] and back from [`StoredEvent`]. A `runs` row per run is kept
//! current by every append for listing and lookup. Large strings in payloads (file snapshots,
//! model outputs) are stored once each as content-addressed blobs.
//!
//! One [`Store::append`] is one transaction and one durable commit, so the engine can make
//! each step durable before anything depends on it.
//!
//! This crate must never update or delete events (triggers in the schema enforce it), and must
//! never interpret event payloads beyond moving large strings to blobs and back: what an event
//! means belongs to the core.

// Tests may unwrap: a panic there is the failure report.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod blobs;
mod chain;
mod commands;
mod error;
mod events;
mod firings;
mod memory;
mod migrations;
mod open;
mod runs;
mod runs_page;
mod signals;
mod telemetry;
mod wal_ahead;

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::open::{BUSY_TIMEOUT, SetupLock};

pub use blobs::INLINE_LIMIT;
pub use chain::Verified;
pub use commands::{CommandRef, CommandRow, CommandState, HandledCommand, NewCommand};
pub use error::StoreError;
pub use events::{NewEvent, StoredEvent};
pub use firings::MAX_UNSTARTED;
pub use memory::{MAX_MEMORY_ENTRIES, MAX_RECALLED, MemoryEntry, MemorySummary, Rememberer};
pub use open::FileId;
pub use runs::{AMBIGUOUS_MATCHES_SHOWN, NewRun, RunRow};
pub use runs_page::RunFilter;
pub use signals::{NewSignal, Signal};

/// How hard a commit tries to survive power loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `PRAGMA synchronous=FULL`: a committed append survives power loss.
    Full,
    /// `PRAGMA synchronous=NORMAL`: survives a crash of the process, may lose the last commits
    /// on power loss; much cheaper in WAL mode.
    Normal,
}

/// An open event log database. One per thread; SQLite serialises writers across connections.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Transactions this connection has committed.
    commits: u64,
    /// The file opened, to tell when another has been moved over the path.
    opened: Option<FileId>,
    /// Opened read-only: this user may not write the file or its directory.
    read_only: bool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the database at `path`, creating it and its parent directories (readable by this
    /// user only) if needed, and migrates it to the latest schema. Where this user may not
    /// write it, it is opened read-only (see [`Store::is_read_only`]).
    pub fn open(path: &Path, durability: Durability) -> Result<Store, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            open::create_private_dir_all(parent)?;
        }
        let open_error = |source| StoreError::Open {
            path: path.to_owned(),
            error: source,
        };
        // Creating, configuring and migrating the database is one process at a time: the
        // migration library reads the schema version outside its transaction, so two processes
        // opening a new (or old) database together would both migrate it.
        let _setting_up = SetupLock::take(path)?;
        open::check_side_files(path)?;
        let mut conn = match Connection::open(path).and_then(|conn| {
            configure(&conn, durability)?;
            Ok(conn)
        }) {
            Ok(conn) => conn,
            Err(error) if open::cannot_write(&error) && path.is_file() => {
                return Store::open_read_only(path);
            }
            Err(error) => return Err(open_error(error)),
        };
        let read_only = conn.is_readonly(rusqlite::MAIN_DB).map_err(open_error)?;
        let known = migrations::count();
        let found = schema_version(&conn).map_err(open_error)?;
        check_version(path, found, known, read_only)?;
        migrations::migrations()
            .to_latest(&mut conn)
            .map_err(|source| StoreError::Migration {
                path: path.to_owned(),
                error: source,
            })?;
        tracing::debug!(path = %path.display(), ?durability, read_only, "opened event store");
        Ok(Store::new(conn, path, read_only))
    }

    /// Opens a database this user may not write, for reading.
    fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        open::check_side_files(path)?;
        let conn = open::read_only_connection(path)?;
        let found = schema_version(&conn).map_err(|error| StoreError::Open {
            path: path.to_owned(),
            error,
        })?;
        check_version(path, found, migrations::count(), true)?;
        tracing::debug!(path = %path.display(), "opened event store read-only");
        Ok(Store::new(conn, path, true))
    }

    fn new(conn: Connection, path: &Path, read_only: bool) -> Store {
        Store {
            conn,
            path: path.to_owned(),
            commits: 0,
            opened: FileId::of_path(path),
            read_only,
        }
    }

    /// Opens another connection to a database that [`Store::open`] has created, for reading
    /// only (`PRAGMA query_only`). In WAL mode it reads alongside the writer without waiting
    /// for its commits.
    pub fn open_reader(path: &Path) -> Result<Store, StoreError> {
        open::check_side_files(path)?;
        let open_error = |source| StoreError::Open {
            path: path.to_owned(),
            error: source,
        };
        let opened = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .and_then(|conn| {
            conn.busy_timeout(BUSY_TIMEOUT)?;
            conn.pragma_update(None, "query_only", "ON")?;
            open::check_pages(&conn)?;
            conn.set_prepared_statement_cache_capacity(32);
            open::probe(&conn)?;
            Ok(conn)
        });
        let conn = match opened {
            Ok(conn) => conn,
            Err(error) if open::cannot_write(&error) => open::read_only_connection(path)?,
            Err(error) => return Err(open_error(error)),
        };
        let read_only = conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(true);
        Ok(Store::new(conn, path, read_only))
    }

    /// Runs `read` inside one read transaction, so that everything it reads comes from the same
    /// commit (a run's row and its events agree, however fast a writer appends).
    pub fn snapshot<T, E: From<StoreError>>(
        &self,
        read: impl FnOnce(&Store) -> Result<T, E>,
    ) -> Result<T, E> {
        // Deferred: the snapshot is taken by the first read and held until the end; dropping
        // the transaction ends it (there is nothing to commit).
        let snapshot = self
            .conn
            .unchecked_transaction()
            .map_err(|e| E::from(StoreError::from(e)))?;
        let result = read(self);
        drop(snapshot);
        result
    }

    /// How many transactions this connection has committed (for benchmarks and tests of
    /// group commit).
    pub fn commits(&self) -> u64 {
        self.commits
    }

    /// `PRAGMA data_version`: changes whenever another connection commits to the database.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA data_version", [], |row| row.get(0))?)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the database was opened read-only (this user may not write it): every write
    /// fails with [`StoreError::ReadOnly`].
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The file this connection opened.
    pub fn file_id(&self) -> Option<FileId> {
        self.opened
    }

    /// Fails with [`StoreError::Replaced`] if the file at the path is no longer the one this
    /// connection opened (another was moved over it, or it was removed): what is written
    /// through this connection would no longer reach the file others open. One `stat`.
    pub fn check_file(&self) -> Result<(), StoreError> {
        match self.opened {
            Some(opened) if FileId::of_path(&self.path) != Some(opened) => {
                Err(StoreError::Replaced {
                    path: self.path.clone(),
                })
            }
            _ => Ok(()),
        }
    }

    /// Fails with [`StoreError::ReadOnly`] if this connection may not write. For writers, before
    /// they start a transaction, so that the refusal says why in words.
    pub fn check_writable(&self) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnly {
                path: self.path.clone(),
            });
        }
        Ok(())
    }

    /// After the file was replaced: moves every commit of this connection out of the
    /// write-ahead log (`<db>-wal`, found by name, and so shared with whatever file now has
    /// the path) into the file it opened, and empties the log, so that none of them is read as
    /// part of the new file.
    pub fn empty_wal(&self) -> Result<(), StoreError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// After the file was replaced: closing this connection must not touch the write-ahead log
    /// and its index, which (found by name) belong to the new file now. By default the last
    /// connection to a file brings the log in and deletes both.
    pub fn keep_wal_on_close(&self) {
        let _ = self.conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        );
    }

    /// The result of `PRAGMA integrity_check`, one line per problem; `ok` when healthy.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        let mut statement = self.conn.prepare("PRAGMA integrity_check")?;
        let lines = statement
            .query_map([], |row| row.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(lines.join("\n"))
    }
}

fn schema_version(conn: &Connection) -> rusqlite::Result<usize> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
}

/// A schema newer than this build is refused; an older one cannot be brought up to date
/// where the file cannot be written.
fn check_version(
    path: &Path,
    found: usize,
    known: usize,
    read_only: bool,
) -> Result<(), StoreError> {
    if found > known {
        return Err(StoreError::TooNew {
            path: path.to_owned(),
            found,
            known,
        });
    }
    if read_only && found < known {
        return Err(StoreError::OutOfDate {
            path: path.to_owned(),
            found,
        });
    }
    Ok(())
}

fn configure(conn: &Connection, durability: Durability) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    open::check_pages(conn)?;
    // WAL lets readers (the UI, the CLI) run alongside the engine's writes, and makes a commit
    // one sequential write instead of two.
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))?;
    let synchronous = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", synchronous)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(())
}

#[cfg(test)]
mod test_support {
    use serde_json::Value;
    use stepwise_core::ids::{EventSeq, RunId};
    use tempfile::TempDir;

    use crate::{Durability, NewEvent, NewRun, Store};

    pub(crate) fn rid(run_id: &str) -> RunId {
        RunId::from(run_id)
    }

    pub(crate) fn seq(seq: u64) -> EventSeq {
        EventSeq::new(seq)
    }

    pub(crate) fn temp_store() -> (TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("stepwise.db"), Durability::Normal).unwrap();
        (dir, store)
    }

    pub(crate) fn new_run(run_id: &str) -> NewRun {
        NewRun {
            run_id: run_id.into(),
            workflow_name: "build".into(),
            workflow_path: "workflows/build.yaml".into(),
            workflow_hash: "sha256:abc".into(),
            workspace: "/tmp/ws".into(),
            trigger: "cli".into(),
            status: "running".into(),
            created_at_ms: 1_000,
            parent: None,
            cause: None,
        }
    }

    pub(crate) fn event(event_type: &str, payload: Value) -> NewEvent {
        NewEvent {
            event_type: event_type.into(),
            schema_version: 1,
            recorded_at_ms: 1_000,
            correlation_id: None,
            causation_seq: None,
            payload,
        }
    }

    pub(crate) fn count(store: &Store, sql: &str) -> i64 {
        store.conn.query_row(sql, [], |row| row.get(0)).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::test_support::{event, new_run, rid, seq, temp_store};

    #[test]
    fn open_creates_parent_directories_and_configures_the_connection() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/stepwise.db");
        let store = Store::open(&path, Durability::Full).unwrap();
        assert_eq!(store.path(), path);
        assert!(path.exists());
        let pragma = |name: &str| -> String {
            store
                .conn
                .query_row(&format!("PRAGMA {name}"), [], |r| {
                    r.get::<_, rusqlite::types::Value>(0)
                })
                .map(|v| format!("{v:?}"))
                .unwrap()
        };
        assert_eq!(pragma("journal_mode"), "Text(\"wal\")");
        assert_eq!(pragma("synchronous"), "Integer(2)");
        assert_eq!(pragma("foreign_keys"), "Integer(1)");
        assert_eq!(pragma("busy_timeout"), "Integer(5000)");
    }

    #[test]
    fn reopening_keeps_data_and_migrating_again_is_a_no_op() {
        let (dir, mut store) = temp_store();
        let path = dir.path().join("stepwise.db");
        store
            .create_run(&new_run("run-1"), &[event("A", json!({"content": "x"}))])
            .unwrap();
        drop(store);
        for _ in 0..2 {
            let store = Store::open(&path, Durability::Full).unwrap();
            assert_eq!(store.run(&rid("run-1")).unwrap().unwrap().last_seq, seq(1));
            assert_eq!(
                store.load_events(&rid("run-1"), seq(0)).unwrap()[0].payload,
                json!({"content": "x"})
            );
            let version = migrations::migrations()
                .current_version(&store.conn)
                .unwrap();
            assert_eq!(
                version,
                rusqlite_migration::SchemaVersion::Inside(migrations::count().try_into().unwrap())
            );
        }
    }

    #[test]
    fn integrity_check_is_ok() {
        let (_dir, mut store) = temp_store();
        store
            .create_run(&new_run("run-1"), &[event("A", json!(1))])
            .unwrap();
        assert_eq!(store.integrity_check().unwrap(), "ok");
    }

    #[test]
    fn a_database_from_a_newer_stepwise_is_refused_naming_both_versions() {
        let (dir, store) = temp_store();
        store.conn.pragma_update(None, "user_version", 99).unwrap();
        drop(store);
        let path = dir.path().join("stepwise.db");
        let err = Store::open(&path, Durability::Normal).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("newer stepwise")
                && message.contains("schema version 99")
                && message.contains(&format!("up to {}", migrations::count())),
            "{message}"
        );
    }

    #[test]
    fn open_errors_name_the_database() {
        let dir = tempfile::tempdir().unwrap();
        // A directory cannot be opened as a database file.
        let err = Store::open(dir.path(), Durability::Normal).unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("database `{}`", dir.path().display())),
            "{message}"
        );
    }

    #[test]
    fn a_file_moved_over_the_database_is_noticed() {
        let (dir, store) = temp_store();
        let path = dir.path().join("stepwise.db");
        assert!(store.check_file().is_ok());
        let other = dir.path().join("other.db");
        drop(Store::open(&other, Durability::Normal).unwrap());
        std::fs::rename(&other, &path).unwrap();
        let err = store.check_file().unwrap_err();
        assert!(matches!(err, StoreError::Replaced { ref path } if *path == store.path()));
        assert!(err.to_string().contains("was replaced"), "{err}");
        // Removed is the same: what is written would reach no file anyone opens.
        std::fs::remove_file(&path).unwrap();
        assert!(store.check_file().is_err());
    }

    #[test]
    fn a_link_in_place_of_the_setup_lock_is_refused_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("made-through-a-link");
        std::os::unix::fs::symlink(&target, dir.path().join("stepwise.db.setup-lock")).unwrap();
        let err = Store::open(&dir.path().join("stepwise.db"), Durability::Normal).unwrap_err();
        assert!(matches!(err, StoreError::NotPlainFile { .. }), "{err}");
        assert!(!target.exists());
    }

    #[test]
    fn a_new_database_directory_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/stepwise/stepwise.db");
        drop(Store::open(&path, Durability::Normal).unwrap());
        for made in [dir.path().join("data"), dir.path().join("data/stepwise")] {
            let mode = std::fs::metadata(&made).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700, "{}", made.display());
        }
    }
}
