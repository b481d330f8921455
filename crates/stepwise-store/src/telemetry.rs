//! Telemetry's bookkeeping: which process exports (one at a time, on a lease it renews), and
//! how far each run's log has been exported, advanced only from where the exporter read it
//! (so a span goes out once however many processes try).

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use crate::runs::{RUN_COLUMNS, run_row};
use crate::{RunRow, Store, StoreError};

impl Store {
    /// Records that telemetry is on from `now_ms`, unless it was on before.
    pub fn start_telemetry(&mut self, now_ms: i64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT OR IGNORE INTO telemetry_exporter (id, enabled_at_ms, holder, lease_until_ms)
                 VALUES (1, ?1, NULL, 0)",
            )?
            .execute(params![now_ms])?;
        self.commits += 1;
        Ok(())
    }

    /// Takes (or renews) the exporter's lease for `holder` until `now_ms + lease_ms`, when no
    /// other holder's lease runs past `now_ms`. The time telemetry was first on, when the lease
    /// is `holder`'s; `None` when another process exports.
    pub fn claim_telemetry(
        &mut self,
        holder: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.prepare_cached(
            "INSERT OR IGNORE INTO telemetry_exporter (id, enabled_at_ms, holder, lease_until_ms)
             VALUES (1, ?1, NULL, 0)",
        )?
        .execute(params![now_ms])?;
        let taken = tx
            .prepare_cached(
                "UPDATE telemetry_exporter SET holder = ?1, lease_until_ms = ?2
                 WHERE id = 1 AND (holder IS NULL OR holder = ?1 OR lease_until_ms < ?3)",
            )?
            .execute(params![holder, now_ms.saturating_add(lease_ms), now_ms])?;
        let enabled_at: Option<i64> = if taken == 1 {
            tx.prepare_cached("SELECT enabled_at_ms FROM telemetry_exporter WHERE id = 1")?
                .query_row([], |row| row.get(0))
                .optional()?
        } else {
            None
        };
        tx.commit()?;
        self.commits += 1;
        Ok(enabled_at)
    }

    /// Gives the lease up, if `holder` has it.
    pub fn release_telemetry(&mut self, holder: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE telemetry_exporter SET holder = NULL, lease_until_ms = 0 WHERE holder = ?1",
            )?
            .execute(params![holder])?;
        self.commits += 1;
        Ok(())
    }

    /// Runs created at or after `since_ms` with events not exported yet, each with the seq it
    /// was exported up to (0: none), least recently changed first, at most `limit`.
    pub fn telemetry_pending(
        &self,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<(RunRow, u64)>, StoreError> {
        let mut statement = self.conn.prepare_cached(&format!(
            "SELECT {RUN_COLUMNS}, COALESCE(c.exported_seq, 0) FROM runs
             LEFT JOIN telemetry_cursors c USING (run_id)
             WHERE runs.created_at_ms >= ?1 AND runs.last_seq > COALESCE(c.exported_seq, 0)
             ORDER BY runs.change_seq LIMIT ?2",
        ))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = statement.query_map(params![since_ms, limit], |row| {
            let run = run_row(row)?;
            let exported: i64 = row.get(RUN_COLUMN_COUNT)?;
            Ok((run, u64::try_from(exported).unwrap_or(0)))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records that `run_id`'s log is exported up to `to`, if it was up to `from` and
    /// `holder` still holds the lease (another exporter that got there first wins). Whether
    /// this one did.
    pub fn advance_telemetry(
        &mut self,
        holder: &str,
        run_id: &str,
        from: u64,
        to: u64,
    ) -> Result<bool, StoreError> {
        let holds: Option<i64> = self
            .conn
            .prepare_cached("SELECT 1 FROM telemetry_exporter WHERE id = 1 AND holder = ?1")?
            .query_row(params![holder], |row| row.get(0))
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
                    "INSERT INTO telemetry_cursors (run_id, exported_seq) VALUES (?1, ?2)
                     ON CONFLICT (run_id) DO UPDATE SET exported_seq = excluded.exported_seq
                     WHERE telemetry_cursors.exported_seq = 0",
                )?
                .execute(params![run_id, to])?
        } else {
            self.conn
                .prepare_cached(
                    "UPDATE telemetry_cursors SET exported_seq = ?3
                     WHERE run_id = ?1 AND exported_seq = ?2",
                )?
                .execute(params![run_id, from, to])?
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
        let enabled = store.claim_telemetry("a", 1_000, 30_000).unwrap();
        assert_eq!(enabled, Some(1_000));
        assert_eq!(store.claim_telemetry("b", 2_000, 30_000).unwrap(), None);
        // Renewed by its holder; taken over once it has lapsed.
        assert_eq!(
            store.claim_telemetry("a", 20_000, 30_000).unwrap(),
            Some(1_000)
        );
        assert_eq!(
            store.claim_telemetry("b", 60_000, 30_000).unwrap(),
            Some(1_000)
        );
        store.release_telemetry("b").unwrap();
        assert_eq!(
            store.claim_telemetry("c", 61_000, 30_000).unwrap(),
            Some(1_000)
        );

        let events = [
            event("A", json!(1)),
            event("B", json!(2)),
            event("C", json!(3)),
        ];
        store.create_run(&new_run("run-1"), &events).unwrap();
        let run = rid("run-1");
        let pending = store.telemetry_pending(0, 10).unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].1, 0);
        assert!(store.advance_telemetry("c", run.as_str(), 0, 2).unwrap());
        assert!(!store.advance_telemetry("c", run.as_str(), 0, 2).unwrap());
        // Only the lease's holder moves a position on.
        assert!(!store.advance_telemetry("a", run.as_str(), 2, 3).unwrap());
        assert_eq!(store.telemetry_pending(0, 10).unwrap()[0].1, 2);
        assert!(store.advance_telemetry("c", run.as_str(), 2, 3).unwrap());
        assert!(store.telemetry_pending(0, 10).unwrap().is_empty());
        // Runs from before telemetry was on are not pending.
        assert!(store.telemetry_pending(i64::MAX, 10).unwrap().is_empty());
    }
}
