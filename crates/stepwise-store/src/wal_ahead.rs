//! Growing the write-ahead log ahead of the commits, so that a durable commit does not grow it.
//!
//! At `synchronous=FULL` every commit syncs `<db>-wal`. When the commit made that file longer,
//! the file system has to make its new size and blocks durable too (on ext4 a journal commit),
//! and the sync costs about twice as much: measured on this project's machine, 220 µs against
//! 115 µs for a one-row commit. SQLite writes the log from its start again once a checkpoint
//! has brought all of it into the database, so a log that has once reached the size of a
//! checkpoint interval stops growing. Only a fresh log grows at every commit: a new database,
//! or one whose last connection closed (SQLite then deletes the log), and so every short run
//! and every benchmark.
//!
//! [`SqliteStore::grow_wal_ahead`] brings the log to that size at once, with a transaction that is
//! rolled back. With a small page cache its pages spill into the log, but they are never
//! committed: readers and recovery stop at the last commit, and the next commit writes over
//! them. This is SQLite's own path for rolling back a transaction larger than its cache.

use std::path::Path;
use std::time::Duration;

use rusqlite::TransactionBehavior;

use crate::{SqliteStore, StoreError, open};

/// Pages beyond one checkpoint interval: the commit that crosses it and the checkpoint's own.
const SLACK_PAGES: i64 = 64;
/// The page cache while growing: small, so that the transaction's pages spill into the log.
const SPILL_CACHE_PAGES: i64 = 16;
/// Bytes of a log's header, and of each frame's header before its page.
const WAL_HEADER: i64 = 32;
const FRAME_HEADER: i64 = 24;
/// Bytes of a page a filler row leaves free, so that each row takes one page of its own.
const ROW_ROOM: i64 = 300;

impl SqliteStore {
    /// Makes the write-ahead log as large as one checkpoint interval if it is smaller, so that
    /// durable commits write over it rather than grow it. Nothing is committed. Returns whether
    /// it grew. Worth it only at [`crate::Durability::Full`] (at `NORMAL` a commit does not
    /// sync), on a connection about to commit many times: it writes about 4 MiB once.
    pub fn grow_wal_ahead(&mut self) -> Result<bool, StoreError> {
        self.check_writable()?;
        let page_size: i64 = self.conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let interval: i64 = self
            .conn
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))?;
        if interval <= 0 || page_size <= ROW_ROOM {
            return Ok(false);
        }
        let pages = interval.saturating_add(SLACK_PAGES);
        let wanted = pages
            .saturating_mul(page_size + FRAME_HEADER)
            .saturating_add(WAL_HEADER);
        if wal_len(&self.path) >= wanted {
            return Ok(false);
        }
        let cache: i64 = self.conn.query_row("PRAGMA cache_size", [], |r| r.get(0))?;
        self.conn
            .pragma_update(None, "cache_size", SPILL_CACHE_PAGES)?;
        // Another connection writing now is not waited for: it grows the log itself.
        self.conn.busy_timeout(Duration::ZERO)?;
        let grown = self.spill_rolled_back(pages, page_size - ROW_ROOM);
        self.conn.busy_timeout(open::BUSY_TIMEOUT)?;
        self.conn.pragma_update(None, "cache_size", cache)?;
        grown?;
        tracing::debug!(path = %self.path.display(), bytes = wal_len(&self.path), "grew the write-ahead log ahead");
        Ok(true)
    }

    /// Writes `rows` rows of `bytes` each in a transaction, then rolls it back.
    fn spill_rolled_back(&mut self, rows: i64, bytes: i64) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch("CREATE TABLE stepwise_wal_ahead (filler BLOB NOT NULL)")?;
        tx.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
             INSERT INTO stepwise_wal_ahead (filler) SELECT zeroblob(?2) FROM n",
            (rows, bytes),
        )?;
        tx.rollback()?;
        Ok(())
    }
}

/// The size of the database's write-ahead log now; 0 if it has none.
fn wal_len(db_path: &Path) -> i64 {
    std::fs::metadata(open::wal_path(db_path))
        .map(|meta| i64::try_from(meta.len()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::Durability;
    use crate::test_support::{count, event, new_run, rid, seq};

    fn full_store(dir: &tempfile::TempDir) -> (std::path::PathBuf, SqliteStore) {
        let path = dir.path().join("stepwise.db");
        let store = SqliteStore::open(&path, Durability::Full).unwrap();
        (path, store)
    }

    fn append_one(store: &mut SqliteStore, after: u64) {
        store
            .append(
                &rid("r1"),
                seq(after),
                &[event("StepStarted", json!({"step": after}))],
                None,
            )
            .unwrap();
    }

    #[test]
    fn the_log_grows_once_to_a_checkpoint_interval_and_nothing_is_committed() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut store) = full_store(&dir);
        store.create_run(&new_run("r1"), &[]).unwrap();
        append_one(&mut store, 0);
        let before = wal_len(&path);

        assert!(store.grow_wal_ahead().unwrap());
        let grown = wal_len(&path);
        // 1000 pages of 4 KiB and their frame headers, at least.
        assert!(grown >= 1000 * (4096 + 24), "{before} -> {grown}");
        assert!(!store.grow_wal_ahead().unwrap(), "grown once is enough");
        assert_eq!(
            count(
                &store,
                "SELECT count(*) FROM sqlite_master WHERE name = 'stepwise_wal_ahead'"
            ),
            0
        );
        assert_eq!(count(&store, "SELECT count(*) FROM events"), 1);

        // Commits write over the grown log rather than grow it, and everyone reads them.
        for after in 1..50 {
            append_one(&mut store, after);
        }
        assert_eq!(wal_len(&path), grown);
        let reader = SqliteStore::open_reader(&path).unwrap();
        assert_eq!(count(&reader, "SELECT count(*) FROM events"), 50);
        assert_eq!(reader.integrity_check().unwrap(), "ok");
    }

    #[test]
    fn a_crash_after_growing_recovers_exactly_the_commits() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut store) = full_store(&dir);
        store.create_run(&new_run("r1"), &[]).unwrap();
        assert!(store.grow_wal_ahead().unwrap());
        for after in 0..10 {
            append_one(&mut store, after);
        }
        // What a SIGKILL leaves on disk: the file and its log as they are, no checkpoint.
        let crashed = tempfile::tempdir().unwrap();
        let copy = crashed.path().join("stepwise.db");
        std::fs::copy(&path, &copy).unwrap();
        std::fs::copy(open::wal_path(&path), open::wal_path(&copy)).unwrap();

        let recovered = SqliteStore::open(&copy, Durability::Full).unwrap();
        assert_eq!(count(&recovered, "SELECT count(*) FROM events"), 10);
        assert_eq!(
            count(
                &recovered,
                "SELECT max(seq) FROM events WHERE run_id = 'r1'"
            ),
            10
        );
        assert_eq!(recovered.integrity_check().unwrap(), "ok");
    }

    #[test]
    fn a_reader_in_the_middle_of_the_growth_sees_only_commits() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut store) = full_store(&dir);
        store.create_run(&new_run("r1"), &[]).unwrap();
        let reader = SqliteStore::open_reader(&path).unwrap();
        assert!(store.grow_wal_ahead().unwrap());
        assert_eq!(
            count(
                &reader,
                "SELECT count(*) FROM sqlite_master WHERE name = 'stepwise_wal_ahead'"
            ),
            0
        );
        assert_eq!(count(&reader, "SELECT count(*) FROM runs"), 1);
        // The page cache is as it was.
        assert_eq!(count(&store, "PRAGMA cache_size"), -2000);
    }

    #[test]
    fn another_writer_is_not_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut store) = full_store(&dir);
        let other = rusqlite::Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let began = std::time::Instant::now();
        assert!(store.grow_wal_ahead().is_err());
        assert!(began.elapsed() < open::BUSY_TIMEOUT / 2);
        other.execute_batch("ROLLBACK").unwrap();
        // Its own writes wait as before.
        assert_eq!(count(&store, "PRAGMA busy_timeout"), 5000);
        assert!(store.grow_wal_ahead().unwrap());
        store.create_run(&new_run("r1"), &[]).unwrap();
    }

    #[test]
    fn a_reading_connection_cannot_grow_the_log_and_is_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _store) = full_store(&dir);
        let mut reader = SqliteStore::open_reader(&path).unwrap();
        let before = wal_len(&path);
        assert!(reader.grow_wal_ahead().is_err());
        assert_eq!(wal_len(&path), before);
        assert_eq!(count(&reader, "PRAGMA cache_size"), -2000);
    }
}
