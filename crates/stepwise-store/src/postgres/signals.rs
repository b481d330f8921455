//! Signals and trigger firings on PostgreSQL, as `signals.rs` and `firings.rs` keep them on
//! SQLite: each signal once per name and idempotency key, taken by one wait; each file change
//! claimed by one firing of a workflow.

use postgres::{GenericClient, Row};
use serde_json::Value;

use super::runs::run_row;
use super::{Db, PgStore, limit, signed};
use crate::runs::RUN_COLUMNS;
use crate::signals::COLUMNS;
use crate::{MAX_UNSTARTED, NewSignal, RunRow, Signal, StoreError};

fn signal(row: &Row) -> Signal {
    let payload: &str = row.get(2);
    let run: Option<String> = row.get(7);
    let op: Option<i64> = row.get(8);
    Signal {
        signal_id: row.get(0),
        name: row.get(1),
        payload: serde_json::from_str(payload).unwrap_or(Value::Null),
        idempotency_key: row.get(3),
        correlation_id: row.get(4),
        source: row.get(5),
        created_at_ms: row.get(6),
        consumed_by: run.zip(op.map(|op| u64::try_from(op).unwrap_or(0))),
    }
}

/// Records `new` unless its name and key are recorded already; the signal as recorded, and
/// whether it is new.
fn insert_signal<C: GenericClient>(
    db: &mut Db<'_, C>,
    new: &NewSignal,
) -> Result<(Signal, bool), StoreError> {
    let inserted = db.execute(
        "INSERT INTO signals (name, payload, idempotency_key, correlation_id, source, created_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name, idempotency_key) DO NOTHING",
        &[
            &new.name,
            &new.payload.to_string(),
            &new.idempotency_key,
            &new.correlation_id,
            &new.source,
            &new.created_at_ms,
        ],
    )?;
    let recorded = db.query_one(
        &format!("SELECT {COLUMNS} FROM signals WHERE name = $1 AND idempotency_key = $2"),
        &[&new.name, &new.idempotency_key],
    )?;
    Ok((signal(&recorded), inserted > 0))
}

impl PgStore {
    pub fn record_signal(&mut self, new: &NewSignal) -> Result<(Signal, bool), StoreError> {
        self.write(|db, _| insert_signal(db, new))
    }

    pub fn take_signal(
        &mut self,
        name: &str,
        run: &str,
        op: u64,
    ) -> Result<Option<Signal>, StoreError> {
        let op = signed(op);
        self.write(|db, _| {
            if let Some(taken) = db.query_opt(
                &format!(
                    "SELECT {COLUMNS} FROM signals WHERE consumed_run = $1 AND consumed_op = $2"
                ),
                &[&run, &op],
            )? {
                return Ok(Some(signal(&taken)));
            }
            let Some(waiting) = db.query_opt(
                "SELECT signal_id FROM signals WHERE name = $1 AND consumed_run IS NULL
                 ORDER BY signal_id LIMIT 1",
                &[&name],
            )?
            else {
                return Ok(None);
            };
            let signal_id: i64 = waiting.get(0);
            let taken = db.query_one(
                &format!(
                    "UPDATE signals SET consumed_run = $1, consumed_op = $2 WHERE signal_id = $3
                     RETURNING {COLUMNS}"
                ),
                &[&run, &op, &signal_id],
            )?;
            Ok(Some(signal(&taken)))
        })
    }

    pub fn signal_ready(&self, name: &str, run: &str, op: u64) -> Result<bool, StoreError> {
        let op = signed(op);
        self.read(|db| {
            Ok(db
                .query_opt(
                    "SELECT 1 FROM signals WHERE (consumed_run = $1 AND consumed_op = $2)
                     OR (name = $3 AND consumed_run IS NULL) LIMIT 1",
                    &[&run, &op, &name],
                )?
                .is_some())
        })
    }

    pub fn signals(&self, max: usize) -> Result<Vec<Signal>, StoreError> {
        self.read(|db| {
            Ok(db
                .query(
                    &format!("SELECT {COLUMNS} FROM signals ORDER BY signal_id DESC LIMIT $1"),
                    &[&limit(max)],
                )?
                .iter()
                .map(signal)
                .collect())
        })
    }

    pub fn record_file_firing(
        &mut self,
        workflow_path: &str,
        keys: &[String],
        build: impl FnOnce(&[usize]) -> NewSignal + Send,
    ) -> Result<Option<Signal>, StoreError> {
        self.write(|db, _| {
            let mut unclaimed = Vec::new();
            for (i, key) in keys.iter().enumerate() {
                let claimed = db.query_opt(
                    "SELECT 1 FROM trigger_claims WHERE workflow_path = $1 AND change_key = $2",
                    &[&workflow_path, &key.as_bytes()],
                )?;
                if claimed.is_none() {
                    unclaimed.push(i);
                }
            }
            if unclaimed.is_empty() {
                return Ok(None);
            }
            let (recorded, _) = insert_signal(db, &build(&unclaimed))?;
            for &i in &unclaimed {
                db.execute(
                    "INSERT INTO trigger_claims (workflow_path, change_key, signal_id)
                     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    &[&workflow_path, &keys[i].as_bytes(), &recorded.signal_id],
                )?;
            }
            Ok(Some(recorded))
        })
    }

    pub fn unstarted_signals(
        &self,
        name: &str,
        workflow_path: &str,
        after_id: i64,
        since_ms: i64,
    ) -> Result<Vec<Signal>, StoreError> {
        self.read(|db| {
            Ok(db
                .query(
                    &format!(
                        "SELECT {COLUMNS} FROM signals s WHERE s.name = $1 AND s.signal_id > $3
                         AND s.created_at_ms >= $4
                         AND NOT EXISTS (SELECT 1 FROM runs r
                                         WHERE r.cause_signal_id = s.signal_id
                                           AND r.workflow_path = $2)
                         ORDER BY s.signal_id LIMIT $5"
                    ),
                    &[
                        &name,
                        &workflow_path,
                        &after_id,
                        &since_ms,
                        &limit(MAX_UNSTARTED),
                    ],
                )?
                .iter()
                .map(signal)
                .collect())
        })
    }

    pub fn latest_signal(&self, name: &str) -> Result<Option<Signal>, StoreError> {
        self.read(|db| {
            Ok(db
                .query_opt(
                    &format!(
                        "SELECT {COLUMNS} FROM signals WHERE name = $1
                         ORDER BY signal_id DESC LIMIT 1"
                    ),
                    &[&name],
                )?
                .as_ref()
                .map(signal))
        })
    }

    pub fn runs_in_workspace_since(
        &self,
        workspace: &str,
        since_ms: i64,
    ) -> Result<Vec<RunRow>, StoreError> {
        self.read(|db| {
            db.query(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM runs WHERE workspace = $1
                     AND (updated_at_ms >= $2 OR status NOT IN ('succeeded', 'failed', 'cancelled'))
                     ORDER BY created_at_ms, run_id COLLATE \"C\""
                ),
                &[&workspace, &since_ms],
            )?
            .iter()
            .map(run_row)
            .collect()
        })
    }
}
