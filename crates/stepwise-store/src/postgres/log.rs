//! The log on PostgreSQL: creating runs, appending and reading events, blobs and the hash
//! chain, with the same guarantees as `events.rs`, `runs.rs`, `blobs.rs` and `chain.rs` give
//! on SQLite (the same payload encoding, chain links and cost bookkeeping are used).

use postgres::GenericClient;
use stepwise_core::ids::{EventSeq, RunId};
use stepwise_core::llm::{MAX_MICRO_USD, add_micro_usd};
use stepwise_core::subrun::CHILD_TRIGGER;

use super::commands::mark_handled;
use super::{Db, PgStore, limit, signed, unsigned};
use crate::blobs::{BlobResolver, encode_payload_with};
use crate::chain::{ChainCheck, StoredRow};
use crate::events::reply_cost;
use crate::{HandledCommand, NewEvent, NewRun, StoreError, StoredEvent, Verified};

const EVENT_COLUMNS: &str =
    "seq, event_type, schema_version, recorded_at_ms, correlation_id, causation_seq, payload";

impl PgStore {
    pub fn put_blob(&mut self, bytes: &[u8]) -> Result<String, StoreError> {
        self.write(|db, _| insert_blob(db, bytes))
    }

    pub fn put_hashed_blobs(&mut self, blobs: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        self.write(|db, _| {
            for (hash, bytes) in blobs {
                debug_assert_eq!(*hash, stepwise_core::hash::content_hash(bytes));
                insert_named_blob(db, hash, bytes)?;
            }
            Ok(())
        })
    }

    pub fn get_blob(&self, hash: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|db| select_blob(db, hash))
    }

    pub fn create_run(
        &mut self,
        run: &NewRun,
        events: &[NewEvent],
    ) -> Result<EventSeq, StoreError> {
        let last_seq = EventSeq::new(u64::try_from(events.len()).unwrap_or(u64::MAX));
        let updated_at_ms = events
            .last()
            .map_or(run.created_at_ms, |e| e.recorded_at_ms);
        self.write(|db, change| {
            // Its family, for the runs list (as SQLite's `create_run` computes it).
            let parent = match (&run.parent, run.trigger == CHILD_TRIGGER) {
                (Some(parent), true) => db.query_opt(
                    "SELECT family_run_id, family_at_ms, family_path FROM runs WHERE run_id = $1",
                    &[&parent.as_str()],
                )?,
                _ => None,
            };
            let own = format!("/{:016}:{}", run.created_at_ms, run.run_id.as_str());
            let (family_run_id, family_at_ms, family_path) = match (&run.parent, parent) {
                (_, Some(row)) => (
                    row.get::<_, Option<String>>(0),
                    row.get::<_, Option<i64>>(1),
                    format!(
                        "{}{own}",
                        row.get::<_, Option<String>>(2).unwrap_or_default()
                    ),
                ),
                (Some(parent), None) if run.trigger == CHILD_TRIGGER => (
                    Some(parent.as_str().to_owned()),
                    Some(run.created_at_ms),
                    own,
                ),
                _ => (
                    Some(run.run_id.as_str().to_owned()),
                    Some(run.created_at_ms),
                    String::new(),
                ),
            };
            let cause = run.cause.as_ref().map(|cause| cause.summary.as_str());
            let cause_signal = run.cause.as_ref().map(|cause| cause.signal_id);
            let inserted = db.execute(
                "INSERT INTO runs (run_id, workflow_name, workflow_path, workflow_hash, workspace,
                     trigger, status, created_at_ms, updated_at_ms, last_seq, change_seq,
                     cost_micro_usd, parent_run_id, cause, cause_signal_id, family_run_id,
                     family_at_ms, family_path)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, $12, $13, $14, $15,
                     $16, $17)",
                &[
                    &run.run_id.as_str(),
                    &run.workflow_name,
                    &run.workflow_path,
                    &run.workflow_hash,
                    &run.workspace,
                    &run.trigger,
                    &run.status,
                    &run.created_at_ms,
                    &updated_at_ms,
                    &signed(last_seq.get()),
                    &change,
                    &run.parent.as_ref().map(RunId::as_str),
                    &cause,
                    &cause_signal,
                    &family_run_id,
                    &family_at_ms,
                    &family_path,
                ],
            );
            if let Err(StoreError::Postgres { reason, .. }) = &inserted {
                // The unique indexes name themselves in the server's message.
                if reason.contains("runs_pkey") {
                    return Err(StoreError::RunExists(run.run_id.clone()));
                }
                if reason.contains("runs_one_per_cause") && run.cause.is_some() {
                    return Err(StoreError::CauseStarted {
                        signal_id: cause_signal.unwrap_or(0),
                        workflow_path: run.workflow_path.clone(),
                    });
                }
            }
            inserted?;
            insert_events(db, &run.run_id, EventSeq::ZERO, events)?;
            Ok(())
        })?;
        tracing::debug!(run_id = %run.run_id, %last_seq, "created run");
        Ok(last_seq)
    }

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
        self.write(|db, change| {
            let found = db
                .query_opt(
                    "SELECT last_seq, status FROM runs WHERE run_id = $1 FOR UPDATE",
                    &[&run_id.as_str()],
                )?
                .ok_or_else(|| StoreError::RunNotFound(run_id.to_string()))?;
            let actual = EventSeq::new(unsigned(found.get(0)));
            if actual != expected_last_seq {
                tracing::debug!(%run_id, %expected_last_seq, %actual, "append conflict");
                return Err(StoreError::Conflict {
                    run_id: run_id.clone(),
                    expected: expected_last_seq,
                    actual,
                });
            }
            let last_seq = insert_events(db, run_id, expected_last_seq, events)?;
            db.execute(
                "UPDATE runs SET last_seq = $2, updated_at_ms = $3,
                                 status = COALESCE($4, status), change_seq = $5
                 WHERE run_id = $1",
                &[
                    &run_id.as_str(),
                    &signed(last_seq.get()),
                    &last_event.recorded_at_ms,
                    &status,
                    &change,
                ],
            )?;
            let ids = mark_handled(db, handled)?;
            Ok((last_seq, ids))
        })
    }

    pub fn load_events_page(
        &self,
        run_id: &RunId,
        after_seq: EventSeq,
        max: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.read(|db| {
            let rows = db.query(
                &format!(
                    "SELECT {EVENT_COLUMNS} FROM events
                     WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
                ),
                &[&run_id.as_str(), &signed(after_seq.get()), &limit(max)],
            )?;
            read_events(db, run_id, &rows)
        })
    }

    pub fn load_events_at(
        &self,
        run_id: &RunId,
        seqs: &[EventSeq],
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let wanted: Vec<i64> = seqs.iter().map(|seq| signed(seq.get())).collect();
        self.read(|db| {
            let rows = db.query(
                &format!(
                    "SELECT {EVENT_COLUMNS} FROM events
                     WHERE run_id = $1 AND seq = ANY($2) ORDER BY seq"
                ),
                &[&run_id.as_str(), &wanted],
            )?;
            read_events(db, run_id, &rows)
        })
    }

    pub fn verify_run(&self, run_id: &RunId) -> Result<Verified, StoreError> {
        self.read(|db| {
            let rows = db.query(
                "SELECT seq, event_type, schema_version, recorded_at_ms, correlation_id,
                        causation_seq, payload, chain
                 FROM events WHERE run_id = $1 ORDER BY seq",
                &[&run_id.as_str()],
            )?;
            let mut check = ChainCheck::new(run_id);
            for row in &rows {
                check.row(StoredRow {
                    seq: unsigned(row.get(0)),
                    event_type: row.get(1),
                    schema_version: u32::try_from(row.get::<_, i64>(2)).unwrap_or(u32::MAX),
                    recorded_at_ms: row.get(3),
                    correlation_id: row.get(4),
                    causation_seq: row.get::<_, Option<i64>>(5).map(unsigned),
                    payload: row.get(6),
                    chain: row.get(7),
                });
            }
            let last_seq = db
                .query_opt(
                    "SELECT last_seq FROM runs WHERE run_id = $1",
                    &[&run_id.as_str()],
                )?
                .map(|row| unsigned(row.get(0)));
            check.finish(last_seq, &mut |name| select_blob(db, name))
        })
    }
}

/// Inserts `events` as seqs `after_seq + 1 ..` (blobs included) and returns the last seq; adds
/// what model replies among them cost to the run. The caller's transaction has checked that
/// `after_seq` is the run's last seq.
fn insert_events<C: GenericClient>(
    db: &mut Db<'_, C>,
    run_id: &RunId,
    after_seq: EventSeq,
    events: &[NewEvent],
) -> Result<EventSeq, StoreError> {
    let mut seq = after_seq;
    let mut cost: u64 = 0;
    let mut previous: Vec<u8> = if after_seq == EventSeq::ZERO {
        Vec::new()
    } else {
        db.query_opt(
            "SELECT chain FROM events WHERE run_id = $1 AND seq = $2",
            &[&run_id.as_str(), &signed(after_seq.get())],
        )?
        .and_then(|row| row.get::<_, Option<Vec<u8>>>(0))
        .unwrap_or_default()
    };
    // One statement for all of them (arrays unnested on the server): a round trip per event
    // would cost a long commit more than everything else in it.
    let mut seqs = Vec::with_capacity(events.len());
    let mut types = Vec::with_capacity(events.len());
    let mut versions = Vec::with_capacity(events.len());
    let mut recorded = Vec::with_capacity(events.len());
    let mut correlations = Vec::with_capacity(events.len());
    let mut causations = Vec::with_capacity(events.len());
    let mut payloads = Vec::with_capacity(events.len());
    let mut chains = Vec::with_capacity(events.len());
    for event in events {
        seq = seq.next();
        let payload = encode_payload_with(run_id, seq, &event.payload, &mut |text| {
            insert_blob(db, text.as_bytes())
        })?;
        let link = crate::chain::link_event(&mut previous, run_id, seq, event, &payload);
        seqs.push(signed(seq.get()));
        types.push(event.event_type.as_str());
        versions.push(i64::from(event.schema_version));
        recorded.push(event.recorded_at_ms);
        correlations.push(event.correlation_id.as_deref());
        causations.push(event.causation_seq.map(|seq| signed(seq.get())));
        payloads.push(payload);
        chains.push(link.to_vec());
        cost = add_micro_usd(cost, reply_cost(event));
    }
    if !events.is_empty() {
        db.execute(
            "INSERT INTO events (run_id, seq, event_type, schema_version, recorded_at_ms,
                                 correlation_id, causation_seq, payload, chain)
             SELECT $1, * FROM UNNEST($2::BIGINT[], $3::TEXT[], $4::BIGINT[], $5::BIGINT[],
                                      $6::TEXT[], $7::BIGINT[], $8::TEXT[], $9::BYTEA[])",
            &[
                &run_id.as_str(),
                &seqs,
                &types,
                &versions,
                &recorded,
                &correlations,
                &causations,
                &payloads,
                &chains,
            ],
        )?;
    }
    if cost > 0 {
        let ceiling = i64::try_from(MAX_MICRO_USD).unwrap_or(i64::MAX);
        let cost = i64::try_from(cost).unwrap_or(ceiling);
        db.execute(
            "UPDATE runs SET cost_micro_usd = LEAST($2, cost_micro_usd + $3) WHERE run_id = $1",
            &[&run_id.as_str(), &ceiling, &cost],
        )?;
    }
    Ok(seq)
}

/// Events read back, their blobs put back into their payloads.
fn read_events<C: GenericClient>(
    db: &mut Db<'_, C>,
    run_id: &RunId,
    rows: &[postgres::Row],
) -> Result<Vec<StoredEvent>, StoreError> {
    let mut resolver = BlobResolver::with_fetch(Box::new(|hash| select_blob(db, hash)));
    let mut events = Vec::with_capacity(rows.len());
    for row in rows {
        let seq = EventSeq::new(unsigned(row.get(0)));
        let stored: &str = row.get(6);
        let mut payload: serde_json::Value =
            serde_json::from_str(stored).map_err(|error| StoreError::Json {
                run_id: run_id.clone(),
                seq,
                error,
            })?;
        if BlobResolver::may_need(stored) {
            resolver.resolve(&mut payload)?;
        }
        events.push(StoredEvent {
            seq,
            event_type: row.get(1),
            schema_version: u32::try_from(row.get::<_, i64>(2)).unwrap_or(u32::MAX),
            recorded_at_ms: row.get(3),
            correlation_id: row.get(4),
            causation_seq: row
                .get::<_, Option<i64>>(5)
                .map(|seq| EventSeq::new(unsigned(seq))),
            payload,
        });
    }
    Ok(events)
}

pub(super) fn insert_blob<C: GenericClient>(
    db: &mut Db<'_, C>,
    bytes: &[u8],
) -> Result<String, StoreError> {
    let hash = stepwise_core::hash::content_hash(bytes);
    insert_named_blob(db, &hash, bytes)?;
    Ok(hash)
}

fn insert_named_blob<C: GenericClient>(
    db: &mut Db<'_, C>,
    hash: &str,
    bytes: &[u8],
) -> Result<(), StoreError> {
    let size = i64::try_from(bytes.len()).unwrap_or(i64::MAX);
    db.execute(
        "INSERT INTO blobs (hash, size, content) VALUES ($1, $2, $3)
         ON CONFLICT (hash) DO NOTHING",
        &[&hash, &size, &bytes],
    )?;
    Ok(())
}

fn select_blob<C: GenericClient>(
    db: &mut Db<'_, C>,
    hash: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(db
        .query_opt("SELECT content FROM blobs WHERE hash = $1", &[&hash])?
        .map(|row| row.get(0)))
}
