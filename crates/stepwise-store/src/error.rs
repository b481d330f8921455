//! The store's error type.

use std::path::PathBuf;

/// Everything that can go wrong reading or writing the event log.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer appended to the run first; nothing was written.
    #[error(
        "run `{run_id}` was appended to concurrently: expected last seq {expected}, found {actual}"
    )]
    Conflict {
        run_id: String,
        expected: u64,
        actual: u64,
    },
    /// No run has this id (or, for [`crate::Store::find_run`], this prefix).
    #[error("run `{0}` not found")]
    RunNotFound(String),
    /// [`crate::Store::create_run`] was given an id that is already taken.
    #[error("run `{0}` already exists")]
    RunExists(String),
    /// A prefix matched several runs (at most [`crate::runs::AMBIGUOUS_MATCHES_SHOWN`] are listed).
    #[error("run prefix `{prefix}` is ambiguous: it matches {}", .matches.join(", "))]
    AmbiguousRun {
        prefix: String,
        matches: Vec<String>,
    },
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
    #[error("database `{path}` could not be opened: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// The schema could not be brought to the latest version.
    #[error(
        "database `{path}` could not be brought up to date: {}",
        migration_reason(source)
    )]
    Migration {
        path: PathBuf,
        #[source]
        source: rusqlite_migration::Error,
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
    #[error("payload of event {seq} in run `{run_id}` is not valid json: {source}")]
    Json {
        run_id: String,
        seq: u64,
        #[source]
        source: serde_json::Error,
    },
    /// The database's directory could not be created.
    #[error("directory `{path}` for the database could not be created: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Any other SQLite failure.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// What went wrong in a migration, in a sentence (without the SQL it ran).
fn migration_reason(error: &rusqlite_migration::Error) -> String {
    match error {
        rusqlite_migration::Error::RusqliteError { err, .. } => match err {
            rusqlite::Error::SqliteFailure(_, Some(message)) => message.clone(),
            other => other.to_string(),
        },
        other => other.to_string(),
    }
}
