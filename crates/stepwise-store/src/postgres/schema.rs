//! The PostgreSQL schema, as forward-only migrations applied under an advisory lock.
//!
//! The schema holds what SQLite's holds at its version 12 (see `migrations.rs` for why each
//! part is there), in PostgreSQL's types: integers are `BIGINT`, bytes `BYTEA`. Its own
//! version is the one row of `stepwise_schema`. Append migrations to [`MIGRATIONS`]; never
//! edit released ones.

use postgres::Client;

use super::connect::PgTarget;
use crate::StoreError;

/// The advisory lock key that serialises migrations across every process and machine:
/// `stepwise` in ASCII.
const MIGRATION_LOCK: i64 = 0x7374_6570_7769_7365;

/// Version 1: everything SQLite's schema has at its version 12, and the write counter.
const V1_INITIAL: &str = r#"
CREATE FUNCTION stepwise_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', TG_ARGV[0] USING ERRCODE = 'integrity_constraint_violation';
END
$$;

-- Every write transaction draws the next number here first: writers commit one at a time, in
-- the order of their numbers (see postgres/mod.rs).
CREATE TABLE stepwise_counter (
    only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    value    BIGINT NOT NULL
);
INSERT INTO stepwise_counter (only_row, value) VALUES (TRUE, 0);

CREATE TABLE runs (
    run_id          TEXT PRIMARY KEY,
    workflow_name   TEXT NOT NULL,
    workflow_path   TEXT NOT NULL,
    workflow_hash   TEXT NOT NULL,
    workspace       TEXT NOT NULL,
    trigger         TEXT NOT NULL,
    status          TEXT NOT NULL,
    created_at_ms   BIGINT NOT NULL,
    updated_at_ms   BIGINT NOT NULL,
    last_seq        BIGINT NOT NULL DEFAULT 0,
    change_seq      BIGINT NOT NULL DEFAULT 0,
    cost_micro_usd  BIGINT NOT NULL DEFAULT 0,
    parent_run_id   TEXT,
    family_run_id   TEXT,
    family_at_ms    BIGINT,
    family_path     TEXT,
    cause_signal_id BIGINT,
    cause           TEXT
);
CREATE INDEX runs_created_at_ms ON runs(created_at_ms);
CREATE INDEX runs_status ON runs(status);
CREATE INDEX runs_change_seq ON runs(change_seq);
CREATE INDEX runs_parent ON runs(parent_run_id) WHERE parent_run_id IS NOT NULL;
CREATE INDEX runs_family ON runs(family_at_ms DESC, family_run_id DESC, family_path, run_id);
CREATE UNIQUE INDEX runs_one_per_cause
    ON runs(cause_signal_id, workflow_path) WHERE cause_signal_id IS NOT NULL;
CREATE INDEX runs_workspace ON runs(workspace);

CREATE TABLE events (
    run_id         TEXT NOT NULL REFERENCES runs(run_id),
    seq            BIGINT NOT NULL,
    event_type     TEXT NOT NULL,
    schema_version BIGINT NOT NULL,
    recorded_at_ms BIGINT NOT NULL,
    correlation_id TEXT,
    causation_seq  BIGINT,
    payload        TEXT NOT NULL,
    chain          BYTEA,
    PRIMARY KEY (run_id, seq)
);
-- The log is the truth that replay re-drives; history is never rewritten.
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION stepwise_refuse('events are append-only');
CREATE TRIGGER events_never_truncated BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION stepwise_refuse('events are append-only');

CREATE TABLE blobs (
    hash    TEXT PRIMARY KEY,
    size    BIGINT NOT NULL,
    content BYTEA NOT NULL
);
-- A blob is named by its content hash, so changing it would make the name lie.
CREATE TRIGGER blobs_immutable BEFORE UPDATE OR DELETE ON blobs
    FOR EACH ROW EXECUTE FUNCTION stepwise_refuse('blobs are immutable');
CREATE TRIGGER blobs_never_truncated BEFORE TRUNCATE ON blobs
    FOR EACH STATEMENT EXECUTE FUNCTION stepwise_refuse('blobs are immutable');

CREATE TABLE commands (
    command_id    BIGSERIAL PRIMARY KEY,
    run_id        TEXT NOT NULL REFERENCES runs(run_id),
    body          TEXT NOT NULL,
    issued_by     TEXT NOT NULL,
    issued_at_ms  BIGINT NOT NULL,
    state         TEXT NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'applied', 'refused')),
    outcome       TEXT,
    handled_at_ms BIGINT,
    handled_by    TEXT
);
CREATE INDEX commands_pending ON commands(run_id, command_id) WHERE state = 'pending';
-- A handled command is history: applying it twice, or rewriting what happened, would lie.
CREATE TRIGGER commands_handled_once BEFORE UPDATE ON commands
    FOR EACH ROW WHEN (OLD.state <> 'pending')
    EXECUTE FUNCTION stepwise_refuse('a handled command cannot change');
CREATE TRIGGER commands_never_deleted BEFORE DELETE ON commands
    FOR EACH ROW EXECUTE FUNCTION stepwise_refuse('commands are never deleted');
CREATE TRIGGER commands_never_truncated BEFORE TRUNCATE ON commands
    FOR EACH STATEMENT EXECUTE FUNCTION stepwise_refuse('commands are never deleted');

CREATE TABLE memory_entries (
    memory        TEXT NOT NULL,
    key           TEXT NOT NULL,
    text          TEXT NOT NULL,
    run_id        TEXT NOT NULL,
    step          TEXT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (memory, key)
);

CREATE TABLE signals (
    signal_id       BIGSERIAL PRIMARY KEY,
    name            TEXT NOT NULL,
    payload         TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    correlation_id  TEXT,
    source          TEXT NOT NULL,
    created_at_ms   BIGINT NOT NULL,
    consumed_run    TEXT,
    consumed_op     BIGINT,
    UNIQUE (name, idempotency_key)
);
CREATE INDEX signals_waiting ON signals(name, signal_id) WHERE consumed_run IS NULL;
CREATE INDEX signals_taken ON signals(consumed_run, consumed_op) WHERE consumed_run IS NOT NULL;
CREATE INDEX signals_by_name ON signals(name, signal_id);
CREATE TRIGGER signals_immutable BEFORE UPDATE ON signals
    FOR EACH ROW WHEN (
        OLD.signal_id IS DISTINCT FROM NEW.signal_id OR OLD.name IS DISTINCT FROM NEW.name
        OR OLD.payload IS DISTINCT FROM NEW.payload
        OR OLD.idempotency_key IS DISTINCT FROM NEW.idempotency_key
        OR OLD.correlation_id IS DISTINCT FROM NEW.correlation_id
        OR OLD.source IS DISTINCT FROM NEW.source
        OR OLD.created_at_ms IS DISTINCT FROM NEW.created_at_ms)
    EXECUTE FUNCTION stepwise_refuse('signals are immutable');
CREATE TRIGGER signals_taken_once BEFORE UPDATE ON signals
    FOR EACH ROW WHEN (OLD.consumed_run IS NOT NULL)
    EXECUTE FUNCTION stepwise_refuse('a signal is taken once');
CREATE TRIGGER signals_never_deleted BEFORE DELETE ON signals
    FOR EACH ROW EXECUTE FUNCTION stepwise_refuse('signals are immutable');

-- A change key may hold any byte (a NUL separates its parts), which TEXT cannot.
CREATE TABLE trigger_claims (
    workflow_path TEXT NOT NULL,
    change_key    BYTEA NOT NULL,
    signal_id     BIGINT NOT NULL,
    PRIMARY KEY (workflow_path, change_key)
);

CREATE TABLE telemetry_cursors (
    collector    TEXT NOT NULL,
    run_id       TEXT NOT NULL,
    exported_seq BIGINT NOT NULL,
    PRIMARY KEY (collector, run_id)
);
CREATE TABLE telemetry_exporter (
    collector      TEXT PRIMARY KEY,
    enabled_at_ms  BIGINT NOT NULL,
    holder         TEXT,
    lease_until_ms BIGINT NOT NULL DEFAULT 0
);
"#;

/// Version 2: who holds each run, for the processes that ask. The hold itself is a
/// session-level advisory lock on the run's id (`hashtextextended(run_id, 0)`), released by
/// the server when the holder's connection ends; a row here says whose it is and counts only
/// while that connection holds the lock (see `holds.rs`).
const V2_RUN_HOLDERS: &str = r#"
CREATE TABLE run_holders (
    run_id     TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    pid        INTEGER NOT NULL,
    since_ms   BIGINT NOT NULL
);
"#;

/// Version 3: the machine each command was sent from (SQLite's version 13).
const V3_COMMANDS_ISSUED_ON: &str = r#"
ALTER TABLE commands ADD COLUMN issued_on TEXT;
"#;

/// Every migration, oldest first: schema version N is after the first N.
const MIGRATIONS: [&str; 3] = [V1_INITIAL, V2_RUN_HOLDERS, V3_COMMANDS_ISSUED_ON];

/// The schema version this stepwise writes.
pub(crate) fn count() -> usize {
    MIGRATIONS.len()
}

/// Brings the database's schema up to date, one process at a time: a transaction holding the
/// advisory lock reads the version and applies what is missing, so processes starting together
/// wait for the first and then find nothing to do. A schema newer than this build is refused.
pub(super) fn migrate(client: &mut Client, target: &PgTarget) -> Result<(), StoreError> {
    let at =
        |error: postgres::Error| StoreError::from(error).at(std::path::Path::new(target.label()));
    let mut tx = client.transaction().map_err(at)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(at)?;
    // Made only where missing: a role that may only read and write data may not create.
    let exists: bool = tx
        .query_one("SELECT to_regclass('stepwise_schema') IS NOT NULL", &[])
        .map_err(at)?
        .get(0);
    if !exists {
        tx.batch_execute("CREATE TABLE stepwise_schema (version INTEGER NOT NULL)")
            .map_err(at)?;
    }
    let found: Option<i32> = tx
        .query_opt("SELECT version FROM stepwise_schema", &[])
        .map_err(at)?
        .map(|row| row.get(0));
    let found = usize::try_from(found.unwrap_or(0)).unwrap_or(0);
    let known = count();
    if found > known {
        return Err(StoreError::TooNew {
            path: target.label().into(),
            found,
            known,
        });
    }
    if found == known {
        return Ok(());
    }
    for sql in &MIGRATIONS[found..] {
        tx.batch_execute(sql).map_err(at)?;
    }
    let version = i32::try_from(known).unwrap_or(i32::MAX);
    if found == 0 {
        tx.execute(
            "INSERT INTO stepwise_schema (version) VALUES ($1)",
            &[&version],
        )
        .map_err(at)?;
    } else {
        tx.execute("UPDATE stepwise_schema SET version = $1", &[&version])
            .map_err(at)?;
    }
    tx.commit().map_err(at)?;
    tracing::info!(database = %target.label(), from = found, to = known, "migrated the PostgreSQL schema");
    Ok(())
}
