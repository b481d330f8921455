//! The SQLite backend: one database file, opened per thread; SQLite serialises writers across
//! connections. The default store.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::open::{self, BUSY_TIMEOUT, FileId, SetupLock};
use crate::{Durability, StoreError, migrations};

/// An open event log database. One per thread; SQLite serialises writers across connections.
pub struct SqliteStore {
    pub(crate) conn: Connection,
    pub(crate) path: PathBuf,
    /// Transactions this connection has committed.
    pub(crate) commits: u64,
    /// The file opened, to tell when another has been moved over the path.
    pub(crate) opened: Option<FileId>,
    /// Opened read-only: this user may not write the file or its directory.
    pub(crate) read_only: bool,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens the database at `path`, creating it and its parent directories (readable by this
    /// user only) if needed, and migrates it to the latest schema. Where this user may not
    /// write it, it is opened read-only (see [`SqliteStore::is_read_only`]).
    pub fn open(path: &Path, durability: Durability) -> Result<SqliteStore, StoreError> {
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
                return SqliteStore::open_read_only(path);
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
        Ok(SqliteStore::new(conn, path, read_only))
    }

    /// Opens a database this user may not write, for reading.
    fn open_read_only(path: &Path) -> Result<SqliteStore, StoreError> {
        open::check_side_files(path)?;
        let conn = open::read_only_connection(path)?;
        let found = schema_version(&conn).map_err(|error| StoreError::Open {
            path: path.to_owned(),
            error,
        })?;
        check_version(path, found, migrations::count(), true)?;
        tracing::debug!(path = %path.display(), "opened event store read-only");
        Ok(SqliteStore::new(conn, path, true))
    }

    fn new(conn: Connection, path: &Path, read_only: bool) -> SqliteStore {
        SqliteStore {
            conn,
            path: path.to_owned(),
            commits: 0,
            opened: FileId::of_path(path),
            read_only,
        }
    }

    /// Opens another connection to a database that [`SqliteStore::open`] has created, for reading
    /// only (`PRAGMA query_only`). In WAL mode it reads alongside the writer without waiting
    /// for its commits.
    pub fn open_reader(path: &Path) -> Result<SqliteStore, StoreError> {
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
        Ok(SqliteStore::new(conn, path, read_only))
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
mod tests {
    use serde_json::json;

    use super::*;
    use crate::test_support::{event, new_run, rid, seq, temp_store};

    #[test]
    fn open_creates_parent_directories_and_configures_the_connection() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/stepwise.db");
        let store = SqliteStore::open(&path, Durability::Full).unwrap();
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
            let store = SqliteStore::open(&path, Durability::Full).unwrap();
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
        let err = SqliteStore::open(&path, Durability::Normal).unwrap_err();
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
        let err = SqliteStore::open(dir.path(), Durability::Normal).unwrap_err();
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
        drop(SqliteStore::open(&other, Durability::Normal).unwrap());
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
        let err =
            SqliteStore::open(&dir.path().join("stepwise.db"), Durability::Normal).unwrap_err();
        assert!(matches!(err, StoreError::NotPlainFile { .. }), "{err}");
        assert!(!target.exists());
    }

    #[test]
    fn a_new_database_directory_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/stepwise/stepwise.db");
        drop(SqliteStore::open(&path, Durability::Normal).unwrap());
        for made in [dir.path().join("data"), dir.path().join("data/stepwise")] {
            let mode = std::fs::metadata(&made).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700, "{}", made.display());
        }
    }
}
