//! Trigger firings: a trigger's firing is a signal (`signals.rs`) recorded once however many
//! watchers see it, and starts at most one run of each workflow (the `runs_one_per_cause`
//! index); what a watcher asks to find firings still to start, and the runs whose own file
//! changes a file trigger must not answer.

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use crate::runs::{RUN_COLUMNS, run_row};
use crate::signals::{COLUMNS, signal};
use crate::{NewSignal, RunRow, Signal, Store, StoreError};

/// The most firings [`Store::unstarted_signals`] returns at a time.
pub const MAX_UNSTARTED: usize = 100;

impl Store {
    /// Records a firing whose key may come back later as a new firing (the same files with
    /// the same content, changed again): the newest firing with this name and key, recorded
    /// less than `repeat_after_ms` ago, is this one (another watcher saw it first); an older
    /// one is a past firing, and this one is recorded with the key and a count (`key#2`).
    /// Returns the firing as recorded and whether this call recorded it.
    pub fn record_firing(
        &mut self,
        new: &NewSignal,
        repeat_after_ms: i64,
    ) -> Result<(Signal, bool), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let newest = tx
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM signals WHERE name = ?1
                 AND (idempotency_key = ?2 OR substr(idempotency_key, 1, length(?2) + 1) = ?2 || '#')
                 ORDER BY signal_id DESC LIMIT 1"
            ))?
            .query_row(params![new.name, new.idempotency_key], signal)
            .optional()?;
        let key = match &newest {
            Some(newest)
                if new.created_at_ms.saturating_sub(newest.created_at_ms) < repeat_after_ms =>
            {
                let found = newest.clone();
                tx.commit()?;
                return Ok((found, false));
            }
            Some(newest) => {
                let count = newest
                    .idempotency_key
                    .rsplit_once('#')
                    .and_then(|(_, n)| n.parse::<u64>().ok())
                    .unwrap_or(1);
                format!("{}#{}", new.idempotency_key, count.saturating_add(1))
            }
            None => new.idempotency_key.clone(),
        };
        tx.prepare_cached(
            "INSERT INTO signals
             (name, payload, idempotency_key, correlation_id, source, created_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            new.name,
            new.payload.to_string(),
            key,
            new.correlation_id,
            new.source,
            new.created_at_ms
        ])?;
        let recorded = tx
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM signals WHERE name = ?1 AND idempotency_key = ?2"
            ))?
            .query_row(params![new.name, key], signal)?;
        tx.commit()?;
        self.commits += 1;
        Ok((recorded, true))
    }

    /// Signals named `name`, recorded at or after `since_ms`, that have not started a run of
    /// `workflow_path`: oldest first, at most [`MAX_UNSTARTED`].
    pub fn unstarted_signals(
        &self,
        name: &str,
        workflow_path: &str,
        since_ms: i64,
    ) -> Result<Vec<Signal>, StoreError> {
        let limit = i64::try_from(MAX_UNSTARTED).unwrap_or(i64::MAX);
        let mut statement = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM signals s WHERE s.name = ?1 AND s.created_at_ms >= ?3
             AND NOT EXISTS (SELECT 1 FROM runs r
                             WHERE r.cause_signal_id = s.signal_id AND r.workflow_path = ?2)
             ORDER BY s.signal_id LIMIT ?4"
        ))?;
        let rows = statement.query_map(params![name, workflow_path, since_ms, limit], signal)?;
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

    fn firing(key: &str, at: i64) -> NewSignal {
        NewSignal {
            name: "files:/w/a.yaml".into(),
            payload: serde_json::json!({}),
            idempotency_key: key.into(),
            correlation_id: None,
            source: "watch".into(),
            created_at_ms: at,
        }
    }

    #[test]
    fn a_firing_seen_twice_at_once_is_one_and_seen_again_later_is_another() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db"), crate::Durability::Normal).unwrap();
        let (first, recorded) = store.record_firing(&firing("k", 1_000), 60_000).unwrap();
        assert!(recorded);
        let (same, recorded) = store.record_firing(&firing("k", 5_000), 60_000).unwrap();
        assert!(!recorded);
        assert_eq!(same.signal_id, first.signal_id);
        let (later, recorded) = store.record_firing(&firing("k", 90_000), 60_000).unwrap();
        assert!(recorded);
        assert_eq!(later.idempotency_key, "k#2");
        let (third, _) = store.record_firing(&firing("k", 200_000), 60_000).unwrap();
        assert_eq!(third.idempotency_key, "k#3");
        // Another key that starts alike is another firing.
        let (other, recorded) = store.record_firing(&firing("k2", 200_001), 60_000).unwrap();
        assert!(recorded);
        assert_eq!(other.idempotency_key, "k2");
        let unstarted = store
            .unstarted_signals("files:/w/a.yaml", "/w/a.yaml", 0)
            .unwrap();
        assert_eq!(unstarted.len(), 4);
    }
}
