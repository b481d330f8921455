//! The event log made tamper-evident: each event stores a hash that chains it to the one
//! before (`events.chain`), so that changing, removing or reordering any recorded event breaks
//! every hash after it. `SqliteStore::verify_run` recomputes the chain and checks every blob the log
//! names; an export carries the last hash, which a reader checks against `stepwise verify`.
//!
//! An event's link is the SHA-256 of the link before it (nothing for a run's first event)
//! followed by the row as stored, each field as `<byte length>:<bytes>` (a missing one as `-`),
//! in this order: run id, seq (decimal), event type, schema version (decimal), recorded at (ms,
//! 8 bytes little-endian), correlation id, causation seq (decimal), payload (its stored text: large strings are blob references, and the blobs
//! are checked by their names). Links are stored as 32 bytes and shown as `sha256:<hex>`.

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use stepwise_core::hash::ContentHasher;
use stepwise_core::ids::{EventSeq, RunId};

use crate::{SqliteStore, StoreError};

/// One stored row, as the chain hashes it.
pub(crate) struct Row<'a> {
    pub(crate) run_id: &'a str,
    pub(crate) seq: u64,
    pub(crate) event_type: &'a str,
    pub(crate) schema_version: u32,
    pub(crate) recorded_at_ms: i64,
    pub(crate) correlation_id: Option<&'a str>,
    pub(crate) causation_seq: Option<u64>,
    pub(crate) payload: &'a str,
}

/// The link of `row`, after `previous` (empty for a run's first event).
pub(crate) fn link(previous: &[u8], row: &Row<'_>) -> [u8; 32] {
    let mut hasher = ContentHasher::default();
    hasher.update(previous);
    let mut field = |bytes: Option<&[u8]>| match bytes {
        Some(bytes) => {
            hasher.update(decimal(bytes.len() as u64).as_bytes());
            hasher.update(b":");
            hasher.update(bytes);
        }
        None => hasher.update(b"-"),
    };
    field(Some(row.run_id.as_bytes()));
    field(Some(decimal(row.seq).as_bytes()));
    field(Some(row.event_type.as_bytes()));
    field(Some(decimal(u64::from(row.schema_version)).as_bytes()));
    field(Some(row.recorded_at_ms.to_le_bytes().as_slice()));
    field(row.correlation_id.map(str::as_bytes));
    field(
        row.causation_seq
            .map(decimal)
            .as_ref()
            .map(|d| d.as_bytes()),
    );
    field(Some(row.payload.as_bytes()));
    hasher.finish_bytes()
}

/// The link of `event`, appended as `seq` with its stored `payload`, after `previous`; it
/// becomes `previous` for the next event.
pub(crate) fn link_event(
    previous: &mut Vec<u8>,
    run_id: &RunId,
    seq: EventSeq,
    event: &crate::NewEvent,
    payload: &str,
) -> [u8; 32] {
    let link = link(
        previous,
        &Row {
            run_id: run_id.as_str(),
            seq: seq.get(),
            event_type: &event.event_type,
            schema_version: event.schema_version,
            recorded_at_ms: event.recorded_at_ms,
            correlation_id: event.correlation_id.as_deref(),
            causation_seq: event.causation_seq.map(EventSeq::get),
            payload,
        },
    );
    previous.clear();
    previous.extend_from_slice(&link);
    link
}

/// A number's decimal digits, without allocating.
fn decimal(mut n: u64) -> Decimal {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    Decimal { digits, at }
}

struct Decimal {
    digits: [u8; 20],
    at: usize,
}

impl Decimal {
    fn as_bytes(&self) -> &[u8] {
        &self.digits[self.at..]
    }
}

/// The link of event `seq` of a run (empty before its first event).
pub(crate) fn link_at(
    conn: &Connection,
    run_id: &RunId,
    seq: EventSeq,
) -> Result<Vec<u8>, StoreError> {
    if seq == EventSeq::ZERO {
        return Ok(Vec::new());
    }
    let found: Option<Option<Vec<u8>>> = conn
        .prepare_cached("SELECT chain FROM events WHERE run_id = ?1 AND seq = ?2")?
        .query_row(params![run_id.as_str(), seq.get()], |row| row.get(0))
        .optional()?;
    Ok(found.flatten().unwrap_or_default())
}

/// A run's events as stored, in seq order, each with its stored link.
const EVENTS_OF_RUN: &str =
    "SELECT seq, event_type, schema_version, recorded_at_ms, correlation_id,
            causation_seq, payload, chain
     FROM events WHERE run_id = ?1 ORDER BY seq";

/// One event row read back, with its stored link.
pub(crate) struct StoredRow {
    pub(crate) seq: u64,
    pub(crate) event_type: String,
    pub(crate) schema_version: u32,
    pub(crate) recorded_at_ms: i64,
    pub(crate) correlation_id: Option<String>,
    pub(crate) causation_seq: Option<u64>,
    pub(crate) payload: String,
    pub(crate) chain: Option<Vec<u8>>,
}

impl StoredRow {
    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredRow> {
        Ok(StoredRow {
            seq: r.get(0)?,
            event_type: r.get(1)?,
            schema_version: r.get(2)?,
            recorded_at_ms: r.get(3)?,
            correlation_id: r.get(4)?,
            causation_seq: r.get(5)?,
            payload: r.get(6)?,
            chain: r.get(7)?,
        })
    }

    /// Its link after `previous`.
    fn link(&self, run_id: &str, previous: &[u8]) -> [u8; 32] {
        link(
            previous,
            &Row {
                run_id,
                seq: self.seq,
                event_type: &self.event_type,
                schema_version: self.schema_version,
                recorded_at_ms: self.recorded_at_ms,
                correlation_id: self.correlation_id.as_deref(),
                causation_seq: self.causation_seq,
                payload: &self.payload,
            },
        )
    }
}

/// Computes the chain of every run whose events have none (a database from before it).
pub(crate) fn fill_missing(conn: &Connection) -> Result<(), StoreError> {
    let runs: Vec<String> = conn
        .prepare("SELECT DISTINCT run_id FROM events WHERE chain IS NULL")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let mut update = conn.prepare("UPDATE events SET chain = ?3 WHERE run_id = ?1 AND seq = ?2")?;
    let mut rows = conn.prepare(EVENTS_OF_RUN)?;
    for run_id in runs {
        let stored: Vec<StoredRow> = rows
            .query_map([&run_id], StoredRow::read)?
            .collect::<Result<_, _>>()?;
        let mut previous: Vec<u8> = Vec::new();
        for row in &stored {
            previous = row.link(&run_id, &previous).to_vec();
            update.execute(params![run_id, row.seq, previous])?;
        }
    }
    Ok(())
}

/// What checking a run's log found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verified {
    /// Events checked.
    pub events: u64,
    /// The last event's link: what an export of the run carries.
    pub last_link: Option<String>,
    /// Blobs the log names, checked.
    pub blobs: u64,
    /// Where the chain breaks, if it does: the first event whose stored link is not the one
    /// its content and the event before it make.
    pub broken_at: Option<EventSeq>,
    /// Blobs the log names that are missing or whose content does not match their name.
    pub bad_blobs: Vec<String>,
}

impl Verified {
    pub fn is_intact(&self) -> bool {
        self.broken_at.is_none() && self.bad_blobs.is_empty()
    }
}

impl SqliteStore {
    /// Recomputes a run's chain from its first event and checks every blob its log names (its
    /// large strings, and the file versions its checkpoints kept).
    pub fn verify_run(&self, run_id: &RunId) -> Result<Verified, StoreError> {
        let mut rows = self.conn.prepare(EVENTS_OF_RUN)?;
        let mut query = rows.query([run_id.as_str()])?;
        let mut check = ChainCheck::new(run_id);
        while let Some(r) = query.next()? {
            check.row(StoredRow::read(r)?);
        }
        // Events removed from the end leave the chain whole: the run's row still says how many
        // there were.
        let last_seq: Option<u64> = self
            .conn
            .query_row(
                "SELECT last_seq FROM runs WHERE run_id = ?1",
                [run_id.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        check.finish(last_seq, &mut |name| self.get_blob(name))
    }
}

/// Checking one run's chain, a row at a time in seq order (any backend).
pub(crate) struct ChainCheck<'r> {
    run_id: &'r RunId,
    verified: Verified,
    previous: Vec<u8>,
    names: std::collections::BTreeSet<String>,
    expected_seq: u64,
}

impl<'r> ChainCheck<'r> {
    pub(crate) fn new(run_id: &'r RunId) -> Self {
        ChainCheck {
            run_id,
            verified: Verified {
                events: 0,
                last_link: None,
                blobs: 0,
                broken_at: None,
                bad_blobs: Vec::new(),
            },
            previous: Vec::new(),
            names: std::collections::BTreeSet::new(),
            expected_seq: 1,
        }
    }

    /// The next stored row of the run.
    pub(crate) fn row(&mut self, row: StoredRow) {
        let verified = &mut self.verified;
        let seq = row.seq;
        let computed = row.link(self.run_id.as_str(), &self.previous);
        let (stored, payload) = (row.chain, row.payload);
        verified.events += 1;
        // A missing event breaks the chain where it is missing.
        if verified.broken_at.is_none()
            && (seq != self.expected_seq || stored.as_deref() != Some(computed.as_slice()))
        {
            verified.broken_at = Some(EventSeq::new(self.expected_seq.min(seq)));
        }
        self.expected_seq = seq.saturating_add(1);
        if let Ok(value) = serde_json::from_str::<Value>(&payload) {
            blob_names(&value, &mut self.names);
        }
        self.previous = stored.unwrap_or_else(|| computed.to_vec());
        verified.last_link = Some(stepwise_core::hash::named(&self.previous));
    }

    /// What was found, given the last seq the run's row records and a way to read blobs.
    pub(crate) fn finish(
        self,
        last_seq: Option<u64>,
        get_blob: &mut crate::blobs::BlobRead<'_>,
    ) -> Result<Verified, StoreError> {
        let mut verified = self.verified;
        let expected_seq = self.expected_seq;
        if verified.broken_at.is_none()
            && let Some(last_seq) = last_seq
            && last_seq != expected_seq.saturating_sub(1)
        {
            verified.broken_at = Some(EventSeq::new(expected_seq.min(last_seq.saturating_add(1))));
        }
        for name in self.names {
            verified.blobs += 1;
            let intact = get_blob(&name)?
                .is_some_and(|bytes| stepwise_core::hash::content_hash(&bytes) == name);
            if !intact {
                verified.bad_blobs.push(name);
            }
        }
        Ok(verified)
    }
}

/// The blobs a stored payload names: its blob references, and the kept versions of files.
fn blob_names(value: &Value, names: &mut std::collections::BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            // A payload's own object that looks like a reference is stored wrapped
            // (`{"$literal": {...}}`): its key names no blob, though its values may hold some.
            if let Some(Value::Object(literal)) = map.get(crate::blobs::LITERAL_KEY)
                && map.len() == 1
            {
                for item in literal.values() {
                    blob_names(item, names);
                }
                return;
            }
            if let Some(Value::String(name)) = map.get(crate::blobs::BLOB_KEY)
                && map.len() == 1
            {
                names.insert(name.clone());
            }
            if let (Some(Value::String(hash)), Some(Value::Bool(true))) =
                (map.get("hash"), map.get("stored"))
            {
                names.insert(hash.clone());
            }
            for item in map.values() {
                blob_names(item, names);
            }
        }
        Value::Array(items) => {
            for item in items {
                blob_names(item, names);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use crate::test_support::{event, new_run, rid, seq, temp_store};

    fn tamper(store: &crate::SqliteStore, sql: &str) {
        store
            .conn
            .execute_batch(&format!(
                "DROP TRIGGER IF EXISTS events_no_update; DROP TRIGGER IF EXISTS events_no_delete;
                 DROP TRIGGER IF EXISTS blobs_no_update; {sql}"
            ))
            .unwrap();
    }

    fn recorded(store: &mut crate::SqliteStore) {
        let big = "x".repeat(crate::INLINE_LIMIT + 10);
        store
            .create_run(
                &new_run("run-1"),
                &[
                    event("A", json!({"n": 1})),
                    event("B", json!({"text": big})),
                ],
            )
            .unwrap();
        store
            .append(
                &rid("run-1"),
                seq(2),
                &[event("C", json!({"n": 3})), event("D", json!({"n": 4}))],
                None,
            )
            .unwrap();
    }

    #[test]
    fn an_intact_log_verifies_and_its_last_link_names_all_of_it() {
        let (_dir, mut store) = temp_store();
        recorded(&mut store);
        let verified = store.verify_run(&rid("run-1")).unwrap();
        assert!(verified.is_intact(), "{verified:?}");
        assert_eq!((verified.events, verified.blobs), (4, 1));
        let last = verified.last_link.unwrap();
        assert!(last.starts_with("sha256:"));
        // Another run with the same events has another chain: the run's id is in every link.
        store
            .create_run(&new_run("run-2"), &[event("A", json!({"n": 1}))])
            .unwrap();
        let other = store.verify_run(&rid("run-2")).unwrap();
        let first: Vec<u8> = store
            .conn
            .query_row(
                "SELECT chain FROM events WHERE run_id = 'run-1' AND seq = 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_ne!(other.last_link.unwrap(), stepwise_core::hash::named(&first));
    }

    #[test]
    fn a_changed_byte_breaks_the_chain_at_that_event() {
        let (_dir, mut store) = temp_store();
        recorded(&mut store);
        tamper(
            &store,
            "UPDATE events SET payload = '{\"n\":5}' WHERE run_id = 'run-1' AND seq = 3;",
        );
        assert_eq!(
            store.verify_run(&rid("run-1")).unwrap().broken_at,
            Some(seq(3))
        );
    }

    #[test]
    fn a_log_cut_short_at_its_end_is_found() {
        let (_dir, mut store) = temp_store();
        recorded(&mut store);
        tamper(
            &store,
            "DELETE FROM events WHERE run_id = 'run-1' AND seq >= 3;",
        );
        assert_eq!(
            store.verify_run(&rid("run-1")).unwrap().broken_at,
            Some(seq(3))
        );
        tamper(&store, "DELETE FROM events WHERE run_id = 'run-1';");
        assert_eq!(
            store.verify_run(&rid("run-1")).unwrap().broken_at,
            Some(seq(1))
        );
    }

    #[test]
    fn a_removed_event_or_a_changed_blob_is_found() {
        let (_dir, mut store) = temp_store();
        recorded(&mut store);
        tamper(
            &store,
            "DELETE FROM events WHERE run_id = 'run-1' AND seq = 2;",
        );
        assert_eq!(
            store.verify_run(&rid("run-1")).unwrap().broken_at,
            Some(seq(2))
        );

        let (_dir, mut store) = temp_store();
        recorded(&mut store);
        tamper(&store, "UPDATE blobs SET content = x'00';");
        let verified = store.verify_run(&rid("run-1")).unwrap();
        assert_eq!(verified.broken_at, None);
        assert_eq!(verified.bad_blobs.len(), 1);
        assert!(!verified.is_intact());
    }

    #[test]
    fn runs_recorded_before_the_chain_get_it_when_the_database_is_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let mut store = crate::SqliteStore::open(&path, crate::Durability::Normal).unwrap();
            recorded(&mut store);
            let expected = store.verify_run(&rid("run-1")).unwrap().last_link;
            // As a database from before version 7 holds them: no links.
            store
                .conn
                .execute_batch(
                    "DROP TRIGGER events_no_update;
                     UPDATE events SET chain = NULL;
                     ALTER TABLE events DROP COLUMN chain;
                     CREATE TRIGGER events_no_update BEFORE UPDATE ON events
                     BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
                     DROP INDEX runs_parent;
                     ALTER TABLE runs DROP COLUMN parent_run_id;
                     DROP TABLE memory_entries;
                     PRAGMA user_version = 6;",
                )
                .unwrap();
            drop(store);
            let store = crate::SqliteStore::open(&path, crate::Durability::Normal).unwrap();
            let verified = store.verify_run(&rid("run-1")).unwrap();
            assert!(verified.is_intact(), "{verified:?}");
            assert_eq!(verified.last_link, expected);
            // Version 8 came after: the run has no parent.
            assert_eq!(store.run(&rid("run-1")).unwrap().unwrap().parent, None);
            // And the log is append-only again.
            assert!(
                store
                    .conn
                    .execute("UPDATE events SET payload = '{}'", [])
                    .is_err()
            );
        }
    }
}
