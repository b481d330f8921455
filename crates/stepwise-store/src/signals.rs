//! Signals: immutable records that something happened (`stepwise signal NAME`, later a
//! trigger), each recorded once per name and idempotency key however often it is sent, and
//! taken by exactly one waiting step (`wait_signal`). A wait that is performed again after a
//! crash finds the signal it took.

use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde_json::Value;

use crate::{SqliteStore, StoreError};

/// A signal to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSignal {
    pub name: String,
    pub payload: Value,
    /// The same name and key are recorded once: a storm of one signal is one signal.
    pub idempotency_key: String,
    pub correlation_id: Option<String>,
    /// Who or what sent it (`cli (dana)`, a trigger).
    pub source: String,
    pub created_at_ms: i64,
}

/// A recorded signal.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub signal_id: i64,
    pub name: String,
    pub payload: Value,
    pub idempotency_key: String,
    pub correlation_id: Option<String>,
    pub source: String,
    pub created_at_ms: i64,
    /// The run and operation (a `wait_signal` step's) that took it.
    pub consumed_by: Option<(String, u64)>,
}

pub(crate) const COLUMNS: &str = "signal_id, name, payload, idempotency_key, correlation_id, source, \
                       created_at_ms, consumed_run, consumed_op";

pub(crate) fn signal(row: &rusqlite::Row<'_>) -> rusqlite::Result<Signal> {
    let payload: String = row.get(2)?;
    let run: Option<String> = row.get(7)?;
    let op: Option<i64> = row.get(8)?;
    Ok(Signal {
        signal_id: row.get(0)?,
        name: row.get(1)?,
        payload: serde_json::from_str(&payload).unwrap_or(Value::Null),
        idempotency_key: row.get(3)?,
        correlation_id: row.get(4)?,
        source: row.get(5)?,
        created_at_ms: row.get(6)?,
        consumed_by: run.zip(op.map(|op| u64::try_from(op).unwrap_or(0))),
    })
}

/// Inserts `new` unless a signal of its name and key is recorded already: the signal as
/// recorded, and whether this inserted it.
pub(crate) fn insert_signal(
    tx: &rusqlite::Transaction<'_>,
    new: &NewSignal,
) -> Result<(Signal, bool), StoreError> {
    let inserted = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO signals
             (name, payload, idempotency_key, correlation_id, source, created_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            new.name,
            new.payload.to_string(),
            new.idempotency_key,
            new.correlation_id,
            new.source,
            new.created_at_ms
        ])?;
    let recorded = tx
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM signals WHERE name = ?1 AND idempotency_key = ?2"
        ))?
        .query_row(params![new.name, new.idempotency_key], signal)?;
    Ok((recorded, inserted > 0))
}

impl SqliteStore {
    /// Records `signal` unless one of its name and key is recorded already: the signal as
    /// recorded, and whether this call recorded it.
    pub fn record_signal(&mut self, new: &NewSignal) -> Result<(Signal, bool), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let recorded = insert_signal(&tx, new)?;
        tx.commit()?;
        self.commits += 1;
        Ok(recorded)
    }

    /// The signal the wait `op` of `run` took, or else the oldest untaken signal named `name`,
    /// taken by it now; `None` when there is none yet.
    pub fn take_signal(
        &mut self,
        name: &str,
        run: &str,
        op: u64,
    ) -> Result<Option<Signal>, StoreError> {
        let op = i64::try_from(op).unwrap_or(i64::MAX);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let taken = tx
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM signals WHERE consumed_run = ?1 AND consumed_op = ?2"
            ))?
            .query_row(params![run, op], signal)
            .optional()?;
        if taken.is_some() {
            return Ok(taken);
        }
        let waiting: Option<i64> = tx
            .prepare_cached(
                "SELECT signal_id FROM signals WHERE name = ?1 AND consumed_run IS NULL
                 ORDER BY signal_id LIMIT 1",
            )?
            .query_row([name], |row| row.get(0))
            .optional()?;
        let Some(signal_id) = waiting else {
            return Ok(None);
        };
        tx.prepare_cached(
            "UPDATE signals SET consumed_run = ?1, consumed_op = ?2 WHERE signal_id = ?3",
        )?
        .execute(params![run, op, signal_id])?;
        let taken = tx
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM signals WHERE signal_id = ?1"
            ))?
            .query_row([signal_id], signal)?;
        tx.commit()?;
        self.commits += 1;
        Ok(Some(taken))
    }

    /// Whether [`SqliteStore::take_signal`] would find a signal for this wait now (a read: no write
    /// lock is taken to find out there is nothing).
    pub fn signal_ready(&self, name: &str, run: &str, op: u64) -> Result<bool, StoreError> {
        let op = i64::try_from(op).unwrap_or(i64::MAX);
        let ready: Option<i64> = self
            .conn
            .prepare_cached(
                "SELECT 1 FROM signals WHERE (consumed_run = ?1 AND consumed_op = ?2)
                 OR (name = ?3 AND consumed_run IS NULL) LIMIT 1",
            )?
            .query_row(params![run, op, name], |row| row.get(0))
            .optional()?;
        Ok(ready.is_some())
    }

    /// The newest signals, at most `limit`.
    pub fn signals(&self, limit: usize) -> Result<Vec<Signal>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut statement = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM signals ORDER BY signal_id DESC LIMIT ?1"
        ))?;
        let rows = statement.query_map([limit], signal)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn new(name: &str, key: &str, payload: Value) -> NewSignal {
        NewSignal {
            name: name.into(),
            payload,
            idempotency_key: key.into(),
            correlation_id: None,
            source: "test".into(),
            created_at_ms: 1,
        }
    }

    #[test]
    fn a_signal_is_recorded_once_per_key_and_taken_by_one_wait() {
        let dir = tempfile::tempdir().unwrap();
        let mut store =
            SqliteStore::open(&dir.path().join("db"), crate::Durability::Normal).unwrap();
        let (first, recorded) = store
            .record_signal(&new("deployed", "k1", serde_json::json!({"v": 1})))
            .unwrap();
        assert!(recorded);
        let (again, recorded) = store
            .record_signal(&new("deployed", "k1", serde_json::json!({"v": 2})))
            .unwrap();
        assert!(!recorded);
        assert_eq!(again.signal_id, first.signal_id);
        assert_eq!(again.payload, serde_json::json!({"v": 1}));
        let taken = store.take_signal("deployed", "run-a", 7).unwrap().unwrap();
        assert_eq!(taken.signal_id, first.signal_id);
        // Nobody else takes it; the same wait finds it again.
        assert!(store.take_signal("deployed", "run-b", 3).unwrap().is_none());
        assert_eq!(
            store
                .take_signal("deployed", "run-a", 7)
                .unwrap()
                .unwrap()
                .signal_id,
            first.signal_id
        );
        // A signal is never changed nor deleted.
        assert!(
            store
                .conn
                .execute("UPDATE signals SET payload = '1'", [])
                .is_err()
        );
        assert!(
            store
                .conn
                .execute("UPDATE signals SET consumed_run = 'x'", [])
                .is_err()
        );
        assert!(store.conn.execute("DELETE FROM signals", []).is_err());
        assert_eq!(store.signals(10).unwrap().len(), 1);
    }
}
