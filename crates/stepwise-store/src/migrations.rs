//! The schema, as forward-only migrations.
//!
//! Append new migrations to the end of [`migrations`]; never edit or reorder released ones,
//! because `rusqlite_migration` identifies them by position (stored in `PRAGMA user_version`).

use rusqlite_migration::{M, Migrations};

/// Version 1: runs, the append-only event log and content-addressed blobs.
const V1_INITIAL: &str = r#"
CREATE TABLE runs (
    run_id        TEXT PRIMARY KEY NOT NULL,
    workflow_name TEXT NOT NULL,
    workflow_path TEXT NOT NULL,
    workflow_hash TEXT NOT NULL,
    workspace     TEXT NOT NULL,
    trigger       TEXT NOT NULL,
    status        TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    last_seq      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_created_at_ms ON runs(created_at_ms);
CREATE INDEX runs_status ON runs(status);

CREATE TABLE events (
    run_id         TEXT NOT NULL REFERENCES runs(run_id),
    seq            INTEGER NOT NULL,
    event_type     TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    recorded_at_ms INTEGER NOT NULL,
    correlation_id TEXT,
    causation_seq  INTEGER,
    payload        TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;

-- The log is the truth that replay re-drives; history is never rewritten.
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;

CREATE TABLE blobs (
    hash    TEXT PRIMARY KEY NOT NULL,
    size    INTEGER NOT NULL,
    content BLOB NOT NULL
) WITHOUT ROWID;

-- A blob is named by its content hash, so changing it would make the name lie.
CREATE TRIGGER blobs_no_update BEFORE UPDATE ON blobs
BEGIN SELECT RAISE(ABORT, 'blobs are immutable'); END;
CREATE TRIGGER blobs_no_delete BEFORE DELETE ON blobs
BEGIN SELECT RAISE(ABORT, 'blobs are immutable'); END;
"#;

/// Version 2: runs shared between processes.
///
/// - `runs.change_seq`: a database-wide counter, bumped by every write to a run, so that a
///   follower can ask "which runs changed since I last looked?" with one indexed query.
/// - `commands`: the inbox of decisions (approve, reject, pause, …) issued by any process for
///   the process that holds the run. A command is handled once: the holder marks it applied in
///   the same transaction as the events it records, or refused, and never changes it again.
const V2_SHARED_RUNS: &str = r#"
ALTER TABLE runs ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
UPDATE runs SET change_seq = rowid;
CREATE INDEX runs_change_seq ON runs(change_seq);

CREATE TABLE commands (
    command_id    INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id        TEXT NOT NULL REFERENCES runs(run_id),
    body          TEXT NOT NULL,
    issued_by     TEXT NOT NULL,
    issued_at_ms  INTEGER NOT NULL,
    state         TEXT NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'applied', 'refused')),
    outcome       TEXT,
    handled_at_ms INTEGER,
    handled_by    TEXT
);
CREATE INDEX commands_pending ON commands(run_id, command_id) WHERE state = 'pending';

-- A handled command is history: applying it twice, or rewriting what happened, would lie.
CREATE TRIGGER commands_handled_once BEFORE UPDATE ON commands
WHEN OLD.state <> 'pending'
BEGIN SELECT RAISE(ABORT, 'a handled command cannot change'); END;
CREATE TRIGGER commands_no_delete BEFORE DELETE ON commands
BEGIN SELECT RAISE(ABORT, 'commands are never deleted'); END;
"#;

/// V3: what each run's model calls cost, kept on the run's row by a trigger as replies are
/// appended (and summed once from the log for runs recorded before), so that listing runs
/// with their cost reads one row per run.
const V3_RUN_COST: &str = r#"
ALTER TABLE runs ADD COLUMN cost_micro_usd INTEGER NOT NULL DEFAULT 0;

UPDATE runs SET cost_micro_usd = (
    SELECT COALESCE(SUM(json_extract(e.payload, '$.result.cost_micro_usd')), 0)
    FROM events e
    WHERE e.run_id = runs.run_id
      AND e.event_type = 'OperationSucceeded'
      AND json_extract(e.payload, '$.result.kind') = 'llm_replied'
);

CREATE TRIGGER runs_cost_of_replies AFTER INSERT ON events
WHEN NEW.event_type = 'OperationSucceeded'
 AND json_extract(NEW.payload, '$.result.kind') = 'llm_replied'
BEGIN
    UPDATE runs
    SET cost_micro_usd = cost_micro_usd + COALESCE(json_extract(NEW.payload, '$.result.cost_micro_usd'), 0)
    WHERE run_id = NEW.run_id;
END;
"#;

/// V4: a run's cost stays an integer whatever a reply says. A reply recorded from a hostile
/// server could say 18446744073709551615 micro-dollars: SQLite turned the sum into a REAL that
/// no reader could take as an integer, so that listing runs failed for the whole database.
/// Each reply now counts for at most 2^62 - 1 and so does the sum (the two together still fit
/// a signed 64-bit integer), and costs already stored are brought back within that.
const V4_BOUNDED_RUN_COST: &str = r#"
UPDATE runs
SET cost_micro_usd = MIN(4611686018427387903, MAX(0, CAST(cost_micro_usd AS INTEGER)))
WHERE typeof(cost_micro_usd) <> 'integer'
   OR cost_micro_usd < 0
   OR cost_micro_usd > 4611686018427387903;

DROP TRIGGER runs_cost_of_replies;
CREATE TRIGGER runs_cost_of_replies AFTER INSERT ON events
WHEN NEW.event_type = 'OperationSucceeded'
 AND json_extract(NEW.payload, '$.result.kind') = 'llm_replied'
BEGIN
    UPDATE runs
    SET cost_micro_usd = MIN(4611686018427387903, cost_micro_usd + MIN(4611686018427387903,
        MAX(0, CAST(COALESCE(json_extract(NEW.payload, '$.result.cost_micro_usd'), 0) AS INTEGER))))
    WHERE run_id = NEW.run_id;
END;
"#;

/// Every migration's SQL, oldest first: schema version N is after the first N.
/// Version 5: the run's cost is added by `insert_events`, in the transaction that appends the
/// replies, not by a trigger. A row trigger runs a program for every event inserted, even one
/// its `WHEN` refuses: about 0.45 µs on each insert of every event, 40% of what an insert
/// costs, to find the rare model reply.
const V5_COST_WITHOUT_TRIGGER: &str = r#"
DROP TRIGGER runs_cost_of_replies;
"#;

/// Version 6: blobs in a rowid table, found by a unique index on the hash. In the `WITHOUT
/// ROWID` table of version 1 a row keeps at most about 1 KiB in its page and spills the rest
/// into an overflow page of its own: a 1.1 KiB file took 5 KiB. Workspace checkpoints store
/// every file of a workspace once; in a rowid table a row up to about 4 KiB stays in its page.
const V6_BLOBS_BY_ROWID: &str = r#"
CREATE TABLE blobs_by_rowid (
    hash    TEXT NOT NULL UNIQUE,
    size    INTEGER NOT NULL,
    content BLOB NOT NULL
);
INSERT INTO blobs_by_rowid (hash, size, content) SELECT hash, size, content FROM blobs;
DROP TRIGGER blobs_no_update;
DROP TRIGGER blobs_no_delete;
DROP TABLE blobs;
ALTER TABLE blobs_by_rowid RENAME TO blobs;

-- A blob is named by its content hash, so changing it would make the name lie.
CREATE TRIGGER blobs_no_update BEFORE UPDATE ON blobs
BEGIN SELECT RAISE(ABORT, 'blobs are immutable'); END;
CREATE TRIGGER blobs_no_delete BEFORE DELETE ON blobs
BEGIN SELECT RAISE(ABORT, 'blobs are immutable'); END;
"#;

/// Version 7: each event's link in the run's hash chain (`chain.rs`), computed for the runs
/// already recorded (by the hook: SQLite has no SHA-256). The append-only trigger is lifted for
/// that one update. The column is added by the hook, only where it is missing.
const V7_HASH_CHAIN: &str = r#"
DROP TRIGGER IF EXISTS events_no_update;
"#;

/// What follows V7's hook: the log is append-only again.
const V7_AFTER: &str = r#"
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
"#;

/// Version 8: the run a run was forked from (`stepwise fork`), so that a run's forks are
/// found by an index, not by reading every run's first event. The column is added by the hook,
/// only where it is missing (as V7's).
const V8_RUN_PARENT: &str = r#"
-- runs.parent_run_id: added by the hook
"#;

/// What follows V8's hook.
const V8_AFTER: &str = r#"
CREATE INDEX IF NOT EXISTS runs_parent ON runs(parent_run_id) WHERE parent_run_id IS NOT NULL;
"#;

/// Version 9: agent memory (`memory.rs`): short texts by key in named memories, shared by every
/// run. Not part of any run's log: what a run read of it is recorded there. And each run's
/// family, so that the runs list shows child runs under their parent (`runs_page`): its
/// top-level run, when that started, and its place in it (its path from the top-level run,
/// each level the child's start and id; empty for the top-level run itself).
/// The columns are added and filled by the hook, only where they are missing (as V8's).
const V9_MEMORY_AND_FAMILIES: &str = r#"
CREATE TABLE IF NOT EXISTS memory_entries (
    memory        TEXT NOT NULL,
    key           TEXT NOT NULL,
    text          TEXT NOT NULL,
    run_id        TEXT NOT NULL,
    step          TEXT NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (memory, key)
) WITHOUT ROWID;
"#;

/// What V9's hook runs once the family columns are there: every run its own family, then each
/// child (a level of nesting at a time, as deep as children may nest) its parent's.
const V9_FAMILIES: &str = r#"
UPDATE runs SET family_run_id = run_id, family_at_ms = created_at_ms, family_path = '';
"#;
const V9_CHILDREN: &str = r#"
UPDATE runs SET
    family_run_id = (SELECT p.family_run_id FROM runs p WHERE p.run_id = runs.parent_run_id),
    family_at_ms = (SELECT p.family_at_ms FROM runs p WHERE p.run_id = runs.parent_run_id),
    family_path = (SELECT p.family_path FROM runs p WHERE p.run_id = runs.parent_run_id)
        || printf('/%016d:', created_at_ms) || run_id
WHERE trigger = 'workflow' AND parent_run_id IN (SELECT run_id FROM runs);
"#;
const V9_AFTER: &str = r#"
CREATE INDEX IF NOT EXISTS runs_family
    ON runs(family_at_ms DESC, family_run_id DESC, family_path, run_id);
"#;

/// Version 10: signals (`signals.rs`): immutable records of something that happened (a script's
/// `stepwise signal`, later triggers), each once per name and idempotency key, and which wait
/// took it. Only `consumed_run`/`consumed_op` are ever set after the insert, once.
const V10_SIGNALS: &str = r#"
CREATE TABLE IF NOT EXISTS signals (
    signal_id       INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT NOT NULL,
    payload         TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    correlation_id  TEXT,
    source          TEXT NOT NULL,
    created_at_ms   INTEGER NOT NULL,
    consumed_run    TEXT,
    consumed_op     INTEGER,
    UNIQUE (name, idempotency_key)
);
CREATE INDEX IF NOT EXISTS signals_waiting ON signals(name, signal_id) WHERE consumed_run IS NULL;
CREATE INDEX IF NOT EXISTS signals_taken ON signals(consumed_run, consumed_op) WHERE consumed_run IS NOT NULL;
CREATE TRIGGER IF NOT EXISTS signals_immutable BEFORE UPDATE OF signal_id, name, payload, idempotency_key, correlation_id, source, created_at_ms ON signals
BEGIN SELECT RAISE(ABORT, 'signals are immutable'); END;
CREATE TRIGGER IF NOT EXISTS signals_taken_once BEFORE UPDATE OF consumed_run, consumed_op ON signals
WHEN OLD.consumed_run IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'a signal is taken once'); END;
CREATE TRIGGER IF NOT EXISTS signals_no_delete BEFORE DELETE ON signals
BEGIN SELECT RAISE(ABORT, 'signals are immutable'); END;
"#;

/// Version 11: triggers. A run a trigger started records the signal of the firing
/// (`cause_signal_id`) and how people read it (`cause`); one firing starts at most one run of
/// each workflow, however many watchers see it; each file change is claimed by one firing of
/// a workflow (`trigger_claims`). The columns are added by the hook, only where
/// they are missing (as V8's).
const V11_RUN_CAUSE: &str = r#"
SELECT 1;
"#;
const V11_AFTER: &str = r#"
CREATE TABLE IF NOT EXISTS trigger_claims (
    workflow_path TEXT NOT NULL,
    change_key    TEXT NOT NULL,
    signal_id     INTEGER NOT NULL,
    PRIMARY KEY (workflow_path, change_key)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS runs_one_per_cause
    ON runs(cause_signal_id, workflow_path) WHERE cause_signal_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS signals_by_name ON signals(name, signal_id);
"#;

/// Version 12: telemetry, per collector (a key naming it, never its URL): since when it
/// receives runs and which process exports to it, on a lease (`telemetry_exporter`), and how
/// far each run's log has been exported to it (`telemetry_cursors`).
const V12_TELEMETRY: &str = r#"
CREATE TABLE IF NOT EXISTS telemetry_cursors (
    collector    TEXT NOT NULL,
    run_id       TEXT NOT NULL,
    exported_seq INTEGER NOT NULL,
    PRIMARY KEY (collector, run_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS telemetry_exporter (
    collector      TEXT PRIMARY KEY,
    enabled_at_ms  INTEGER NOT NULL,
    holder         TEXT,
    lease_until_ms INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
"#;

/// Version 13: the machine each command was sent from (`issued_on`; absent before). The
/// column is added by the hook, where missing (as versions 7 to 9 add theirs).
const V13_COMMANDS_ISSUED_ON: &str = "-- version 13: commands.issued_on, added by the hook";

const ALL: [&str; 13] = [
    V1_INITIAL,
    V2_SHARED_RUNS,
    V3_RUN_COST,
    V4_BOUNDED_RUN_COST,
    V5_COST_WITHOUT_TRIGGER,
    V6_BLOBS_BY_ROWID,
    V7_HASH_CHAIN,
    V8_RUN_PARENT,
    V9_MEMORY_AND_FAMILIES,
    V10_SIGNALS,
    V11_RUN_CAUSE,
    V12_TELEMETRY,
    V13_COMMANDS_ISSUED_ON,
];

/// All migrations, oldest first.
pub(crate) fn migrations() -> Migrations<'static> {
    Migrations::new(
        ALL.iter()
            .map(|&sql| {
                if sql == V7_HASH_CHAIN {
                    M::up_with_hook(sql, |tx: &rusqlite::Transaction| {
                        let has_chain: bool = tx.query_row(
                            "SELECT count(*) > 0 FROM pragma_table_info('events') WHERE name = 'chain'",
                            [],
                            |row| row.get(0),
                        )?;
                        if !has_chain {
                            tx.execute_batch("ALTER TABLE events ADD COLUMN chain BLOB")?;
                        }
                        crate::chain::fill_missing(tx)
                            .map_err(|e| rusqlite_migration::HookError::Hook(e.to_string()))?;
                        tx.execute_batch(V7_AFTER)?;
                        Ok(())
                    })
                } else if sql == V13_COMMANDS_ISSUED_ON {
                    M::up_with_hook(sql, |tx: &rusqlite::Transaction| {
                        let has: bool = tx.query_row(
                            "SELECT count(*) > 0 FROM pragma_table_info('commands') WHERE name = 'issued_on'",
                            [],
                            |row| row.get(0),
                        )?;
                        if !has {
                            tx.execute_batch("ALTER TABLE commands ADD COLUMN issued_on TEXT")?;
                        }
                        Ok(())
                    })
                } else if sql == V8_RUN_PARENT {
                    M::up_with_hook(sql, |tx: &rusqlite::Transaction| {
                        let has_parent: bool = tx.query_row(
                            "SELECT count(*) > 0 FROM pragma_table_info('runs') WHERE name = 'parent_run_id'",
                            [],
                            |row| row.get(0),
                        )?;
                        if !has_parent {
                            tx.execute_batch("ALTER TABLE runs ADD COLUMN parent_run_id TEXT")?;
                        }
                        tx.execute_batch(V8_AFTER)?;
                        Ok(())
                    })
                } else if sql == V9_MEMORY_AND_FAMILIES {
                    M::up_with_hook(sql, |tx: &rusqlite::Transaction| {
                        for (column, kind) in [
                            ("family_run_id", "TEXT"),
                            ("family_at_ms", "INTEGER"),
                            ("family_path", "TEXT"),
                        ] {
                            let has: bool = tx.query_row(
                                "SELECT count(*) > 0 FROM pragma_table_info('runs') WHERE name = ?1",
                                [column],
                                |row| row.get(0),
                            )?;
                            if !has {
                                tx.execute_batch(&format!(
                                    "ALTER TABLE runs ADD COLUMN {column} {kind}"
                                ))?;
                            }
                        }
                        tx.execute_batch(V9_FAMILIES)?;
                        for _ in 0..=stepwise_core::subrun::MAX_DEPTH {
                            tx.execute_batch(V9_CHILDREN)?;
                        }
                        tx.execute_batch(V9_AFTER)?;
                        Ok(())
                    })
                } else if sql == V11_RUN_CAUSE {
                    M::up_with_hook(sql, |tx: &rusqlite::Transaction| {
                        add_missing_columns(
                            tx,
                            "runs",
                            &[("cause_signal_id", "INTEGER"), ("cause", "TEXT")],
                        )?;
                        tx.execute_batch(V11_AFTER)?;
                        Ok(())
                    })
                } else {
                    M::up(sql)
                }
            })
            .collect(),
    )
}

/// Adds each of `columns` (name, type) to `table` where it is missing.
fn add_missing_columns(
    tx: &rusqlite::Transaction,
    table: &str,
    columns: &[(&str, &str)],
) -> rusqlite::Result<()> {
    for (column, kind) in columns {
        let has: bool = tx.query_row(
            "SELECT count(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
            [table, column],
            |row| row.get(0),
        )?;
        if !has {
            tx.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))?;
        }
    }
    Ok(())
}

/// The schema version this stepwise writes (the number of migrations).
pub(crate) fn count() -> usize {
    ALL.len()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        assert!(migrations().validate().is_ok());
    }

    /// Child runs recorded before version 9 are listed under their families after it.
    #[test]
    fn runs_recorded_before_families_get_theirs() {
        use crate::test_support::{event, new_run, rid};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let mut store = crate::SqliteStore::open(&path, crate::Durability::Normal).unwrap();
            for (id, at, trigger, parent) in [
                ("top", 1, "cli", None),
                ("child", 2, "workflow", Some("top")),
                ("grandchild", 3, "workflow", Some("child")),
                ("later", 4, "cli", None),
            ] {
                let run = crate::NewRun {
                    trigger: trigger.into(),
                    created_at_ms: at,
                    parent: parent.map(rid),
                    cause: None,
                    ..new_run(id)
                };
                store
                    .create_run(&run, &[event("RunStarted", serde_json::json!({}))])
                    .unwrap();
            }
            // As a database from before version 9 holds them.
            store
                .conn
                .execute_batch(
                    "DROP INDEX runs_family; DROP TABLE memory_entries;
                     ALTER TABLE runs DROP COLUMN family_run_id;
                     ALTER TABLE runs DROP COLUMN family_at_ms;
                     ALTER TABLE runs DROP COLUMN family_path;
                     PRAGMA user_version = 8;",
                )
                .unwrap();
        }
        let store = crate::SqliteStore::open(&path, crate::Durability::Normal).unwrap();
        let page = store
            .runs_page(&crate::RunFilter::default(), 0, 10)
            .unwrap();
        let ids: Vec<&str> = page.iter().map(|r| r.run_id.as_str()).collect();
        assert_eq!(ids, ["later", "top", "child", "grandchild"]);
    }

    /// Blobs stored before version 6 are read after it, and stay immutable.
    #[test]
    fn blobs_move_to_a_rowid_table_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let mut conn = rusqlite::Connection::open(&path).unwrap();
            Migrations::new(ALL[..5].iter().map(|sql| M::up(sql)).collect())
                .to_latest(&mut conn)
                .unwrap();
            conn.execute(
                "INSERT INTO blobs (hash, size, content) VALUES ('sha256:x', 3, x'616263')",
                [],
            )
            .unwrap();
        }
        let store = crate::SqliteStore::open(&path, crate::Durability::Full).unwrap();
        assert_eq!(
            store.get_blob("sha256:x").unwrap().as_deref(),
            Some(&b"abc"[..])
        );
        let sql: String = store
            .conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'blobs'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(!sql.contains("WITHOUT ROWID"), "{sql}");
        assert!(
            store
                .conn
                .execute("DELETE FROM blobs", [])
                .unwrap_err()
                .to_string()
                .contains("immutable")
        );
    }
}
