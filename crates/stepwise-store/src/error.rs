//! The store's error type.

use std::path::{Path, PathBuf};

use stepwise_core::ids::{EventSeq, RunId};

/// Everything that can go wrong reading or writing the event log.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer appended to the run first; nothing was written.
    #[error(
        "run `{run_id}` was appended to concurrently: expected last seq {expected}, found {actual}"
    )]
    Conflict {
        run_id: RunId,
        expected: EventSeq,
        actual: EventSeq,
    },
    /// No run has this id (or, for [`crate::Store::find_run`], this prefix).
    #[error("run `{0}` not found")]
    RunNotFound(String),
    /// [`crate::Store::create_run`] was given an id that is already taken.
    #[error("run `{0}` already exists")]
    RunExists(RunId),
    /// A trigger's firing already started a run of this workflow (another watcher's, or
    /// this one's before a crash); nothing was written.
    #[error("signal {signal_id} already started a run of `{workflow_path}`")]
    CauseStarted {
        signal_id: i64,
        workflow_path: String,
    },
    /// A prefix matched several runs (at most [`crate::runs::AMBIGUOUS_MATCHES_SHOWN`] are listed).
    #[error("run prefix `{prefix}` is ambiguous: it matches {}", joined(.matches))]
    AmbiguousRun { prefix: String, matches: Vec<RunId> },
    /// A memory holds as many entries as it may; a new key was not remembered.
    #[error(
        "memory `{memory}` holds {limit} entries, the most it may; forget some first (`stepwise memory {memory} --forget KEY`)"
    )]
    MemoryFull { memory: String, limit: u64 },
    /// A command was already handled (applied or refused); nothing was written.
    #[error("command {0} was already handled")]
    CommandHandled(i64),
    /// A payload refers to a blob that is not in the `blobs` table.
    #[error("blob `{0}` not found")]
    MissingBlob(String),
    /// A blob referenced from a payload does not hold UTF-8 text.
    #[error("blob `{0}` is not utf-8 text and cannot be put back into a payload")]
    BlobNotText(String),
    /// The database file could not be opened or configured.
    #[error("database `{path}` could not be opened: {}", sqlite_reason(error))]
    Open {
        path: PathBuf,
        error: rusqlite::Error,
    },
    /// The schema could not be brought to the latest version.
    #[error(
        "database `{path}` could not be brought up to date: {}",
        migration_reason(error)
    )]
    Migration {
        path: PathBuf,
        error: rusqlite_migration::Error,
    },
    /// The database was written by a newer stepwise, whose schema this one does not know.
    #[error(
        "database `{path}` was written by a newer stepwise (schema version {found}; this stepwise knows versions up to {known}); upgrade stepwise to use it"
    )]
    TooNew {
        path: PathBuf,
        found: usize,
        known: usize,
    },
    /// An event payload could not be written or read back as JSON.
    #[error("payload of event {seq} in run `{run_id}` is not valid json: {error}")]
    Json {
        run_id: RunId,
        seq: EventSeq,
        error: serde_json::Error,
    },
    /// The database's directory could not be created.
    #[error(
        "directory `{path}` for the database could not be created: {}",
        io_reason(error)
    )]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The database is read-only for this user; nothing was written.
    #[error(
        "database `{path}` is read-only here (this user may not write the file or its directory): commands that change runs cannot be used; runs, show, events, approvals, cost and replay can"
    )]
    ReadOnly { path: PathBuf },
    /// A read-only database's write-ahead log holds commits this user cannot bring in.
    #[error(
        "database `{path}` cannot be read here: its write-ahead log (`{path}-wal`) holds commits that only a user who may write the database's directory can bring in; run any stepwise command on it once as such a user"
    )]
    NeedsRecovery { path: PathBuf },
    /// A read-only database has an older schema, which only a writer can bring up to date.
    #[error(
        "database `{path}` was written by an older stepwise (schema version {found}) and is read-only here, so it cannot be brought up to date; open it once as a user who may write it"
    )]
    OutOfDate { path: PathBuf, found: usize },
    /// Another file was moved over the database's path (or it was removed) while it was open.
    #[error(
        "database `{path}` was replaced by another file (or removed) while this process had it open; it stopped before writing more, so that no run's history is split between the two files: start stepwise again to use the file that is there now"
    )]
    Replaced { path: PathBuf },
    /// A file of the store's own is a link or not a plain file.
    #[error(
        "`{path}` is a symbolic link or not a plain file; stepwise never follows links for its own files: remove it (stepwise makes it anew)"
    )]
    NotPlainFile { path: PathBuf },
    /// A file of the store's own has another name (a hard link) that writing it would change.
    #[error(
        "`{path}` has another name (a hard link): writing it would change that other file too; remove it when no stepwise uses the database (SQLite makes it anew)"
    )]
    HardLinked { path: PathBuf },
    /// An SQLite failure reading or writing the database at `path`.
    #[error("database `{path}`: {}", sqlite_reason(error))]
    At {
        path: PathBuf,
        error: rusqlite::Error,
    },
    /// Any other SQLite failure.
    #[error("database error: {}", sqlite_reason(.0))]
    Sqlite(rusqlite::Error),
    /// A PostgreSQL database could not be reached or refused the connection.
    #[error("database `{database}` could not be reached: {reason}")]
    Unreachable { database: String, reason: String },
    /// The PostgreSQL URL (or its settings) is not one stepwise can use.
    #[error("database URL `{url}` cannot be used: {reason}")]
    BadUrl { url: String, reason: String },
    /// A PostgreSQL failure reading or writing the database (named where known).
    #[error("{}", postgres_message(.database.as_deref(), .reason))]
    Postgres {
        database: Option<String>,
        reason: String,
        /// The connection was lost or the transaction lost a race: trying again may succeed.
        retryable: bool,
        /// The connection was lost (the server restarted or is out of reach), as opposed to a
        /// race or a timeout on a server that answers.
        gone: bool,
    },
}

impl StoreError {
    /// The same error naming the database file, where it does not already.
    pub fn at(self, path: &Path) -> StoreError {
        match self {
            StoreError::Sqlite(error) => StoreError::At {
                path: path.to_owned(),
                error,
            },
            StoreError::Postgres {
                database: None,
                reason,
                retryable,
                gone,
            } => StoreError::Postgres {
                database: Some(path.display().to_string()),
                reason,
                retryable,
                gone,
            },
            other => other,
        }
    }

    /// Whether the database was busy: another connection held a lock longer than the wait
    /// allows. Trying again later may succeed.
    pub fn is_busy(&self) -> bool {
        match self {
            StoreError::Sqlite(error) | StoreError::At { error, .. } => matches!(
                error.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            StoreError::Postgres { retryable, .. } => *retryable,
            StoreError::Unreachable { .. } => true,
            _ => false,
        }
    }
}

impl StoreError {
    /// Whether the database server went away or could not be reached (a restart, a network
    /// cut): trying again once it is back may succeed. Never so for a SQLite file.
    pub fn is_server_gone(&self) -> bool {
        matches!(
            self,
            StoreError::Postgres { gone: true, .. } | StoreError::Unreachable { .. }
        )
    }
}

fn postgres_message(database: Option<&str>, reason: &str) -> String {
    match database {
        Some(database) => format!("database `{database}`: {reason}"),
        None => format!("database error: {reason}"),
    }
}

#[cfg(feature = "postgres")]
impl From<postgres::Error> for StoreError {
    fn from(error: postgres::Error) -> Self {
        let code = error.code().map(postgres::error::SqlState::code);
        // The server went away or is restarting (class 57P, 08), the transaction lost a race
        // it may win when tried again (class 40), or waited longer than the server allows for a
        // lock or a statement (55P03, 57014: contention, not a fault of the run).
        let retryable = error.is_closed()
            || code.is_some_and(|code| {
                code.starts_with("57P")
                    || code.starts_with("08")
                    || code.starts_with("40")
                    || code == "55P03"
                    || code == "57014"
            });
        // The connection is gone: closed, a connection error (08), or the server shutting down
        // or restarting (57P).
        let gone = error.is_closed()
            || code.is_some_and(|code| code.starts_with("08") || code.starts_with("57P"));
        let reason = match error.as_db_error() {
            Some(db) => match db.detail() {
                Some(detail) => format!("{} ({detail})", db.message()),
                None => db.message().to_owned(),
            },
            None if error.is_closed() => "the connection to the server was lost".to_owned(),
            None => error.to_string(),
        };
        StoreError::Postgres {
            database: None,
            reason,
            retryable,
            gone,
        }
    }
}

// Messages hold their causes in words (see `sqlite_reason`), so the errors expose no `source`
// that a caller printing the chain would repeat.
impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        StoreError::Sqlite(error)
    }
}

/// Run ids as a list in a sentence.
fn joined(ids: &[RunId]) -> String {
    ids.iter().map(RunId::as_str).collect::<Vec<_>>().join(", ")
}

/// An OS error in words, without the `(os error N)` that only a programmer needs.
fn io_reason(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(pos) if text.ends_with(')') => text[..pos].to_string(),
        _ => text,
    }
}

/// What went wrong in a migration, in a sentence (without the SQL it ran).
fn migration_reason(error: &rusqlite_migration::Error) -> String {
    match error {
        rusqlite_migration::Error::RusqliteError { err, .. } => sqlite_reason(err),
        other => other.to_string(),
    }
}

/// What SQLite reported, in a sentence a user can act on.
fn sqlite_reason(error: &rusqlite::Error) -> String {
    use rusqlite::ErrorCode;
    let rusqlite::Error::SqliteFailure(failure, message) = error else {
        return error.to_string();
    };
    match failure.code {
        ErrorCode::ReadOnly => {
            "the database is read-only here (its file or its directory cannot be written)".into()
        }
        ErrorCode::DiskFull => "the disk holding the database is full".into(),
        ErrorCode::PermissionDenied => "permission denied".into(),
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
            "the database stayed locked by another process for too long".into()
        }
        ErrorCode::NotADatabase => "the file is not a stepwise database (not SQLite)".into(),
        ErrorCode::DatabaseCorrupt => {
            "the database file is damaged (part of it is not what was written there); restore \
             it from a backup"
                .into()
        }
        _ => message.clone().unwrap_or_else(|| failure.to_string()),
    }
}
