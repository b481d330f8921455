//! Telemetry's bookkeeping, per collector (`collector`: a key naming it, never its URL, which
//! may hold a password): since when it receives runs, which process exports to it (one at a
//! time, on a lease it renews), and how far each run's log has been exported to it, advanced
//! only by the lease's holder from where it read it (so a span goes out once however many
//! processes try). A collector named for the first time receives runs from then on, never
//! another collector's backlog.

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use crate::runs::{RUN_COLUMNS, run_row};
use crate::{RunRow, SqliteStore, StoreError};

impl SqliteStore {
    /// Records that `collector` receives runs from `now_ms`, unless it did before.
    pub fn start_telemetry(&mut self, collector: &str, now_ms: i64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT OR IGNORE INTO telemetry_exporter (collector, enabled_at_ms, holder, lease_until_ms)
                 VALUES (?1, ?2, NULL, 0)",
            )?
            .execute(params![collector, now_ms])?;
        self.commits += 1;
        Ok(())
    }

    /// Takes (or renews) the lease on exporting to `collector` for `holder` until
    /// `now_ms + lease_ms`, when no other holder's lease runs past `now_ms`. Since when the
    /// collector receives runs, when the lease is `holder`'s; `None` when another process
    /// exports to it.
    pub fn claim_telemetry(
        &mut self,
        collector: &str,
        holder: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.prepare_cached(
            "INSERT OR IGNORE INTO telemetry_exporter (collector, enabled_at_ms, holder, lease_until_ms)
             VALUES (?1, ?2, NULL, 0)",
        )?
        .execute(params![collector, now_ms])?;
        let taken = tx
            .prepare_cached(
                "UPDATE telemetry_exporter SET holder = ?2, lease_until_ms = ?3
                 WHERE collector = ?1 AND (holder IS NULL OR holder = ?2 OR lease_until_ms < ?4)",
            )?
            .execute(params![
                collector,
                holder,
                now_ms.saturating_add(lease_ms),
                now_ms
            ])?;
        let enabled_at: Option<i64> = if taken == 1 {
            tx.prepare_cached("SELECT enabled_at_ms FROM telemetry_exporter WHERE collector = ?1")?
                .query_row(params![collector], |row| row.get(0))
                .optional()?
        } else {
            None
        };
        tx.commit()?;
        self.commits += 1;
        Ok(enabled_at)
    }

    /// Gives the lease on `collector` up, if `holder` has it.
    pub fn release_telemetry(&mut self, collector: &str, holder: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE telemetry_exporter SET holder = NULL, lease_until_ms = 0
                 WHERE collector = ?1 AND holder = ?2",
            )?
            .execute(params![collector, holder])?;
        self.commits += 1;
        Ok(())
    }

    /// Runs created at or after `since_ms` with events not exported to `collector` yet, each
    /// with the seq it was exported up to (0: none), least recently changed first, at most
    /// `limit`.
    pub fn telemetry_pending(
        &self,
        collector: &str,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<(RunRow, u64)>, StoreError> {
        let mut statement = self.conn.prepare_cached(&format!(
            "SELECT {RUN_COLUMNS}, exported FROM (
                 SELECT runs.*, COALESCE((SELECT c.exported_seq FROM telemetry_cursors c
                     WHERE c.collector = ?1 AND c.run_id = runs.run_id), 0) AS exported
                 FROM runs WHERE runs.created_at_ms >= ?2)
             WHERE last_seq > exported
             ORDER BY change_seq LIMIT ?3",
        ))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = statement.query_map(params![collector, since_ms, limit], |row| {
            let run = run_row(row)?;
            let exported: i64 = row.get(RUN_COLUMN_COUNT)?;
            Ok((run, u64::try_from(exported).unwrap_or(0)))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records that `run_id`'s log is exported to `collector` up to `to`, if it was up to
    /// `from` and `holder` still holds the lease (another exporter that got there first
    /// wins). Whether this one did.
    pub fn advance_telemetry(
        &mut self,
        collector: &str,
        holder: &str,
        run_id: &str,
        (from, to): (u64, u64),
    ) -> Result<bool, StoreError> {
        let holds: Option<i64> = self
            .conn
            .prepare_cached(
                "SELECT 1 FROM telemetry_exporter WHERE collector = ?1 AND holder = ?2",
            )?
            .query_row(params![collector, holder], |row| row.get(0))
            .optional()?;
        if holds.is_none() {
            return Ok(false);
        }
        let (from, to) = (
            i64::try_from(from).unwrap_or(i64::MAX),
            i64::try_from(to).unwrap_or(i64::MAX),
        );
        let changed = if from == 0 {
            self.conn
                .prepare_cached(
                    "INSERT INTO telemetry_cursors (collector, run_id, exported_seq) VALUES (?1, ?2, ?3)
                     ON CONFLICT (collector, run_id) DO UPDATE SET exported_seq = excluded.exported_seq
                     WHERE telemetry_cursors.exported_seq = 0",
                )?
                .execute(params![collector, run_id, to])?
        } else {
            self.conn
                .prepare_cached(
                    "UPDATE telemetry_cursors SET exported_seq = ?4
                     WHERE collector = ?1 AND run_id = ?2 AND exported_seq = ?3",
                )?
                .execute(params![collector, run_id, from, to])?
        };
        self.commits += 1;
        Ok(changed == 1)
    }
}

/// How many columns `RUN_COLUMNS` names (the cursor comes after them).
const RUN_COLUMN_COUNT: usize = 14;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use crate::test_support::*;

    #[test]
    fn one_holder_at_a_time_and_a_cursor_advances_once() {
        let (_dir, mut store) = temp_store();
        let enabled = store.claim_telemetry("k", "a", 1_000, 30_000).unwrap();
        assert_eq!(enabled, Some(1_000));
        assert_eq!(
            store.claim_telemetry("k", "b", 2_000, 30_000).unwrap(),
            None
        );
        // Renewed by its holder; taken over once it has lapsed.
        assert_eq!(
            store.claim_telemetry("k", "a", 20_000, 30_000).unwrap(),
            Some(1_000)
        );
        assert_eq!(
            store.claim_telemetry("k", "b", 60_000, 30_000).unwrap(),
            Some(1_000)
        );
        store.release_telemetry("k", "b").unwrap();
        assert_eq!(
            store.claim_telemetry("k", "c", 61_000, 30_000).unwrap(),
            Some(1_000)
        );

        let events = [
            event("A", json!(1)),
            event("B", json!(2)),
            event("C", json!(3)),
        ];
        store.create_run(&new_run("run-1"), &events).unwrap();
        let run = rid("run-1");
        let pending = store.telemetry_pending("k", 0, 10).unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].1, 0);
        assert!(
            store
                .advance_telemetry("k", "c", run.as_str(), (0, 2))
                .unwrap()
        );
        assert!(
            !store
                .advance_telemetry("k", "c", run.as_str(), (0, 2))
                .unwrap()
        );
        // Only the lease's holder moves a position on.
        assert!(
            !store
                .advance_telemetry("k", "a", run.as_str(), (2, 3))
                .unwrap()
        );
        assert_eq!(store.telemetry_pending("k", 0, 10).unwrap()[0].1, 2);
        assert!(
            store
                .advance_telemetry("k", "c", run.as_str(), (2, 3))
                .unwrap()
        );
        assert!(store.telemetry_pending("k", 0, 10).unwrap().is_empty());
        // Runs from before telemetry was on are not pending.
        assert!(
            store
                .telemetry_pending("k", i64::MAX, 10)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn each_collector_has_its_own_lease_start_and_positions() {
        let (_dir, mut store) = temp_store();
        store.start_telemetry("old", 500).unwrap();
        store
            .create_run(&new_run("run-1"), &[event("A", json!(1))])
            .unwrap();
        assert_eq!(
            store.claim_telemetry("old", "a", 2_000, 30_000).unwrap(),
            Some(500)
        );
        assert!(
            store
                .advance_telemetry("old", "a", "run-1", (0, 1))
                .unwrap()
        );
        // Another collector, named later, gets neither the lease nor the run from before it.
        store.start_telemetry("new", 5_000).unwrap();
        assert_eq!(
            store.claim_telemetry("new", "b", 5_000, 30_000).unwrap(),
            Some(5_000)
        );
        assert!(
            store
                .telemetry_pending("new", 5_000, 10)
                .unwrap()
                .is_empty()
        );
        assert!(store.telemetry_pending("old", 500, 10).unwrap().is_empty());
    }
}
