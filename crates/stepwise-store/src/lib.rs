//! Stepwise's durable event log: one SQLite file (the default) or a PostgreSQL database
//! shared by a team (cargo feature `postgres`).
//!
//! Every run is an append-only sequence of events numbered `1, 2, 3, …`; the engine converts
//! its typed events to [`NewEvent`] and back from [`StoredEvent`]. A `runs` row per run is kept
//! current by every append for listing and lookup. Large strings in payloads (file snapshots,
//! model outputs) are stored once each as content-addressed blobs.
//!
//! One [`Store::append`] is one transaction and one durable commit, so the engine can make
//! each step durable before anything depends on it.
//!
//! This crate must never update or delete events (triggers in the schema enforce it, on both
//! backends), and must never interpret event payloads beyond moving large strings to blobs and
//! back: what an event means belongs to the core.
//!
//! [`Store`] is one API over the two backends ([`SqliteStore`], and `PgStore` in
//! `postgres/`): each method does the same on both, and the store's contract tests
//! (`tests/contract.rs`) run against both.

// Tests may unwrap: a panic there is the failure report.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod blobs;
mod chain;
mod commands;
mod error;
mod events;
mod facade;
mod firings;
mod memory;
mod migrations;
mod open;
#[cfg(feature = "postgres")]
mod postgres;
mod runs;
mod runs_page;
mod signals;
mod sqlite;
mod telemetry;
mod wal_ahead;

pub use blobs::INLINE_LIMIT;
pub use chain::Verified;
pub use commands::{CommandRef, CommandRow, CommandState, HandledCommand, NewCommand};
pub use error::StoreError;
pub use events::{NewEvent, StoredEvent};
pub use facade::Store;
pub use firings::MAX_UNSTARTED;
pub use memory::{MAX_MEMORY_ENTRIES, MAX_RECALLED, MemoryEntry, MemorySummary, Rememberer};
pub use open::FileId;
#[cfg(feature = "postgres")]
pub use postgres::{CHANGES_CHANNEL, PgListener, PgProbe, PgStore, PgTarget};
pub use runs::{AMBIGUOUS_MATCHES_SHOWN, NewRun, RunRow};
pub use runs_page::RunFilter;
pub use signals::{NewSignal, Signal};
pub use sqlite::SqliteStore;

/// How hard a commit tries to survive power loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `PRAGMA synchronous=FULL`: a committed append survives power loss (on PostgreSQL,
    /// `synchronous_commit = on`).
    Full,
    /// `PRAGMA synchronous=NORMAL`: survives a crash of the process, may lose the last commits
    /// on power loss; much cheaper in WAL mode (on PostgreSQL, `synchronous_commit = off`).
    Normal,
}

#[cfg(test)]
mod test_support {
    use serde_json::Value;
    use stepwise_core::ids::{EventSeq, RunId};
    use tempfile::TempDir;

    use crate::{Durability, NewEvent, NewRun, SqliteStore};

    pub(crate) fn rid(run_id: &str) -> RunId {
        RunId::from(run_id)
    }

    pub(crate) fn seq(seq: u64) -> EventSeq {
        EventSeq::new(seq)
    }

    pub(crate) fn temp_store() -> (TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("stepwise.db"), Durability::Normal).unwrap();
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

    pub(crate) fn count(store: &SqliteStore, sql: &str) -> i64 {
        store.conn.query_row(sql, [], |row| row.get(0)).unwrap()
    }
}
