//! Appending to and reading a run's event log.
//!
//! Events are numbered per run from 1 without gaps. A writer states the last seq it has seen;
//! if the log has moved on, the append fails as a whole, so two engines (or an engine and a
//! CLI command) can never interleave events into one run unnoticed.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde_json::Value;
use stepwise_core::ids::{EventSeq, RunId};
use stepwise_core::llm::{MAX_MICRO_USD, add_micro_usd};
pub use stepwise_core::records::StoredEvent;

use crate::blobs::{BlobResolver, encode_payload};
use crate::commands::{HandledCommand, mark_handled};
use crate::{SqliteStore, StoreError};

/// An event about to be appended; its seq is assigned by the store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_type: String,
    pub schema_version: u32,
    pub recorded_at_ms: i64,
    pub correlation_id: Option<String>,
    /// The seq of the event that caused this one, in the same run.
    pub causation_seq: Option<EventSeq>,
    pub payload: serde_json::Value,
}

/// An event as the log holds it, to append again (to another run or database).
impl From<StoredEvent> for NewEvent {
    fn from(stored: StoredEvent) -> NewEvent {
        NewEvent {
            event_type: stored.event_type,
            schema_version: stored.schema_version,
            recorded_at_ms: stored.recorded_at_ms,
            correlation_id: stored.correlation_id,
            causation_seq: stored.causation_seq,
            payload: stored.payload,
        }
    }
}

impl SqliteStore {
    /// Appends `events` to a run in one transaction, numbering them
    /// `expected_last_seq + 1 ..`, and returns the new last seq.
    ///
    /// Fails with [`StoreError::Conflict`], writing nothing, if the run's last seq is not
    /// `expected_last_seq`. Sets the run's `status` when given, and its `updated_at_ms` to the
    /// last event's `recorded_at_ms`. Empty `events` is a no-op (the status is not changed
    /// either) returning `expected_last_seq`.
    pub fn append(
        &mut self,
        run_id: &RunId,
        expected_last_seq: EventSeq,
        events: &[NewEvent],
        status: Option<&str>,
    ) -> Result<EventSeq, StoreError> {
        self.append_handling(run_id, expected_last_seq, events, status, &[])
    }

    /// [`SqliteStore::append`], and in the same transaction marks the commands that led to these
    /// events handled: a crash can never leave a command applied but still pending (it would be
    /// applied again) or marked applied without its events.
    ///
    /// With no events, only the commands are marked.
    pub fn append_handling(
        &mut self,
        run_id: &RunId,
        expected_last_seq: EventSeq,
        events: &[NewEvent],
        status: Option<&str>,
        handled: &[HandledCommand],
    ) -> Result<EventSeq, StoreError> {
        self.append_commands(run_id, expected_last_seq, events, status, handled)
            .map(|(last_seq, _)| last_seq)
    }

    /// [`SqliteStore::append_handling`], also returning the ids of the handled commands, in order.
    pub fn append_commands(
        &mut self,
        run_id: &RunId,
        expected_last_seq: EventSeq,
        events: &[NewEvent],
        status: Option<&str>,
        handled: &[HandledCommand],
    ) -> Result<(EventSeq, Vec<i64>), StoreError> {
        let Some(last_event) = events.last() else {
            let ids = self.handle_commands(handled)?;
            return Ok((expected_last_seq, ids));
        };
        // IMMEDIATE takes the write lock up front, so the seq check below cannot be overtaken
        // by another connection between reading and writing.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let found: Option<(u64, String)> = tx
            .prepare_cached("SELECT last_seq, status FROM runs WHERE run_id = ?1")?
            .query_row([run_id.as_str()], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
        let (actual, current_status) =
            found.ok_or_else(|| StoreError::RunNotFound(run_id.to_string()))?;
        let actual = EventSeq::new(actual);
        if actual != expected_last_seq {
            tracing::debug!(%run_id, %expected_last_seq, %actual, "append conflict");
            return Err(StoreError::Conflict {
                run_id: run_id.clone(),
                expected: expected_last_seq,
                actual,
            });
        }
        let last_seq = insert_events(&tx, run_id, expected_last_seq, events)?;
        // The status column (and its index) is written only when it changes: most commits of
        // a running run leave it as it is, and each page less is a write less.
        match status.filter(|&status| status != current_status) {
            Some(status) => tx
                .prepare_cached(
                    "UPDATE runs SET last_seq = ?2, updated_at_ms = ?3, status = ?4,
                                     change_seq = (SELECT MAX(change_seq) FROM runs) + 1
                     WHERE run_id = ?1",
                )?
                .execute(params![
                    run_id.as_str(),
                    last_seq.get(),
                    last_event.recorded_at_ms,
                    status
                ])?,
            None => tx
                .prepare_cached(
                    "UPDATE runs SET last_seq = ?2, updated_at_ms = ?3,
                                     change_seq = (SELECT MAX(change_seq) FROM runs) + 1
                     WHERE run_id = ?1",
                )?
                .execute(params![
                    run_id.as_str(),
                    last_seq.get(),
                    last_event.recorded_at_ms
                ])?,
        };
        let ids = mark_handled(&tx, handled)?;
        tx.commit()?;
        self.commits += 1;
        Ok((last_seq, ids))
    }

    /// The events of a run with seq greater than `after_seq`, in seq order, with payloads
    /// exactly as appended. A run that does not exist has no events.
    pub fn load_events(
        &self,
        run_id: &RunId,
        after_seq: EventSeq,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.load_events_page(run_id, after_seq, usize::MAX)
    }

    /// [`SqliteStore::load_events`], at most `limit` of them.
    pub fn load_events_page(
        &self,
        run_id: &RunId,
        after_seq: EventSeq,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut statement = self.conn.prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events
             WHERE run_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
        ))?;
        let rows = statement.query(params![run_id.as_str(), after_seq.get(), limit])?;
        self.read_events(run_id, rows)
    }

    /// The run's events with these seqs (those that exist), in seq order: a view showing a few
    /// events of a long log reads those and no others.
    pub fn load_events_at(
        &self,
        run_id: &RunId,
        seqs: &[EventSeq],
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut found = Vec::with_capacity(seqs.len());
        let mut statement = self.conn.prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE run_id = ?1 AND seq = ?2"
        ))?;
        for seq in seqs {
            let rows = statement.query(params![run_id.as_str(), seq.get()])?;
            found.extend(self.read_events(run_id, rows)?);
        }
        found.sort_by_key(|event| event.seq);
        found.dedup_by_key(|event| event.seq);
        Ok(found)
    }

    fn read_events(
        &self,
        run_id: &RunId,
        mut rows: rusqlite::Rows<'_>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut resolver = BlobResolver::new(&self.conn);
        let mut events = Vec::new();
        while let Some(row) = rows.next()? {
            let seq = EventSeq::new(row.get(0)?);
            // Parse straight from SQLite's buffer rather than copying the text out first.
            let stored = row.get_ref(6)?.as_str().map_err(|err| {
                rusqlite::Error::FromSqlConversionFailure(
                    6,
                    rusqlite::types::Type::Text,
                    err.into(),
                )
            })?;
            let mut payload: serde_json::Value =
                serde_json::from_str(stored).map_err(|source| StoreError::Json {
                    run_id: run_id.clone(),
                    seq,
                    error: source,
                })?;
            if BlobResolver::may_need(stored) {
                resolver.resolve(&mut payload)?;
            }
            events.push(StoredEvent {
                seq,
                event_type: row.get(1)?,
                schema_version: row.get(2)?,
                recorded_at_ms: row.get(3)?,
                correlation_id: row.get(4)?,
                causation_seq: row.get::<_, Option<u64>>(5)?.map(EventSeq::new),
                payload,
            });
        }
        Ok(events)
    }
}

const EVENT_COLUMNS: &str =
    "seq, event_type, schema_version, recorded_at_ms, correlation_id, causation_seq, payload";

/// Inserts `events` as seqs `after_seq + 1 ..` (blobs included) and returns the last seq.
/// The caller owns the transaction and has checked that `after_seq` is the run's last seq.
pub(crate) fn insert_events(
    conn: &Connection,
    run_id: &RunId,
    after_seq: EventSeq,
    events: &[NewEvent],
) -> Result<EventSeq, StoreError> {
    let mut statement = conn.prepare_cached(
        "INSERT INTO events (run_id, seq, event_type, schema_version, recorded_at_ms,
                             correlation_id, causation_seq, payload, chain)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    let mut seq = after_seq;
    let mut cost: u64 = 0;
    let mut previous = crate::chain::link_at(conn, run_id, after_seq)?;
    for event in events {
        seq = seq.next();
        let payload = encode_payload(conn, run_id, seq, &event.payload)?;
        let link = crate::chain::link_event(&mut previous, run_id, seq, event, &payload);
        statement.execute(params![
            run_id.as_str(),
            seq.get(),
            event.event_type,
            event.schema_version,
            event.recorded_at_ms,
            event.correlation_id,
            event.causation_seq.map(EventSeq::get),
            payload,
            &link[..],
        ])?;
        cost = add_micro_usd(cost, reply_cost(event));
    }
    // The run's cost moves with its log, in the same transaction (no trigger: see migration
    // V5). Both figures are at most MAX_MICRO_USD, so their sum fits an i64.
    if cost > 0 {
        let ceiling = i64::try_from(MAX_MICRO_USD).unwrap_or(i64::MAX);
        let cost = i64::try_from(cost).unwrap_or(ceiling);
        conn.prepare_cached(
            "UPDATE runs SET cost_micro_usd = MIN(?2, cost_micro_usd + ?3) WHERE run_id = ?1",
        )?
        .execute(params![run_id.as_str(), ceiling, cost])?;
    }
    Ok(seq)
}

/// What a model reply among the events cost (0 for any other event): its
/// `result.cost_micro_usd`, a negative figure as nothing and any figure at most
/// [`MAX_MICRO_USD`], as the trigger of migration V4 counted it.
pub(crate) fn reply_cost(event: &NewEvent) -> u64 {
    if event.event_type != "OperationSucceeded" {
        return 0;
    }
    let Some(result) = event.payload.get("result") else {
        return 0;
    };
    if result.get("kind").and_then(Value::as_str) != Some("llm_replied") {
        return 0;
    }
    let cost = match result.get("cost_micro_usd") {
        Some(Value::Number(n)) => n
            .as_u64()
            // `as` saturates a float into the integer's range; NaN and negatives become 0.
            .or_else(|| n.as_f64().map(|x| x.max(0.0) as u64))
            .unwrap_or(0),
        _ => 0,
    };
    cost.min(MAX_MICRO_USD)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use stepwise_core::run::RunStatus;

    use super::*;
    use crate::test_support::{count, event, new_run, rid, seq, temp_store};

    #[test]
    fn create_append_and_load_round_trip() {
        let (_dir, mut store) = temp_store();
        let first = NewEvent {
            correlation_id: Some("op-1".into()),
            ..event("RunStarted", json!({"inputs": {"n": 3}}))
        };
        let last = store
            .create_run(&new_run("run-1"), std::slice::from_ref(&first))
            .unwrap();
        assert_eq!(last, seq(1));
        let second = NewEvent {
            causation_seq: Some(seq(1)),
            schema_version: 2,
            recorded_at_ms: 2_000,
            ..event("StepReady", json!({"step": "build"}))
        };
        let third = event("StepSucceeded", json!(["a", 1, null]));
        let last = store
            .append(
                &rid("run-1"),
                seq(1),
                &[second.clone(), third.clone()],
                Some("running"),
            )
            .unwrap();
        assert_eq!(last, seq(3));

        let loaded = store.load_events(&rid("run-1"), seq(0)).unwrap();
        let expected: Vec<StoredEvent> = [first, second, third]
            .into_iter()
            .zip(1..)
            .map(|(e, n)| StoredEvent {
                seq: seq(n),
                event_type: e.event_type,
                schema_version: e.schema_version,
                recorded_at_ms: e.recorded_at_ms,
                correlation_id: e.correlation_id,
                causation_seq: e.causation_seq,
                payload: e.payload,
            })
            .collect();
        assert_eq!(loaded, expected);
        assert_eq!(
            store.load_events(&rid("run-1"), seq(2)).unwrap(),
            expected[2..]
        );
        assert!(store.load_events(&rid("run-1"), seq(3)).unwrap().is_empty());
        assert!(
            store
                .load_events(&rid("no-such-run"), seq(0))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn the_run_row_sums_what_model_replies_cost() {
        let (_dir, mut store) = temp_store();
        store.create_run(&new_run("run-1"), &[]).unwrap();
        let reply = |cost: u64| {
            event(
                "OperationSucceeded",
                json!({"op": 2, "result": {"kind": "llm_replied", "text": "x", "cost_micro_usd": cost}}),
            )
        };
        let other = event(
            "OperationSucceeded",
            json!({"op": 3, "result": {"kind": "file_read", "cost_micro_usd": 999}}),
        );
        store
            .append(&rid("run-1"), seq(0), &[reply(120), other, reply(30)], None)
            .unwrap();
        assert_eq!(
            store.run(&rid("run-1")).unwrap().unwrap().cost_micro_usd,
            150
        );

        // A hostile figure, twice: the sum stays an integer, at the ceiling.
        store
            .append(
                &rid("run-1"),
                seq(3),
                &[reply(u64::MAX), reply(u64::MAX)],
                None,
            )
            .unwrap();
        assert_eq!(
            store.run(&rid("run-1")).unwrap().unwrap().cost_micro_usd,
            stepwise_core::llm::MAX_MICRO_USD
        );
    }

    #[test]
    fn appending_an_event_runs_no_trigger() {
        // Any row trigger on inserting an event costs every event of every run (migration
        // V5); the run's figures are kept by the append itself.
        let (_dir, store) = temp_store();
        let triggers: Vec<String> = store
            .conn
            .prepare(
                "SELECT name FROM sqlite_master
                 WHERE type = 'trigger' AND tbl_name = 'events' AND sql LIKE '%INSERT%'",
            )
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(triggers, Vec::<String>::new());
    }

    #[test]
    fn a_run_created_with_replies_counts_their_cost_as_the_trigger_did() {
        let (_dir, mut store) = temp_store();
        let reply = |cost: Value| {
            event(
                "OperationSucceeded",
                json!({"op": 2, "result": {"kind": "llm_replied", "cost_micro_usd": cost}}),
            )
        };
        store
            .create_run(
                &new_run("run-1"),
                &[reply(json!(7)), reply(json!(-5)), reply(json!(2.9))],
            )
            .unwrap();
        assert_eq!(store.run(&rid("run-1")).unwrap().unwrap().cost_micro_usd, 9);
    }

    #[test]
    fn seqs_continue_across_appends_and_the_run_row_follows() {
        let (_dir, mut store) = temp_store();
        assert_eq!(store.create_run(&new_run("run-1"), &[]).unwrap(), seq(0));
        let mut last = seq(0);
        for batch in 1..=4u64 {
            let events: Vec<NewEvent> = (0..batch)
                .map(|i| NewEvent {
                    recorded_at_ms: i64::try_from(batch * 100 + i).unwrap(),
                    ..event("Tick", json!({"batch": batch, "i": i}))
                })
                .collect();
            last = store.append(&rid("run-1"), last, &events, None).unwrap();
        }
        assert_eq!(last, seq(10));
        let seqs: Vec<u64> = store
            .load_events(&rid("run-1"), seq(0))
            .unwrap()
            .iter()
            .map(|e| e.seq.get())
            .collect();
        assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
        let run = store.run(&rid("run-1")).unwrap().unwrap();
        assert_eq!(run.last_seq, seq(10));
        assert_eq!(run.updated_at_ms, 403);
        assert_eq!(run.status, RunStatus::Running);

        store
            .append(
                &rid("run-1"),
                seq(10),
                &[event("RunSucceeded", json!({}))],
                Some("succeeded"),
            )
            .unwrap();
        assert_eq!(
            store.run(&rid("run-1")).unwrap().unwrap().status,
            RunStatus::Succeeded
        );
    }

    #[test]
    fn empty_append_is_a_no_op() {
        let (_dir, mut store) = temp_store();
        store
            .create_run(&new_run("run-1"), &[event("A", json!(1))])
            .unwrap();
        assert_eq!(
            store
                .append(&rid("run-1"), seq(1), &[], Some("failed"))
                .unwrap(),
            seq(1)
        );
        let run = store.run(&rid("run-1")).unwrap().unwrap();
        assert_eq!((run.status.as_str(), run.last_seq), ("running", seq(1)));
    }

    #[test]
    fn a_stale_writer_gets_a_conflict_and_writes_nothing() {
        let (_dir, mut store) = temp_store();
        store
            .create_run(&new_run("run-1"), &[event("A", json!(1))])
            .unwrap();
        store
            .append(&rid("run-1"), seq(1), &[event("B", json!(2))], None)
            .unwrap();
        let before = store.run(&rid("run-1")).unwrap();

        let stale = [event("C", json!({"content": "would be a blob"}))];
        let err = store
            .append(&rid("run-1"), seq(1), &stale, Some("failed"))
            .unwrap_err();
        match err {
            StoreError::Conflict {
                run_id,
                expected,
                actual,
            } => {
                assert_eq!(
                    (run_id.as_str(), expected, actual),
                    ("run-1", seq(1), seq(2))
                );
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert_eq!(store.run(&rid("run-1")).unwrap(), before);
        assert_eq!(store.load_events(&rid("run-1"), seq(0)).unwrap().len(), 2);
        assert_eq!(count(&store, "SELECT COUNT(*) FROM blobs"), 0);
        // The connection is usable afterwards: the failed transaction was rolled back.
        assert_eq!(
            store.append(&rid("run-1"), seq(2), &stale, None).unwrap(),
            seq(3)
        );
    }

    #[test]
    fn a_second_connection_sees_the_conflict() {
        let (dir, mut store) = temp_store();
        store
            .create_run(&new_run("run-1"), &[event("A", json!(1))])
            .unwrap();
        let mut other =
            SqliteStore::open(&dir.path().join("stepwise.db"), crate::Durability::Normal).unwrap();
        other
            .append(&rid("run-1"), seq(1), &[event("B", json!(2))], None)
            .unwrap();
        let err = store
            .append(&rid("run-1"), seq(1), &[event("B'", json!(2))], None)
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict { actual, .. } if actual == seq(2)));
    }

    #[test]
    fn appending_to_an_unknown_run_fails() {
        let (_dir, mut store) = temp_store();
        let err = store
            .append(&rid("ghost"), seq(0), &[event("A", json!(1))], None)
            .unwrap_err();
        assert!(matches!(err, StoreError::RunNotFound(id) if id == "ghost"));
    }

    #[test]
    fn events_cannot_be_updated_or_deleted() {
        let (_dir, mut store) = temp_store();
        store
            .create_run(&new_run("run-1"), &[event("A", json!(1))])
            .unwrap();
        let update = store
            .conn
            .execute("UPDATE events SET payload = '2' WHERE seq = 1", []);
        assert!(
            update
                .unwrap_err()
                .to_string()
                .contains("events are append-only")
        );
        let delete = store
            .conn
            .execute("DELETE FROM events WHERE run_id = 'run-1'", []);
        assert!(
            delete
                .unwrap_err()
                .to_string()
                .contains("events are append-only")
        );
        assert_eq!(
            store.load_events(&rid("run-1"), seq(0)).unwrap()[0].payload,
            json!(1)
        );
    }

    /// Not a benchmark, just a guard against accidentally quadratic or chatty loading.
    /// Run with `cargo test -p stepwise-store --release -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing; run explicitly"]
    fn loading_ten_thousand_events_is_fast() {
        let (_dir, mut store) = temp_store();
        store.create_run(&new_run("run-1"), &[]).unwrap();
        let events: Vec<NewEvent> = (0..10_000)
            .map(|i| {
                event(
                    "StepSucceeded",
                    json!({"step": format!("step-{i}"), "output": {"n": i, "ok": true}}),
                )
            })
            .collect();
        store.append(&rid("run-1"), seq(0), &events, None).unwrap();
        let started = std::time::Instant::now();
        let loaded = store.load_events(&rid("run-1"), seq(0)).unwrap();
        let elapsed = started.elapsed();
        eprintln!("loaded {} events in {elapsed:?}", loaded.len());
        assert_eq!(loaded.len(), 10_000);
    }
}
