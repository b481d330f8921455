//! Opening the database file: read-write where this user may write it, read-only where not,
//! and knowing afterwards whether the file at the path is still the one opened.
//!
//! A read-only database in WAL mode is read through its `-wal` and `-shm` files when they are
//! there (or can be made). Where they cannot be, and there is no write-ahead log to bring in
//! (no `-wal` file, or an empty one), the database file alone holds every commit and is read as
//! it is (`immutable`). A log with commits in it that this user cannot bring in is an error
//! that says so: reading the file without it would show an older state as if it were the
//! latest.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::StoreError;

/// How long to wait for another connection's write lock before giving up.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Which file a connection opened: device and inode, so that a file moved over the path
/// while it is open is told apart from the one opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    /// The file at `path` now (following links, as SQLite does); `None` if there is none.
    pub fn of_path(path: &Path) -> Option<FileId> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(path).ok().map(|m| FileId {
                dev: m.dev(),
                ino: m.ino(),
            })
        }
        #[cfg(not(unix))]
        {
            let _ = path;
            None
        }
    }
}

/// Whether SQLite failed because it may not write something (the file, its `-wal` or `-shm`).
pub(crate) fn cannot_write(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied)
    )
}

/// Opens the database read-only: through its write-ahead log if that can be used here, else the
/// file alone when it holds every commit.
pub(crate) fn read_only_connection(path: &Path) -> Result<Connection, StoreError> {
    let open_error = |error| StoreError::Open {
        path: path.to_owned(),
        error,
    };
    match connect(path, "mode=ro").and_then(|conn| probe(&conn).map(|()| conn)) {
        Ok(conn) => return Ok(conn),
        Err(error) if cannot_write(&error) => {}
        Err(error) => return Err(open_error(error)),
    }
    if wal_has_commits(path) {
        return Err(StoreError::NeedsRecovery {
            path: path.to_owned(),
        });
    }
    // No log: nothing is missing from the file. `immutable` reads it without the `-shm` file
    // this user cannot make (and so without locks: a writer starting meanwhile is not seen).
    let conn = connect(path, "mode=ro&immutable=1").map_err(open_error)?;
    probe(&conn).map_err(open_error)?;
    Ok(conn)
}

fn connect(path: &Path, parameters: &str) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        format!("file:{}?{parameters}", uri_path(path)),
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    check_pages(&conn)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// More of a damaged page is caught as it is read (`cell_size_check`): an error that names the
/// damage, rather than whatever the page happens to hold read as rows.
pub(crate) fn check_pages(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "cell_size_check", "ON")
}

/// A first read, which opens the write-ahead log (SQLite opens files lazily).
pub(crate) fn probe(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
}

/// The database's write-ahead log: `<db>-wal`.
pub(crate) fn wal_path(path: &Path) -> PathBuf {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

/// Whether `<db>-wal` exists with anything in it.
fn wal_has_commits(path: &Path) -> bool {
    match std::fs::metadata(wal_path(path)) {
        Ok(meta) => meta.len() > 0,
        Err(e) => e.kind() != ErrorKind::NotFound,
    }
}

/// A path as the path of a `file:` URI: every byte but unreserved ones and `/` escaped.
fn uri_path(path: &Path) -> String {
    use std::fmt::Write;
    let bytes = path.as_os_str().as_encoded_bytes();
    let mut out = String::with_capacity(bytes.len());
    for &byte in bytes {
        if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// An exclusive lock on a file beside the database, held while it is set up (released when
/// dropped, as the file closes).
pub(crate) struct SetupLock {
    _file: Option<std::fs::File>,
}

impl SetupLock {
    /// Waits for the lock. Where the lock file cannot be made (a read-only directory), nobody
    /// can be setting the database up there either: go on without it. A link or anything but
    /// a plain file in its place is refused, never followed.
    pub(crate) fn take(db_path: &Path) -> Result<SetupLock, StoreError> {
        let mut name = db_path.as_os_str().to_owned();
        name.push(".setup-lock");
        let path = PathBuf::from(name);
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
        }
        let file = match options.open(&path) {
            Ok(file) => file,
            Err(e) if is_link_error(&e) => return Err(StoreError::NotPlainFile { path }),
            Err(_) => return Ok(SetupLock { _file: None }),
        };
        if !file.metadata().is_ok_and(|m| m.is_file()) {
            return Err(StoreError::NotPlainFile { path });
        }
        Ok(SetupLock {
            _file: file.lock().is_ok().then_some(file),
        })
    }
}

/// `O_NOFOLLOW` on a link fails with `ELOOP`.
fn is_link_error(error: &std::io::Error) -> bool {
    #[cfg(unix)]
    {
        error.raw_os_error() == Some(libc::ELOOP)
    }
    #[cfg(not(unix))]
    {
        let _ = error;
        false
    }
}

/// Creates the database's directory (and its parents) readable by this user only: the log
/// holds what runs read and wrote.
pub(crate) fn create_private_dir_all(dir: &Path) -> Result<(), StoreError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|error| StoreError::Io {
        path: dir.to_owned(),
        error,
    })
}

/// Checks the files SQLite keeps beside the database (`-wal`, `-shm`) before it opens them: a
/// link planted there (symbolic, or a hard link to another file) would have SQLite write into
/// whatever it names, even for a command that only reads (SQLite's own opens follow links).
/// Missing files are fine: SQLite makes them.
pub(crate) fn check_side_files(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::MetadataExt;
    for suffix in ["-wal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        let side = PathBuf::from(side);
        match std::fs::symlink_metadata(&side) {
            Ok(meta) if !meta.file_type().is_file() => {
                return Err(StoreError::NotPlainFile { path: side });
            }
            Ok(meta) if meta.nlink() > 1 => return Err(StoreError::HardLinked { path: side }),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_paths_escape_what_a_uri_would_read_otherwise() {
        assert_eq!(
            uri_path(Path::new("/a b/x?y#z%.db")),
            "/a%20b/x%3Fy%23z%25.db"
        );
    }
}
