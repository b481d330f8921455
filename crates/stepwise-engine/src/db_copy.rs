//! Moving runs between databases (`stepwise db copy`): a SQLite file to a team's PostgreSQL
//! database, or back. Each run goes with its whole log, its blobs (the large strings of its
//! payloads, and the file versions its checkpoints kept), its commands, and the signals that
//! started or fed runs; then it is verified where it landed.
//!
//! The log is copied event by event through the store's own API, so the destination stores
//! each payload as the source did and computes the same hash chain: a run copied whole has the
//! same last link in both, which is what the copy is checked by (with every event counted and
//! every blob it names checked by its hash). A run already in the destination with the same
//! last link is left as it is, so a copy cut short is finished by running it again; one with
//! another log is refused, naming it. The replay of a sample, with no side effect, is the
//! caller's (it needs an engine on the destination: see the CLI's `db copy`).
//!
//! Signals are copied with which wait took each. Not copied: agent memory and telemetry's
//! bookkeeping (neither is part of a run), and which file changes a trigger's firings claimed
//! (a watcher on the destination answers the changes it sees from then on).

use std::collections::HashMap;
use std::path::Path;

use stepwise_core::ids::{EventSeq, RunId};
use stepwise_store::{
    CommandRef, CommandState, Durability, HandledCommand, NewCommand, NewEvent, NewRun, NewSignal,
    RunRow, Store, StoreError,
};

use crate::config::SharedDatabase;
use crate::error::EngineError;

/// What a copy did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CopyReport {
    /// Runs copied now.
    pub copied: u64,
    /// Runs the destination held already, with the same log.
    pub already_there: u64,
    /// Events copied.
    pub events: u64,
    /// Blobs copied that no payload names (the file versions checkpoints kept).
    pub kept_files: u64,
    /// Commands copied (handled ones as history, pending ones to be handled).
    pub commands: u64,
    /// Signals copied.
    pub signals: u64,
    /// Runs checked in the destination: as many events, every blob intact, the same last link.
    pub verified: u64,
}

/// Opens a database named as `--db` names one: a `postgres://` URL (its password as
/// `password_env`, `PGPASSWORD` or `~/.pgpass` give it), or a SQLite file, which must exist
/// when `must_exist`.
pub fn open_database(
    name: &str,
    password_env: Option<&str>,
    must_exist: bool,
) -> Result<Store, EngineError> {
    if SharedDatabase::is_url(name) {
        return open_shared(name, password_env);
    }
    let path = Path::new(name);
    if must_exist && !path.is_file() {
        return Err(EngineError::Settings {
            message: format!("database `{name}` does not exist"),
        });
    }
    Ok(Store::open(path, Durability::Full)?)
}

#[cfg(feature = "postgres")]
fn open_shared(url: &str, password_env: Option<&str>) -> Result<Store, EngineError> {
    let target = stepwise_store::PgTarget::parse(url, password_env)?;
    Ok(Store::open_postgres(&target, Durability::Full)?)
}

#[cfg(not(feature = "postgres"))]
fn open_shared(url: &str, _password_env: Option<&str>) -> Result<Store, EngineError> {
    Err(EngineError::Settings {
        message: format!(
            "{} is a PostgreSQL database, and this stepwise was built without PostgreSQL",
            if url.is_empty() {
                "the database"
            } else {
                "a postgres:// URL"
            }
        ),
    })
}

/// Copies every run of `from` into `to` and verifies each; `progress` hears of each run as it
/// is done.
pub fn copy_runs(
    from: &Store,
    to: &mut Store,
    progress: &mut dyn FnMut(&RunId),
) -> Result<CopyReport, EngineError> {
    let mut report = CopyReport::default();
    let signals = copy_signals(from, to, &mut report)?;
    let mut runs = from.list_runs(usize::MAX)?;
    // Oldest first: a fork or child run's parent is there before it.
    runs.reverse();
    for run in &runs {
        copy_run(from, to, run, &signals, &mut report)?;
        progress(&run.run_id);
    }
    Ok(report)
}

/// Records every signal of `from` in `to` (once: a signal is one per name and idempotency
/// key); the ids they have there, by their ids in `from`.
fn copy_signals(
    from: &Store,
    to: &mut Store,
    report: &mut CopyReport,
) -> Result<HashMap<i64, i64>, EngineError> {
    let mut signals = from.signals(usize::MAX)?;
    signals.reverse();
    let mut ids = HashMap::with_capacity(signals.len());
    for signal in signals {
        let (recorded, new) = to.record_signal(&NewSignal {
            name: signal.name.clone(),
            payload: signal.payload.clone(),
            idempotency_key: signal.idempotency_key.clone(),
            correlation_id: signal.correlation_id.clone(),
            source: signal.source.clone(),
            created_at_ms: signal.created_at_ms,
        })?;
        ids.insert(signal.signal_id, recorded.signal_id);
        report.signals += u64::from(new);
        // Taken there as here, so that no wait in the destination takes it again. A name's
        // signals are taken oldest first, so this one is the oldest still waiting there; a
        // wait that took it already finds it again (taking is idempotent by run and op).
        if let Some((run, op)) = &signal.consumed_by {
            to.take_signal(&recorded.name, run, *op)?;
        }
    }
    Ok(ids)
}

fn copy_run(
    from: &Store,
    to: &mut Store,
    run: &RunRow,
    signals: &HashMap<i64, i64>,
    report: &mut CopyReport,
) -> Result<(), EngineError> {
    let source = from.verify_run(&run.run_id)?;
    if !source.is_intact() {
        return Err(refused(
            &run.run_id,
            "its log does not verify in the source (`stepwise verify` says where); nothing of it was copied",
        ));
    }
    if to.run(&run.run_id)?.is_some() {
        let there = to.verify_run(&run.run_id)?;
        if there.last_link != source.last_link
            || there.broken_at.is_some()
            || there.events != source.events
        {
            return Err(refused(
                &run.run_id,
                "the destination holds a run with this id and another log",
            ));
        }
        // Its log is there whole; a copy cut short may have left the rest behind.
        report.commands += copy_commands(from, to, &run.run_id)?;
        report.kept_files += copy_kept_files(from, to, &there.bad_blobs)?;
        verify_landed(to, run, &source)?;
        report.already_there += 1;
        return Ok(());
    }
    let events: Vec<NewEvent> = from
        .load_events(&run.run_id, EventSeq::ZERO)?
        .into_iter()
        .map(NewEvent::from)
        .collect();
    let cause = cause_of(from, run, signals)?;
    let new = NewRun {
        run_id: run.run_id.clone(),
        workflow_name: run.workflow_name.clone(),
        workflow_path: run.workflow_path.clone(),
        workflow_hash: run.workflow_hash.clone(),
        workspace: run.workspace.clone(),
        trigger: run.trigger.clone(),
        status: run.status.as_str().to_owned(),
        created_at_ms: run.created_at_ms,
        parent: run.parent.clone(),
        cause,
    };
    to.create_run(&new, &events)?;
    report.events += u64::try_from(events.len()).unwrap_or(u64::MAX);
    report.commands += copy_commands(from, to, &run.run_id)?;
    // The file versions checkpoints kept are named by the log but are no string of it.
    let landed = to.verify_run(&run.run_id)?;
    report.kept_files += copy_kept_files(from, to, &landed.bad_blobs)?;
    verify_landed(to, run, &source)?;
    report.copied += 1;
    report.verified += 1;
    Ok(())
}

/// Copies the blobs `names` (the file versions a run's checkpoints kept, missing where it
/// landed); how many.
fn copy_kept_files(from: &Store, to: &mut Store, names: &[String]) -> Result<u64, EngineError> {
    if names.is_empty() {
        return Ok(0);
    }
    let mut kept = Vec::with_capacity(names.len());
    for name in names {
        let bytes = from
            .get_blob(name)?
            .ok_or_else(|| StoreError::MissingBlob(name.clone()))?;
        kept.push((name.clone(), bytes));
    }
    to.put_hashed_blobs(&kept)?;
    Ok(u64::try_from(kept.len()).unwrap_or(u64::MAX))
}

/// Fails, naming the run, unless the destination holds its log whole: as many events, every
/// blob intact, the same last link as the source's.
fn verify_landed(
    to: &Store,
    run: &RunRow,
    source: &stepwise_store::Verified,
) -> Result<(), EngineError> {
    let landed = to.verify_run(&run.run_id)?;
    if !landed.is_intact() || landed.events != source.events || landed.last_link != source.last_link
    {
        return Err(refused(
            &run.run_id,
            &format!(
                "the copy does not verify: {} events and last link {} in the source, {} and {} in the destination{}",
                source.events,
                source.last_link.as_deref().unwrap_or("-"),
                landed.events,
                landed.last_link.as_deref().unwrap_or("-"),
                if landed.bad_blobs.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; blobs missing or altered: {}",
                        landed.bad_blobs.join(", ")
                    )
                }
            ),
        ));
    }
    Ok(())
}

/// The run's cause, with the signal's id as the destination has it.
fn cause_of(
    from: &Store,
    run: &RunRow,
    signals: &HashMap<i64, i64>,
) -> Result<Option<stepwise_core::cause::RunCause>, EngineError> {
    if run.cause.is_none() {
        return Ok(None);
    }
    let first = from.load_events_page(&run.run_id, EventSeq::ZERO, 1)?;
    let recorded = match first.first() {
        Some(event) => match crate::record::decode(&run.run_id, event)? {
            stepwise_core::event::Event::RunStarted(started) => {
                started.cause.clone().map(|cause| *cause)
            }
            _ => None,
        },
        None => None,
    };
    Ok(recorded.map(|mut cause| {
        if let Some(id) = signals.get(&cause.signal_id) {
            cause.signal_id = *id;
        }
        cause
    }))
}

/// Copies a run's commands in the order they were sent (those a copy cut short left behind):
/// handled ones as they were handled, pending ones to be handled by whoever drives the run in
/// the destination.
fn copy_commands(from: &Store, to: &mut Store, run_id: &RunId) -> Result<u64, EngineError> {
    let there = to.commands(run_id)?.len();
    let commands: Vec<_> = from.commands(run_id)?.into_iter().skip(there).collect();
    let count = u64::try_from(commands.len()).unwrap_or(u64::MAX);
    for command in commands {
        let new = NewCommand {
            run_id: run_id.clone(),
            body: command.body,
            issued_by: command.issued_by,
            issued_on: command.issued_on,
            issued_at_ms: command.issued_at_ms,
        };
        match command.state {
            CommandState::Pending => {
                to.insert_command(&new)?;
            }
            state => {
                to.handle_commands(&[HandledCommand {
                    command: CommandRef::New(new),
                    state,
                    outcome: command.outcome.unwrap_or(serde_json::Value::Null),
                    handled_at_ms: command.handled_at_ms.unwrap_or(command.issued_at_ms),
                    handled_by: command.handled_by.unwrap_or_default(),
                }])?;
            }
        }
    }
    Ok(count)
}

fn refused(run_id: &RunId, why: &str) -> EngineError {
    EngineError::Settings {
        message: format!("run `{run_id}` was not copied: {why}"),
    }
}
