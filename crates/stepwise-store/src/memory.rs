//! Agent memory: named stores of short texts by key, shared by every run (an agent step with
//! `memory: NAME` remembers and recalls through them). Unlike the log, an entry changes: a key
//! remembered again is replaced, and a person may forget one. What a run read is in its own
//! log, so replay never reads this table.

use rusqlite::{OptionalExtension, params};

use crate::{SqliteStore, StoreError};

/// The most entries one memory holds.
pub const MAX_MEMORY_ENTRIES: u64 = 10_000;

/// The most entries one recall gives back.
pub const MAX_RECALLED: usize = 10;

/// The most words of a query that count.
const MAX_QUERY_WORDS: usize = 16;

/// One remembered text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryEntry {
    pub key: String,
    pub text: String,
    /// The run and step that last remembered it.
    pub run_id: String,
    pub step: String,
    pub updated_at_ms: i64,
}

/// A memory and how many entries it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemorySummary {
    pub name: String,
    pub entries: u64,
    pub updated_at_ms: i64,
}

/// Who remembers, and when.
#[derive(Debug, Clone, Copy)]
pub struct Rememberer<'a> {
    pub run_id: &'a str,
    pub step: &'a str,
    pub at_ms: i64,
}

impl SqliteStore {
    /// Remembers `text` under `key` in `memory`, replacing what the key held. Whether it
    /// replaced something. A memory full of other keys refuses a new one.
    pub fn remember(
        &mut self,
        memory: &str,
        key: &str,
        text: &str,
        by: Rememberer<'_>,
    ) -> Result<bool, StoreError> {
        // Immediate: the count read and the write are one, whoever else writes meanwhile.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let existed: Option<i64> = tx
            .prepare_cached("SELECT 1 FROM memory_entries WHERE memory = ?1 AND key = ?2")?
            .query_row(params![memory, key], |row| row.get(0))
            .optional()?;
        if existed.is_none() {
            let count: i64 = tx
                .prepare_cached("SELECT count(*) FROM memory_entries WHERE memory = ?1")?
                .query_row([memory], |row| row.get(0))?;
            if u64::try_from(count).unwrap_or(0) >= MAX_MEMORY_ENTRIES {
                return Err(StoreError::MemoryFull {
                    memory: memory.to_string(),
                    limit: MAX_MEMORY_ENTRIES,
                });
            }
        }
        tx.prepare_cached(
            "INSERT INTO memory_entries (memory, key, text, run_id, step, updated_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (memory, key) DO UPDATE SET
                 text = excluded.text, run_id = excluded.run_id, step = excluded.step,
                 updated_at_ms = excluded.updated_at_ms",
        )?
        .execute(params![memory, key, text, by.run_id, by.step, by.at_ms])?;
        tx.commit()?;
        self.commits += 1;
        Ok(existed.is_some())
    }

    /// The entries of `memory` that share most words with `query` (ASCII case aside, as
    /// SQLite folds it), best first, the most recently remembered first among equals; with no
    /// words, the most recent. A word is two or more letters or digits, or one that is not
    /// ASCII (a CJK character); the first 16 count.
    pub fn recall(&self, memory: &str, query: &str) -> Result<Vec<MemoryEntry>, StoreError> {
        let words = recall_words(query);
        // Each word scores 1 where it occurs in the key or the text.
        let score = if words.is_empty() {
            "0".to_string()
        } else {
            (0..words.len())
                .map(|i| format!("(instr(lower(key || ' ' || text), ?{}) > 0)", i + 2))
                .collect::<Vec<_>>()
                .join(" + ")
        };
        let filter = if words.is_empty() {
            ""
        } else {
            "AND score > 0"
        };
        let sql = format!(
            "SELECT key, text, run_id, step, updated_at_ms FROM (
                 SELECT *, {score} AS score FROM memory_entries WHERE memory = ?1
             ) WHERE 1 {filter}
             ORDER BY score DESC, updated_at_ms DESC, key LIMIT {MAX_RECALLED}"
        );
        let mut values: Vec<&dyn rusqlite::ToSql> = vec![&memory];
        values.extend(words.iter().map(|w| w as &dyn rusqlite::ToSql));
        let mut statement = self.conn.prepare(&sql)?;
        let rows = statement.query_map(values.as_slice(), entry)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every entry of `memory`, by key.
    pub fn memory_entries(&self, memory: &str) -> Result<Vec<MemoryEntry>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT key, text, run_id, step, updated_at_ms FROM memory_entries
             WHERE memory = ?1 ORDER BY key",
        )?;
        let rows = statement.query_map([memory], entry)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Removes `key` from `memory`; whether it was there.
    pub fn forget(&mut self, memory: &str, key: &str) -> Result<bool, StoreError> {
        let removed = self
            .conn
            .prepare_cached("DELETE FROM memory_entries WHERE memory = ?1 AND key = ?2")?
            .execute(params![memory, key])?;
        self.commits += 1;
        Ok(removed > 0)
    }

    /// The memories that hold anything, by name.
    pub fn memories(&self) -> Result<Vec<MemorySummary>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT memory, count(*), max(updated_at_ms) FROM memory_entries
             GROUP BY memory ORDER BY memory",
        )?;
        let rows = statement.query_map([], |row| {
            Ok(MemorySummary {
                name: row.get(0)?,
                entries: u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0),
                updated_at_ms: row.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// The words of a recall query that count: lower-cased (ASCII), at least two characters (or
/// not ASCII), each once, at most [`MAX_QUERY_WORDS`].
pub(crate) fn recall_words(query: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for word in query.split(|c: char| !c.is_alphanumeric()) {
        let word = word.to_ascii_lowercase();
        let counts = word.chars().count() >= 2 || !word.is_ascii();
        if counts && !word.is_empty() && !words.contains(&word) {
            words.push(word);
        }
        if words.len() == MAX_QUERY_WORDS {
            break;
        }
    }
    words
}

fn entry(row: &rusqlite::Row<'_>) -> rusqlite::Result<MemoryEntry> {
    Ok(MemoryEntry {
        key: row.get(0)?,
        text: row.get(1)?,
        run_id: row.get(2)?,
        step: row.get(3)?,
        updated_at_ms: row.get(4)?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn by(at_ms: i64) -> Rememberer<'static> {
        Rememberer {
            run_id: "r1",
            step: "s",
            at_ms,
        }
    }

    #[test]
    fn a_recall_finds_entries_by_their_words_best_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut store =
            SqliteStore::open(&dir.path().join("db"), crate::Durability::Normal).unwrap();
        assert!(
            !store
                .remember("notes", "build", "The build uses cargo and make", by(1))
                .unwrap()
        );
        store
            .remember("notes", "deploy", "Deploys go through cargo dist", by(2))
            .unwrap();
        store
            .remember("notes", "lunch", "Pizza on Fridays", by(3))
            .unwrap();
        store
            .remember("other", "build", "elsewhere", by(4))
            .unwrap();
        let keys = |store: &SqliteStore, q: &str| -> Vec<String> {
            store
                .recall("notes", q)
                .unwrap()
                .into_iter()
                .map(|e| e.key)
                .collect()
        };
        assert_eq!(
            keys(&store, "how do we BUILD with cargo?"),
            ["build", "deploy"]
        );
        assert_eq!(keys(&store, "pizza"), ["lunch"]);
        store
            .remember("notes", "école", "École notes, in French", by(5))
            .unwrap();
        assert_eq!(keys(&store, "école"), ["école"]);
        assert_eq!(keys(&store, "ÉCOLE"), ["école"]);
        assert!(keys(&store, "nothing-like-it").is_empty());
        store.forget("notes", "école").unwrap();
        assert_eq!(keys(&store, ""), ["lunch", "deploy", "build"]);
        // Remembered again: replaced, and the most recent.
        assert!(
            store
                .remember("notes", "build", "Now with just", by(9))
                .unwrap()
        );
        assert_eq!(
            store.memory_entries("notes").unwrap()[0].text,
            "Now with just"
        );
        assert!(store.forget("notes", "lunch").unwrap());
        assert!(!store.forget("notes", "lunch").unwrap());
        let memories = store.memories().unwrap();
        assert_eq!(memories.len(), 2);
        assert_eq!(
            (memories[0].name.as_str(), memories[0].entries),
            ("notes", 2)
        );
    }
}
