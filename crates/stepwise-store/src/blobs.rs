//! Content-addressed blobs, and moving large strings out of event payloads into them.
//!
//! On write, every JSON string at least [`INLINE_LIMIT`] bytes long, wherever it is (what
//! a field is called plays no part), is stored once in `blobs` and replaced
//! in the stored payload by `{"$blob": "sha256:<hex>"}`. On read the reference is replaced by
//! the text again, so callers get back exactly the payload they appended.
//!
//! So that a payload which itself contains an object with the single key `$blob` (or
//! `$literal`) also round-trips, such objects are stored wrapped as `{"$literal": <object>}`
//! and unwrapped on read. Nothing else in a payload is looked at.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value};
use stepwise_core::ids::{EventSeq, RunId};

use crate::{SqliteStore, StoreError};

/// Strings at least this many bytes long are stored as blobs wherever they appear.
pub const INLINE_LIMIT: usize = 1024;

/// The key of a blob reference object.
pub(crate) const BLOB_KEY: &str = "$blob";
/// The key wrapping a payload object that would otherwise be mistaken for a reference.
pub(crate) const LITERAL_KEY: &str = "$literal";

impl SqliteStore {
    /// Stores bytes under their content hash (a no-op if already present) and returns the
    /// hash, `sha256:<hex>`.
    pub fn put_blob(&mut self, bytes: &[u8]) -> Result<String, StoreError> {
        insert_blob(&self.conn, bytes)
    }

    /// Stores contents whose hashes the caller has computed (`sha256:<hex>` of each, as
    /// [`SqliteStore::put_blob`] names them), in one transaction: a workspace checkpoint's.
    pub fn put_hashed_blobs(&mut self, blobs: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO blobs (hash, size, content) VALUES (?1, ?2, ?3)",
            )?;
            for (hash, bytes) in blobs {
                debug_assert_eq!(*hash, stepwise_core::hash::content_hash(bytes));
                let size = i64::try_from(bytes.len()).unwrap_or(i64::MAX);
                insert.execute(params![hash, size, bytes])?;
            }
        }
        tx.commit()?;
        self.commits += 1;
        Ok(())
    }

    /// The bytes stored under `hash`, if any.
    pub fn get_blob(&self, hash: &str) -> Result<Option<Vec<u8>>, StoreError> {
        select_blob(&self.conn, hash)
    }
}

fn insert_blob(conn: &Connection, bytes: &[u8]) -> Result<String, StoreError> {
    let hash = stepwise_core::hash::content_hash(bytes);
    let size = i64::try_from(bytes.len()).unwrap_or(i64::MAX);
    conn.prepare_cached("INSERT OR IGNORE INTO blobs (hash, size, content) VALUES (?1, ?2, ?3)")?
        .execute(params![hash, size, bytes])?;
    Ok(hash)
}

fn select_blob(conn: &Connection, hash: &str) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT content FROM blobs WHERE hash = ?1")?
        .query_row([hash], |row| row.get(0))
        .optional()?)
}

/// Serialises the payload of event `seq` of `run_id` for the `events` table, storing its
/// large strings as blobs through `conn` (the append's transaction, so they commit or roll back
/// with the events).
pub(crate) fn encode_payload(
    conn: &Connection,
    run_id: &RunId,
    seq: EventSeq,
    payload: &Value,
) -> Result<String, StoreError> {
    encode_payload_with(run_id, seq, payload, &mut |text| {
        insert_blob(conn, text.as_bytes())
    })
}

/// [`encode_payload`], storing each large string through `store_blob` (which returns its
/// name): for a backend other than SQLite.
pub(crate) fn encode_payload_with(
    run_id: &RunId,
    seq: EventSeq,
    payload: &Value,
    store_blob: &mut dyn FnMut(&str) -> Result<String, StoreError>,
) -> Result<String, StoreError> {
    let json_error = |source| StoreError::Json {
        run_id: run_id.clone(),
        seq,
        error: source,
    };
    // Most payloads have nothing to externalise: serialise those without copying them.
    if !needs_rewrite(payload) {
        return serde_json::to_string(payload).map_err(json_error);
    }
    let mut rewritten = payload.clone();
    externalise(&mut rewritten, store_blob)?;
    serde_json::to_string(&rewritten).map_err(json_error)
}

/// Whether `value` holds anything [`externalise`] would change.
fn needs_rewrite(value: &Value) -> bool {
    match value {
        Value::String(text) => goes_to_blob(text),
        Value::Array(items) => items.iter().any(needs_rewrite),
        Value::Object(map) => looks_reserved(map) || map.values().any(needs_rewrite),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

fn goes_to_blob(text: &str) -> bool {
    text.len() >= INLINE_LIMIT
}

/// An object the reader would take for a blob reference or a wrapped literal.
fn looks_reserved(map: &Map<String, Value>) -> bool {
    map.len() == 1 && (map.contains_key(BLOB_KEY) || map.contains_key(LITERAL_KEY))
}

/// Replaces blob-worthy strings in `value` by references, storing each through `store`.
fn externalise(
    value: &mut Value,
    store: &mut dyn FnMut(&str) -> Result<String, StoreError>,
) -> Result<(), StoreError> {
    match value {
        Value::String(text) => {
            if goes_to_blob(text) {
                let hash = store(text)?;
                *value = blob_reference(hash);
            }
        }
        Value::Array(items) => {
            for item in items {
                externalise(item, store)?;
            }
        }
        Value::Object(map) => {
            for child in map.values_mut() {
                externalise(child, store)?;
            }
            if looks_reserved(map) {
                let original = std::mem::take(map);
                map.insert(LITERAL_KEY.to_owned(), Value::Object(original));
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
    Ok(())
}

fn blob_reference(hash: String) -> Value {
    let mut map = Map::with_capacity(1);
    map.insert(BLOB_KEY.to_owned(), Value::String(hash));
    Value::Object(map)
}

/// Resolves blob references in payloads read back from `events`, caching each blob's text so
/// that a run which snapshots the same file many times reads it once.
pub(crate) struct BlobResolver<'c> {
    fetch: BlobFetch<'c>,
    cache: HashMap<String, String>,
}

/// Reads one blob by its name from a backend.
pub(crate) type BlobFetch<'c> = Box<BlobRead<'c>>;

/// Reads one blob by its name: `None` when there is none.
pub(crate) type BlobRead<'c> = dyn FnMut(&str) -> Result<Option<Vec<u8>>, StoreError> + 'c;

impl<'c> BlobResolver<'c> {
    pub(crate) fn new(conn: &'c Connection) -> Self {
        BlobResolver::with_fetch(Box::new(move |hash| select_blob(conn, hash)))
    }

    /// A resolver reading blobs through `fetch`: for a backend other than SQLite.
    pub(crate) fn with_fetch(fetch: BlobFetch<'c>) -> Self {
        BlobResolver {
            fetch,
            cache: HashMap::new(),
        }
    }

    /// Whether a stored payload's text may hold references or wrapped literals at all.
    ///
    /// The text was written by `serde_json`, which never escapes `$`, so a reserved key always
    /// appears literally.
    pub(crate) fn may_need(stored: &str) -> bool {
        stored.contains("\"$")
    }

    /// Puts the blobs' text back into a payload decoded from the `events` table.
    pub(crate) fn resolve(&mut self, value: &mut Value) -> Result<(), StoreError> {
        match value {
            Value::Object(map) if map.len() == 1 => {
                if let Some(Value::String(hash)) = map.get(BLOB_KEY) {
                    *value = Value::String(self.text(hash)?);
                } else if let Some(Value::Object(inner)) = map.get_mut(LITERAL_KEY) {
                    // The wrapped object is the payload's own: resolve inside it, not it.
                    for child in inner.values_mut() {
                        self.resolve(child)?;
                    }
                    let inner = std::mem::take(inner);
                    *value = Value::Object(inner);
                } else {
                    for child in map.values_mut() {
                        self.resolve(child)?;
                    }
                }
            }
            Value::Object(map) => {
                for child in map.values_mut() {
                    self.resolve(child)?;
                }
            }
            Value::Array(items) => {
                for item in items {
                    self.resolve(item)?;
                }
            }
            Value::String(_) | Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
        Ok(())
    }

    fn text(&mut self, hash: &str) -> Result<String, StoreError> {
        if let Some(text) = self.cache.get(hash) {
            return Ok(text.clone());
        }
        let bytes = (self.fetch)(hash)?.ok_or_else(|| StoreError::MissingBlob(hash.to_owned()))?;
        let text =
            String::from_utf8(bytes).map_err(|_| StoreError::BlobNotText(hash.to_owned()))?;
        self.cache.insert(hash.to_owned(), text.clone());
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::test_support::{count, event, new_run, rid, seq, temp_store};

    fn round_trip(payload: Value) -> (Value, String) {
        let (_dir, mut store) = temp_store();
        store
            .create_run(&new_run("run-1"), &[event("Started", payload)])
            .unwrap();
        let loaded = store
            .load_events(&rid("run-1"), seq(0))
            .unwrap()
            .remove(0)
            .payload;
        let stored: String = store
            .conn
            .query_row(
                "SELECT payload FROM events WHERE run_id = 'run-1'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        (loaded, stored)
    }

    #[test]
    fn small_payloads_are_stored_verbatim() {
        let payload = json!({"a": 1, "b": [true, null, "x"], "content": ""});
        let (loaded, stored) = round_trip(payload.clone());
        assert_eq!(loaded, payload);
        assert_eq!(serde_json::from_str::<Value>(&stored).unwrap(), payload);
    }

    #[test]
    fn large_strings_become_blobs_wherever_they_are_and_come_back() {
        let large = "x".repeat(INLINE_LIMIT);
        let just_small = "y".repeat(INLINE_LIMIT - 1);
        let payload = json!({
            "file": {"path": "a.txt", "content": "hello"},
            "items": [large, {"deeper": just_small}],
        });
        let (loaded, stored) = round_trip(payload.clone());
        assert_eq!(loaded, payload);
        let stored: Value = serde_json::from_str(&stored).unwrap();
        // What a field is called does not matter: a small `content` stays inline.
        assert_eq!(stored["file"]["content"], json!("hello"));
        assert_eq!(
            stored["items"][0],
            json!({"$blob": stepwise_core::hash::content_hash(large.as_bytes())})
        );
        assert_eq!(stored["items"][1]["deeper"], json!(just_small));
    }

    #[test]
    fn identical_content_is_stored_once() {
        let (_dir, mut store) = temp_store();
        let large = "z".repeat(5000);
        let payload = json!({"content": large});
        let last = store
            .create_run(&new_run("run-1"), &[event("A", payload.clone())])
            .unwrap();
        store
            .append(&rid("run-1"), last, &[event("B", payload.clone())], None)
            .unwrap();
        assert_eq!(count(&store, "SELECT COUNT(*) FROM blobs"), 1);
        assert_eq!(
            count(
                &store,
                "SELECT COUNT(*) FROM events WHERE payload LIKE '%\"$blob\"%'"
            ),
            2
        );
        let events = store.load_events(&rid("run-1"), seq(0)).unwrap();
        assert!(events.iter().all(|e| e.payload == payload));
    }

    #[test]
    fn payload_objects_that_look_like_references_round_trip() {
        let large = "q".repeat(2000);
        let payload = json!({
            "a": {"$blob": "sha256:not-a-real-blob"},
            "b": {"$literal": {"$blob": 7}},
            "c": {"$blob": large},
            "d": {"$blob": "x", "other": 1},
        });
        let (loaded, _) = round_trip(payload.clone());
        assert_eq!(loaded, payload);
    }

    #[test]
    fn floats_round_trip_exactly() {
        let payload =
            json!({"values": [0.1, 1e-300, 2.638344616030823e-256, 9007199254740993u64, -0.0]});
        let (loaded, _) = round_trip(payload.clone());
        assert_eq!(loaded, payload);
    }

    #[test]
    fn put_and_get_blob() {
        let (_dir, mut store) = temp_store();
        let bytes = [0u8, 159, 146, 150];
        let hash = store.put_blob(&bytes).unwrap();
        assert_eq!(hash, stepwise_core::hash::content_hash(&bytes));
        assert_eq!(store.put_blob(&bytes).unwrap(), hash);
        assert_eq!(store.get_blob(&hash).unwrap(), Some(bytes.to_vec()));
        assert_eq!(store.get_blob("sha256:00").unwrap(), None);
    }

    #[test]
    fn blobs_are_immutable() {
        let (_dir, mut store) = temp_store();
        let hash = store.put_blob(b"abc").unwrap();
        let update = store
            .conn
            .execute("UPDATE blobs SET content = x'00' WHERE hash = ?1", [&hash]);
        assert!(
            update
                .unwrap_err()
                .to_string()
                .contains("blobs are immutable")
        );
        let delete = store.conn.execute("DELETE FROM blobs", []);
        assert!(
            delete
                .unwrap_err()
                .to_string()
                .contains("blobs are immutable")
        );
    }

    #[test]
    fn a_missing_blob_is_reported() {
        let (_dir, store) = temp_store();
        let mut value = json!({"x": {"$blob": "sha256:absent"}});
        let err = BlobResolver::new(&store.conn)
            .resolve(&mut value)
            .unwrap_err();
        assert!(matches!(err, StoreError::MissingBlob(h) if h == "sha256:absent"));
    }
}
