//! What runs share beside their logs, on PostgreSQL: agent memory (`memory.rs` on SQLite) and
//! telemetry's bookkeeping (`telemetry.rs`).

use postgres::Row;
use postgres::types::ToSql;

use super::runs::run_row;
use super::{PgStore, limit, signed, unsigned};
use crate::memory::recall_words;
use crate::runs::RUN_COLUMNS;
use crate::{
    MAX_MEMORY_ENTRIES, MAX_RECALLED, MemoryEntry, MemorySummary, Rememberer, RunRow, StoreError,
};

fn entry(row: &Row) -> MemoryEntry {
    MemoryEntry {
        key: row.get(0),
        text: row.get(1),
        run_id: row.get(2),
        step: row.get(3),
        updated_at_ms: row.get(4),
    }
}

impl PgStore {
    pub fn remember(
        &mut self,
        memory: &str,
        key: &str,
        text: &str,
        by: Rememberer<'_>,
    ) -> Result<bool, StoreError> {
        self.write(|db, _| {
            let existed = db
                .query_opt(
                    "SELECT 1 FROM memory_entries WHERE memory = $1 AND key = $2",
                    &[&memory, &key],
                )?
                .is_some();
            if !existed {
                let count: i64 = db
                    .query_one(
                        "SELECT count(*) FROM memory_entries WHERE memory = $1",
                        &[&memory],
                    )?
                    .get(0);
                if unsigned(count) >= MAX_MEMORY_ENTRIES {
                    return Err(StoreError::MemoryFull {
                        memory: memory.to_string(),
                        limit: MAX_MEMORY_ENTRIES,
                    });
                }
            }
            db.execute(
                "INSERT INTO memory_entries (memory, key, text, run_id, step, updated_at_ms)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (memory, key) DO UPDATE SET
                     text = excluded.text, run_id = excluded.run_id, step = excluded.step,
                     updated_at_ms = excluded.updated_at_ms",
                &[&memory, &key, &text, &by.run_id, &by.step, &by.at_ms],
            )?;
            Ok(existed)
        })
    }

    pub fn recall(&self, memory: &str, query: &str) -> Result<Vec<MemoryEntry>, StoreError> {
        let words = recall_words(query);
        // Each word scores 1 where it occurs in the key or the text (ASCII folded, as SQLite's
        // lower()).
        let folded = "translate(key || ' ' || text, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', \
                      'abcdefghijklmnopqrstuvwxyz')";
        let score = if words.is_empty() {
            "0".to_string()
        } else {
            (0..words.len())
                .map(|i| format!("(strpos({folded}, ${}) > 0)::int", i + 2))
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
                 SELECT *, {score} AS score FROM memory_entries WHERE memory = $1
             ) scored WHERE TRUE {filter}
             ORDER BY score DESC, updated_at_ms DESC, key COLLATE \"C\" LIMIT {MAX_RECALLED}"
        );
        let mut values: Vec<&(dyn ToSql + Sync)> = vec![&memory];
        values.extend(words.iter().map(|w| w as &(dyn ToSql + Sync)));
        self.read(|db| {
            Ok(db
                .query_once(sql.as_str(), &values)?
                .iter()
                .map(entry)
                .collect())
        })
    }

    pub fn memory_entries(&self, memory: &str) -> Result<Vec<MemoryEntry>, StoreError> {
        self.read(|db| {
            Ok(db
                .query(
                    "SELECT key, text, run_id, step, updated_at_ms FROM memory_entries
                     WHERE memory = $1 ORDER BY key COLLATE \"C\"",
                    &[&memory],
                )?
                .iter()
                .map(entry)
                .collect())
        })
    }

    pub fn forget(&mut self, memory: &str, key: &str) -> Result<bool, StoreError> {
        self.write(|db, _| {
            Ok(db.execute(
                "DELETE FROM memory_entries WHERE memory = $1 AND key = $2",
                &[&memory, &key],
            )? > 0)
        })
    }

    pub fn memories(&self) -> Result<Vec<MemorySummary>, StoreError> {
        self.read(|db| {
            Ok(db
                .query(
                    "SELECT memory, count(*), max(updated_at_ms) FROM memory_entries
                     GROUP BY memory ORDER BY memory COLLATE \"C\"",
                    &[],
                )?
                .iter()
                .map(|row| MemorySummary {
                    name: row.get(0),
                    entries: unsigned(row.get(1)),
                    updated_at_ms: row.get(2),
                })
                .collect())
        })
    }

    pub fn start_telemetry(&mut self, collector: &str, now_ms: i64) -> Result<(), StoreError> {
        self.write(|db, _| {
            db.execute(
                "INSERT INTO telemetry_exporter (collector, enabled_at_ms, holder, lease_until_ms)
                 VALUES ($1, $2, NULL, 0) ON CONFLICT DO NOTHING",
                &[&collector, &now_ms],
            )?;
            Ok(())
        })
    }

    pub fn claim_telemetry(
        &mut self,
        collector: &str,
        holder: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        self.write(|db, _| {
            db.execute(
                "INSERT INTO telemetry_exporter (collector, enabled_at_ms, holder, lease_until_ms)
                 VALUES ($1, $2, NULL, 0) ON CONFLICT DO NOTHING",
                &[&collector, &now_ms],
            )?;
            Ok(db
                .query_opt(
                    "UPDATE telemetry_exporter SET holder = $2, lease_until_ms = $3
                     WHERE collector = $1 AND (holder IS NULL OR holder = $2 OR lease_until_ms < $4)
                     RETURNING enabled_at_ms",
                    &[
                        &collector,
                        &holder,
                        &now_ms.saturating_add(lease_ms),
                        &now_ms,
                    ],
                )?
                .map(|row| row.get(0)))
        })
    }

    pub fn release_telemetry(&mut self, collector: &str, holder: &str) -> Result<(), StoreError> {
        self.write(|db, _| {
            db.execute(
                "UPDATE telemetry_exporter SET holder = NULL, lease_until_ms = 0
                 WHERE collector = $1 AND holder = $2",
                &[&collector, &holder],
            )?;
            Ok(())
        })
    }

    pub fn telemetry_pending(
        &self,
        collector: &str,
        since_ms: i64,
        max: usize,
    ) -> Result<Vec<(RunRow, u64)>, StoreError> {
        let columns = RUN_COLUMNS.split(", ").count();
        self.read(|db| {
            db.query(
                &format!(
                    "SELECT {RUN_COLUMNS}, exported FROM (
                         SELECT runs.*, COALESCE((SELECT c.exported_seq FROM telemetry_cursors c
                             WHERE c.collector = $1 AND c.run_id = runs.run_id), 0) AS exported
                         FROM runs WHERE runs.created_at_ms >= $2) pending
                     WHERE last_seq > exported
                     ORDER BY change_seq LIMIT $3"
                ),
                &[&collector, &since_ms, &limit(max)],
            )?
            .iter()
            .map(|row| Ok((run_row(row)?, unsigned(row.get(columns)))))
            .collect()
        })
    }

    pub fn advance_telemetry(
        &mut self,
        collector: &str,
        holder: &str,
        run_id: &str,
        (from, to): (u64, u64),
    ) -> Result<bool, StoreError> {
        let (from, to) = (signed(from), signed(to));
        self.write(|db, _| {
            if db
                .query_opt(
                    "SELECT 1 FROM telemetry_exporter WHERE collector = $1 AND holder = $2",
                    &[&collector, &holder],
                )?
                .is_none()
            {
                return Ok(false);
            }
            let changed = if from == 0 {
                db.execute(
                    "INSERT INTO telemetry_cursors (collector, run_id, exported_seq)
                     VALUES ($1, $2, $3)
                     ON CONFLICT (collector, run_id) DO UPDATE SET exported_seq = excluded.exported_seq
                     WHERE telemetry_cursors.exported_seq = 0",
                    &[&collector, &run_id, &to],
                )?
            } else {
                db.execute(
                    "UPDATE telemetry_cursors SET exported_seq = $4
                     WHERE collector = $1 AND run_id = $2 AND exported_seq = $3",
                    &[&collector, &run_id, &from, &to],
                )?
            };
            Ok(changed == 1)
        })
    }
}
