//! Trigger firings: a trigger's firing is a signal (`signals.rs`) recorded once however many
//! watchers see it, and starts at most one run of each workflow (the `runs_one_per_cause`
//! index); what a watcher asks to find firings still to start, and the runs whose own file
//! changes a file trigger must not answer.

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use crate::runs::{RUN_COLUMNS, run_row};
use crate::signals::{COLUMNS, signal};
use crate::{NewSignal, RunRow, Signal, SqliteStore, StoreError};

/// The most firings [`SqliteStore::unstarted_signals`] returns at a time.
pub const MAX_UNSTARTED: usize = 100;

impl SqliteStore {
    /// Records a file trigger's firing for the changes (each named by `keys`) that no firing
    /// of `workflow_path` claimed yet, claiming them, in one transaction: however several
    /// watchers grouped the same changes, each is in one firing. `build` makes the signal
    /// (payload, key, …) from the indices of the changes claimed now; `None` when another
    /// firing had claimed them all.
    pub fn record_file_firing(
        &mut self,
        workflow_path: &str,
        keys: &[String],
        build: impl FnOnce(&[usize]) -> NewSignal,
    ) -> Result<Option<Signal>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut unclaimed = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let claimed: Option<i64> = tx
                .prepare_cached(
                    "SELECT 1 FROM trigger_claims WHERE workflow_path = ?1 AND change_key = ?2",
                )?
                .query_row(params![workflow_path, key], |row| row.get(0))
                .optional()?;
            if claimed.is_none() {
                unclaimed.push(i);
            }
        }
        if unclaimed.is_empty() {
            return Ok(None);
        }
        let (recorded, _) = crate::signals::insert_signal(&tx, &build(&unclaimed))?;
        for &i in &unclaimed {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO trigger_claims (workflow_path, change_key, signal_id)
                 VALUES (?1, ?2, ?3)",
            )?
            .execute(params![workflow_path, keys[i], recorded.signal_id])?;
        }
        tx.commit()?;
        self.commits += 1;
        Ok(Some(recorded))
    }

    /// Signals named `name` after `after_id`, recorded at or after `since_ms`, that have not
    /// started a run of `workflow_path`: oldest first, at most [`MAX_UNSTARTED`] (the next
    /// page is after the last of them).
    pub fn unstarted_signals(
        &self,
        name: &str,
        workflow_path: &str,
        after_id: i64,
        since_ms: i64,
    ) -> Result<Vec<Signal>, StoreError> {
        let limit = i64::try_from(MAX_UNSTARTED).unwrap_or(i64::MAX);
        let mut statement = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM signals s WHERE s.name = ?1 AND s.signal_id > ?3
             AND s.created_at_ms >= ?4
             AND NOT EXISTS (SELECT 1 FROM runs r
                             WHERE r.cause_signal_id = s.signal_id AND r.workflow_path = ?2)
             ORDER BY s.signal_id LIMIT ?5"
        ))?;
        let rows = statement.query_map(
            params![name, workflow_path, after_id, since_ms, limit],
            signal,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The newest signal named `name`.
    pub fn latest_signal(&self, name: &str) -> Result<Option<Signal>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM signals WHERE name = ?1 ORDER BY signal_id DESC LIMIT 1"
            ))?
            .query_row([name], signal)
            .optional()?)
    }

    /// The runs in `workspace` that are unfinished or were written to at or after
    /// `since_ms`: those whose changes to its files may be what a watcher sees now.
    pub fn runs_in_workspace_since(
        &self,
        workspace: &str,
        since_ms: i64,
    ) -> Result<Vec<RunRow>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE workspace = ?1
                 AND (updated_at_ms >= ?2 OR status NOT IN ('succeeded', 'failed', 'cancelled'))
                 ORDER BY created_at_ms, run_id"
            ))?
            .query_map(params![workspace, since_ms], run_row)?
            .collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn firing(claimed: &[usize], keys: &[String]) -> NewSignal {
        let chosen: Vec<&str> = claimed.iter().map(|&i| keys[i].as_str()).collect();
        NewSignal {
            name: "files:/w/a.yaml".into(),
            payload: serde_json::json!({ "changes": chosen }),
            idempotency_key: chosen.join("|"),
            correlation_id: None,
            source: "watch".into(),
            created_at_ms: 1,
        }
    }

    #[test]
    fn each_change_is_in_one_firing_however_watchers_grouped_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut store =
            SqliteStore::open(&dir.path().join("db"), crate::Durability::Normal).unwrap();
        let (a, b) = ("a\0v1".to_string(), "b\0v1".to_string());
        // One watcher saw `a` alone, then the other saw `a` and `b` together.
        let first = [a.clone()];
        let one = store
            .record_file_firing("/w/a.yaml", &first, |c| firing(c, &first))
            .unwrap()
            .unwrap();
        assert_eq!(one.payload, serde_json::json!({"changes": ["a\0v1"]}));
        let both = [a.clone(), b.clone()];
        let two = store
            .record_file_firing("/w/a.yaml", &both, |c| firing(c, &both))
            .unwrap()
            .unwrap();
        assert_eq!(two.payload, serde_json::json!({"changes": ["b\0v1"]}));
        // Then the first watcher sees `b`: claimed already, nothing.
        let last = [b.clone()];
        assert!(
            store
                .record_file_firing("/w/a.yaml", &last, |c| firing(c, &last))
                .unwrap()
                .is_none()
        );
        // Another workflow claims its own.
        assert!(
            store
                .record_file_firing("/w/other.yaml", &last, |c| firing(c, &last))
                .unwrap()
                .is_some()
        );
        let unstarted = store
            .unstarted_signals("files:/w/a.yaml", "/w/a.yaml", 0, 0)
            .unwrap();
        assert_eq!(unstarted.len(), 2);
        let after = store
            .unstarted_signals("files:/w/a.yaml", "/w/a.yaml", unstarted[0].signal_id, 0)
            .unwrap();
        assert_eq!(after.len(), 1);
    }
}
