//! Run rows: one per run, created with its first events and kept current by every append.
//!
//! The row is a projection for listing and lookup; the events remain the truth.

use rusqlite::{OptionalExtension, Row, TransactionBehavior, params};
use stepwise_core::ids::{EventSeq, RunId};
pub use stepwise_core::records::RunRow;
use stepwise_core::run::RunStatus;
use stepwise_core::subrun::CHILD_TRIGGER;

use crate::events::{NewEvent, insert_events};
use crate::{SqliteStore, StoreError};

/// How many matches an ambiguous prefix reports.
pub const AMBIGUOUS_MATCHES_SHOWN: usize = 10;

/// A run about to be created.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    pub run_id: RunId,
    pub workflow_name: String,
    pub workflow_path: String,
    pub workflow_hash: String,
    pub workspace: String,
    pub trigger: String,
    pub status: String,
    pub created_at_ms: i64,
    /// The run it was forked from.
    pub parent: Option<RunId>,
    /// What started it, when a trigger did: one run per cause and workflow path.
    pub cause: Option<stepwise_core::cause::RunCause>,
}

pub(crate) const RUN_COLUMNS: &str = "run_id, workflow_name, workflow_path, workflow_hash, workspace, \
                           trigger, status, created_at_ms, updated_at_ms, last_seq, change_seq, \
                           cost_micro_usd, parent_run_id, cause";

pub(crate) fn run_row(row: &Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        run_id: RunId::from(row.get::<_, String>(0)?),
        workflow_name: row.get(1)?,
        workflow_path: row.get(2)?,
        workflow_hash: row.get(3)?,
        workspace: row.get(4)?,
        trigger: row.get(5)?,
        status: {
            let text: String = row.get(6)?;
            RunStatus::parse(&text).ok_or_else(|| {
                rusqlite::Error::FromSqlConversionFailure(
                    6,
                    rusqlite::types::Type::Text,
                    format!("`{text}` is not a run status this stepwise knows").into(),
                )
            })?
        },
        created_at_ms: row.get(7)?,
        updated_at_ms: row.get(8)?,
        last_seq: EventSeq::new(row.get(9)?),
        change_seq: row.get(10)?,
        cost_micro_usd: stored_micro_usd(row.get_ref(11)?),
        parent: row.get::<_, Option<String>>(12)?.map(RunId::from),
        cause: row.get(13)?,
    })
}

/// A cost column as stored, whatever its type: a database written before costs were bounded
/// may hold a REAL or a negative number there, and listing runs must not fail on it.
fn stored_micro_usd(value: rusqlite::types::ValueRef<'_>) -> u64 {
    use rusqlite::types::ValueRef;
    let max = stepwise_core::llm::MAX_MICRO_USD;
    match value {
        ValueRef::Integer(n) => u64::try_from(n).unwrap_or(0).min(max),
        // `as` saturates a float into the integer's range (NaN becomes 0).
        ValueRef::Real(x) => (x.max(0.0) as u64).min(max),
        _ => 0,
    }
}

impl SqliteStore {
    /// Inserts the run row and its first events (seqs `1..=n`) in one transaction and returns
    /// the last seq. Fails with [`StoreError::RunExists`] if the id is taken.
    pub fn create_run(
        &mut self,
        run: &NewRun,
        events: &[NewEvent],
    ) -> Result<EventSeq, StoreError> {
        let last_seq = EventSeq::new(u64::try_from(events.len()).unwrap_or(u64::MAX));
        let updated_at_ms = events
            .last()
            .map_or(run.created_at_ms, |e| e.recorded_at_ms);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // The row goes in first so the events' foreign key holds; it already carries the final
        // last_seq, which is safe because nobody else can see it before the commit.
        let inserted = tx
            .prepare_cached(&format!(
                "INSERT INTO runs ({RUN_COLUMNS}, cause_signal_id, family_run_id, family_at_ms,
                 family_path)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,
                 (SELECT COALESCE(MAX(change_seq), 0) + 1 FROM runs), 0, ?11, ?12, ?13, ?1, ?8,
                 '')"
            ))?
            .execute(params![
                run.run_id.as_str(),
                run.workflow_name,
                run.workflow_path,
                run.workflow_hash,
                run.workspace,
                run.trigger,
                run.status,
                run.created_at_ms,
                updated_at_ms,
                last_seq.get(),
                run.parent.as_ref().map(RunId::as_str),
                run.cause.as_ref().map(|cause| cause.summary.as_str()),
                run.cause.as_ref().map(|cause| cause.signal_id),
            ]);
        match inserted {
            Err(rusqlite::Error::SqliteFailure(err, _))
                if err.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
            {
                return Err(StoreError::RunExists(run.run_id.clone()));
            }
            Err(rusqlite::Error::SqliteFailure(err, _))
                if err.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    && run.cause.is_some() =>
            {
                return Err(StoreError::CauseStarted {
                    signal_id: run.cause.as_ref().map_or(0, |cause| cause.signal_id),
                    workflow_path: run.workflow_path.clone(),
                });
            }
            other => other?,
        };
        // Its family, for the runs list: a child run is listed right after its parent, a
        // parent's children in the order they started, each followed by its own (`runs_page`).
        tx.prepare_cached(
            "UPDATE runs SET
                 family_run_id = COALESCE(
                     (SELECT p.family_run_id FROM runs p WHERE p.run_id = runs.parent_run_id),
                     runs.parent_run_id),
                 family_at_ms = COALESCE(
                     (SELECT p.family_at_ms FROM runs p WHERE p.run_id = runs.parent_run_id),
                     runs.created_at_ms),
                 family_path = COALESCE(
                     (SELECT p.family_path FROM runs p WHERE p.run_id = runs.parent_run_id),
                     '') || printf('/%016d:', runs.created_at_ms) || runs.run_id
             WHERE run_id = ?1 AND trigger = ?2 AND parent_run_id IS NOT NULL",
        )?
        .execute(params![run.run_id.as_str(), CHILD_TRIGGER])?;
        insert_events(&tx, &run.run_id, EventSeq::ZERO, events)?;
        tx.commit()?;
        self.commits += 1;
        tracing::debug!(run_id = %run.run_id, %last_seq, "created run");
        Ok(last_seq)
    }

    /// The run with exactly this id, if any.
    pub fn run(&self, run_id: &RunId) -> Result<Option<RunRow>, StoreError> {
        self.run_exactly(run_id.as_str())
    }

    /// The runs forked from `run_id` or started by its steps (child runs), oldest first.
    pub fn runs_from(&self, run_id: &RunId) -> Result<Vec<RunRow>, StoreError> {
        let mut statement = self.conn.prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE parent_run_id = ?1 ORDER BY created_at_ms, run_id"
        ))?;
        let rows = statement.query_map([run_id.as_str()], run_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The run whose id is exactly this text, if any.
    fn run_exactly(&self, run_id: &str) -> Result<Option<RunRow>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?1"))?
            .query_row([run_id], run_row)
            .optional()?)
    }

    /// Resolves a full run id or a unique prefix of one, like a short git hash.
    ///
    /// Fails with [`StoreError::RunNotFound`] if nothing matches (an empty prefix never
    /// matches) and [`StoreError::AmbiguousRun`] if several runs do.
    pub fn find_run(&self, id_or_prefix: &str) -> Result<RunRow, StoreError> {
        if id_or_prefix.is_empty() {
            return Err(StoreError::RunNotFound(String::new()));
        }
        // An exact id wins even when it is also the prefix of a longer one.
        if let Some(run) = self.run_exactly(id_or_prefix)? {
            return Ok(run);
        }
        // A range on the primary key rather than LIKE: exact, case-sensitive and indexed.
        let limit = AMBIGUOUS_MATCHES_SHOWN as i64;
        let mut matches: Vec<RunRow> = match prefix_successor(id_or_prefix) {
            Some(upper) => self
                .conn
                .prepare_cached(&format!(
                    "SELECT {RUN_COLUMNS} FROM runs WHERE run_id >= ?1 AND run_id < ?2
                     ORDER BY run_id LIMIT ?3"
                ))?
                .query_map(params![id_or_prefix, upper, limit], run_row)?
                .collect::<Result<_, _>>()?,
            None => self
                .conn
                .prepare_cached(&format!(
                    "SELECT {RUN_COLUMNS} FROM runs WHERE run_id >= ?1 ORDER BY run_id LIMIT ?2"
                ))?
                .query_map(params![id_or_prefix, limit], run_row)?
                .collect::<Result<_, _>>()?,
        };
        match matches.len() {
            0 => Err(StoreError::RunNotFound(id_or_prefix.to_owned())),
            1 => Ok(matches.remove(0)),
            _ => Err(StoreError::AmbiguousRun {
                prefix: id_or_prefix.to_owned(),
                matches: matches.into_iter().map(|run| run.run_id).collect(),
            }),
        }
    }

    /// Up to `limit` runs, newest first.
    pub fn list_runs(&self, limit: usize) -> Result<Vec<RunRow>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs ORDER BY created_at_ms DESC, run_id DESC LIMIT ?1"
            ))?
            .query_map([limit], run_row)?
            .collect::<Result<_, _>>()?)
    }

    /// Runs written to after `change_seq` (see [`RunRow::change_seq`]), in the order they were
    /// last written, at most `limit` of them.
    pub fn runs_changed_since(
        &self,
        change_seq: u64,
        limit: usize,
    ) -> Result<Vec<RunRow>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE change_seq > ?1
                 ORDER BY change_seq LIMIT ?2"
            ))?
            .query_map(params![change_seq, limit], run_row)?
            .collect::<Result<_, _>>()?)
    }

    /// The highest [`RunRow::change_seq`] so far (0 with no runs).
    pub fn last_change_seq(&self) -> Result<u64, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT COALESCE(MAX(change_seq), 0) FROM runs")?
            .query_row([], |row| row.get(0))?)
    }

    /// Runs that have not reached `succeeded`, `failed` or `cancelled`, oldest first: the
    /// ones to resume after a restart.
    pub fn unfinished_runs(&self) -> Result<Vec<RunRow>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs
                 WHERE status NOT IN ('succeeded', 'failed', 'cancelled')
                 ORDER BY created_at_ms ASC, run_id ASC"
            ))?
            .query_map([], run_row)?
            .collect::<Result<_, _>>()?)
    }
}

/// The smallest string greater than every string starting with `prefix`, or `None` if there
/// is none (SQLite compares text as UTF-8 bytes, which orders like code points).
pub(crate) fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::test_support::{event, new_run, rid, seq, temp_store};

    fn run_at(run_id: &str, created_at_ms: i64, status: &str) -> NewRun {
        NewRun {
            created_at_ms,
            status: status.into(),
            ..new_run(run_id)
        }
    }

    #[test]
    fn create_run_stores_the_row() {
        let (_dir, mut store) = temp_store();
        let run = new_run("run-1");
        let first = NewEvent {
            recorded_at_ms: 1_500,
            ..event("RunStarted", json!({}))
        };
        assert_eq!(store.create_run(&run, &[first]).unwrap(), seq(1));
        let row = store.run(&rid("run-1")).unwrap().unwrap();
        assert_eq!(
            row,
            RunRow {
                run_id: run.run_id,
                workflow_name: run.workflow_name,
                workflow_path: run.workflow_path,
                workflow_hash: run.workflow_hash,
                workspace: run.workspace,
                trigger: run.trigger,
                status: RunStatus::parse(&run.status).expect("a run status"),
                created_at_ms: run.created_at_ms,
                updated_at_ms: 1_500,
                last_seq: seq(1),
                change_seq: 1,
                cost_micro_usd: 0,
                parent: None,
                cause: None,
            }
        );
        assert_eq!(store.run(&rid("run-2")).unwrap(), None);
    }

    #[test]
    fn a_run_id_cannot_be_reused() {
        let (_dir, mut store) = temp_store();
        store
            .create_run(&new_run("run-1"), &[event("A", json!(1))])
            .unwrap();
        let err = store
            .create_run(&new_run("run-1"), &[event("A", json!(2))])
            .unwrap_err();
        assert!(
            matches!(err, StoreError::RunExists(ref id) if id == "run-1"),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "run `run-1` already exists");
        assert_eq!(
            store.load_events(&rid("run-1"), seq(0)).unwrap()[0].payload,
            json!(1)
        );
    }

    #[test]
    fn find_run_by_id_and_prefix() {
        let (_dir, mut store) = temp_store();
        for id in ["0193aa01", "0193aa02", "0193bb", "0193bb77", "01ff"] {
            store.create_run(&new_run(id), &[]).unwrap();
        }
        assert_eq!(store.find_run("0193aa02").unwrap().run_id, "0193aa02");
        assert_eq!(store.find_run("0193aa0").map(|r| r.run_id).ok(), None);
        assert_eq!(store.find_run("01f").unwrap().run_id, "01ff");
        assert_eq!(store.find_run("0193bb7").unwrap().run_id, "0193bb77");
        // Exact beats being a prefix of another id.
        assert_eq!(store.find_run("0193bb").unwrap().run_id, "0193bb");

        match store.find_run("0193a").unwrap_err() {
            StoreError::AmbiguousRun { prefix, matches } => {
                assert_eq!(prefix, "0193a");
                assert_eq!(matches, ["0193aa01", "0193aa02"]);
            }
            other => panic!("expected ambiguity, got {other:?}"),
        }
        let err = store.find_run("0193c").unwrap_err();
        assert!(matches!(err, StoreError::RunNotFound(ref p) if p == "0193c"));
        assert_eq!(err.to_string(), "run `0193c` not found");
        assert!(matches!(
            store.find_run("").unwrap_err(),
            StoreError::RunNotFound(_)
        ));
        // Prefixes are matched literally, not as patterns.
        assert!(matches!(
            store.find_run("0193_").unwrap_err(),
            StoreError::RunNotFound(_)
        ));
        assert!(matches!(
            store.find_run("0193%").unwrap_err(),
            StoreError::RunNotFound(_)
        ));
    }

    #[test]
    fn prefix_successor_orders_after_every_extension() {
        assert_eq!(prefix_successor("ab").as_deref(), Some("ac"));
        assert_eq!(prefix_successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_successor("\u{10FFFF}"), None);
        assert_eq!(prefix_successor("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
    }

    #[test]
    fn list_runs_is_newest_first_and_limited() {
        let (_dir, mut store) = temp_store();
        store.create_run(&run_at("b", 2, "running"), &[]).unwrap();
        store.create_run(&run_at("a", 1, "running"), &[]).unwrap();
        store.create_run(&run_at("c", 3, "running"), &[]).unwrap();
        let ids = |runs: Vec<RunRow>| runs.into_iter().map(|r| r.run_id).collect::<Vec<_>>();
        assert_eq!(ids(store.list_runs(10).unwrap()), ["c", "b", "a"]);
        assert_eq!(ids(store.list_runs(2).unwrap()), ["c", "b"]);
        assert!(store.list_runs(0).unwrap().is_empty());
    }

    #[test]
    fn every_write_to_a_run_moves_it_to_the_end_of_the_change_order() {
        let (_dir, mut store) = temp_store();
        store
            .create_run(&new_run("a"), &[event("A", json!(1))])
            .unwrap();
        store
            .create_run(&new_run("b"), &[event("A", json!(1))])
            .unwrap();
        let ids = |runs: Vec<RunRow>| runs.into_iter().map(|r| r.run_id).collect::<Vec<_>>();
        assert_eq!(ids(store.runs_changed_since(0, 10).unwrap()), ["a", "b"]);
        let seen = store.last_change_seq().unwrap();
        assert!(store.runs_changed_since(seen, 10).unwrap().is_empty());

        store
            .append(&rid("a"), seq(1), &[event("B", json!(2))], None)
            .unwrap();
        let changed = store.runs_changed_since(seen, 10).unwrap();
        assert_eq!(ids(changed.clone()), ["a"]);
        assert_eq!(changed[0].last_seq, seq(2));
        assert!(changed[0].change_seq > seen);
        assert_eq!(ids(store.runs_changed_since(0, 10).unwrap()), ["b", "a"]);
        assert_eq!(ids(store.runs_changed_since(0, 1).unwrap()), ["b"]);
    }

    #[test]
    fn unfinished_runs_are_oldest_first() {
        let (_dir, mut store) = temp_store();
        let statuses = [
            ("r1", "succeeded"),
            ("r2", "running"),
            ("r3", "failed"),
            ("r4", "awaiting_approval"),
            ("r5", "cancelled"),
            ("r6", "paused"),
        ];
        for (i, (id, status)) in statuses.iter().enumerate().rev() {
            store
                .create_run(&run_at(id, i64::try_from(i).unwrap(), status), &[])
                .unwrap();
        }
        let ids: Vec<RunId> = store
            .unfinished_runs()
            .unwrap()
            .into_iter()
            .map(|r| r.run_id)
            .collect();
        assert_eq!(ids, ["r2", "r4", "r6"]);

        store
            .append(
                &rid("r2"),
                seq(0),
                &[event("RunSucceeded", json!({}))],
                Some("succeeded"),
            )
            .unwrap();
        let ids: Vec<RunId> = store
            .unfinished_runs()
            .unwrap()
            .into_iter()
            .map(|r| r.run_id)
            .collect();
        assert_eq!(ids, ["r4", "r6"]);
    }
}
