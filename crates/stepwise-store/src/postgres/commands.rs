//! The command inbox on PostgreSQL, as `commands.rs` keeps it on SQLite. A command's id is
//! drawn inside a write transaction (which holds the write counter), so ids become visible in
//! increasing order and a holder asking for commands after the last it saw misses none.

use postgres::{GenericClient, Row};
use serde_json::Value;
use stepwise_core::ids::RunId;

use super::{Db, PgStore};
use crate::{CommandRef, CommandRow, CommandState, HandledCommand, NewCommand, StoreError};

const COMMAND_COLUMNS: &str = "command_id, run_id, body, issued_by, issued_at_ms, state, \
                               outcome, handled_at_ms, handled_by, issued_on";

fn command_row(row: &Row) -> Result<CommandRow, StoreError> {
    let json = |text: &str| {
        serde_json::from_str::<Value>(text).map_err(|error| StoreError::Postgres {
            database: None,
            reason: format!("a command's stored JSON does not parse: {error}"),
            retryable: false,
            gone: false,
        })
    };
    let state: String = row.get(5);
    Ok(CommandRow {
        command_id: row.get(0),
        run_id: RunId::from(row.get::<_, String>(1)),
        body: json(row.get(2))?,
        issued_by: row.get(3),
        issued_at_ms: row.get(4),
        state: CommandState::parse(&state),
        outcome: row.get::<_, Option<&str>>(6).map(json).transpose()?,
        handled_at_ms: row.get(7),
        handled_by: row.get(8),
        issued_on: row.get(9),
    })
}

impl PgStore {
    pub fn insert_command(&mut self, command: &NewCommand) -> Result<i64, StoreError> {
        self.write(|db, _| {
            if db
                .query_opt(
                    "SELECT 1 FROM runs WHERE run_id = $1",
                    &[&command.run_id.as_str()],
                )?
                .is_none()
            {
                return Err(StoreError::RunNotFound(command.run_id.to_string()));
            }
            Ok(db
                .query_one(
                    "INSERT INTO commands (run_id, body, issued_by, issued_at_ms, issued_on)
                     VALUES ($1, $2, $3, $4, $5) RETURNING command_id",
                    &[
                        &command.run_id.as_str(),
                        &command.body.to_string(),
                        &command.issued_by,
                        &command.issued_at_ms,
                        &command.issued_on,
                    ],
                )?
                .get(0))
        })
    }

    pub fn command(&self, command_id: i64) -> Result<Option<CommandRow>, StoreError> {
        self.read(|db| {
            db.query_opt(
                &format!("SELECT {COMMAND_COLUMNS} FROM commands WHERE command_id = $1"),
                &[&command_id],
            )?
            .as_ref()
            .map(command_row)
            .transpose()
        })
    }

    pub fn commands(&self, run_id: &RunId) -> Result<Vec<CommandRow>, StoreError> {
        self.read(|db| {
            db.query(
                &format!(
                    "SELECT {COMMAND_COLUMNS} FROM commands WHERE run_id = $1 ORDER BY command_id"
                ),
                &[&run_id.as_str()],
            )?
            .iter()
            .map(command_row)
            .collect()
        })
    }

    pub fn pending_commands(&self, run_id: &RunId) -> Result<Vec<CommandRow>, StoreError> {
        self.read(|db| {
            db.query(
                &format!(
                    "SELECT {COMMAND_COLUMNS} FROM commands
                     WHERE run_id = $1 AND state = 'pending' ORDER BY command_id"
                ),
                &[&run_id.as_str()],
            )?
            .iter()
            .map(command_row)
            .collect()
        })
    }

    pub fn pending_commands_after(&self, after: i64) -> Result<Vec<(i64, RunId)>, StoreError> {
        self.read(|db| {
            Ok(db
                .query(
                    "SELECT command_id, run_id FROM commands
                     WHERE state = 'pending' AND command_id > $1 ORDER BY command_id",
                    &[&after],
                )?
                .iter()
                .map(|row| (row.get(0), RunId::from(row.get::<_, String>(1))))
                .collect())
        })
    }

    pub fn handle_commands(&mut self, handled: &[HandledCommand]) -> Result<Vec<i64>, StoreError> {
        if handled.is_empty() {
            return Ok(Vec::new());
        }
        self.write(|db, _| mark_handled(db, handled))
    }
}

/// Marks each command handled (inserting those given new), in the caller's transaction; fails
/// with [`StoreError::CommandHandled`] for one already handled.
pub(super) fn mark_handled<C: GenericClient>(
    db: &mut Db<'_, C>,
    handled: &[HandledCommand],
) -> Result<Vec<i64>, StoreError> {
    let mut ids = Vec::with_capacity(handled.len());
    for command in handled {
        let outcome = command.outcome.to_string();
        match &command.command {
            CommandRef::Pending(command_id) => {
                let changed = db.execute(
                    "UPDATE commands SET state = $2, outcome = $3, handled_at_ms = $4,
                                         handled_by = $5
                     WHERE command_id = $1 AND state = 'pending'",
                    &[
                        command_id,
                        &command.state.as_str(),
                        &outcome,
                        &command.handled_at_ms,
                        &command.handled_by,
                    ],
                )?;
                if changed != 1 {
                    return Err(StoreError::CommandHandled(*command_id));
                }
                ids.push(*command_id);
            }
            CommandRef::New(new) => {
                let id: i64 = db
                    .query_one(
                        "INSERT INTO commands (run_id, body, issued_by, issued_at_ms, state,
                                               outcome, handled_at_ms, handled_by, issued_on)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING command_id",
                        &[
                            &new.run_id.as_str(),
                            &new.body.to_string(),
                            &new.issued_by,
                            &new.issued_at_ms,
                            &command.state.as_str(),
                            &outcome,
                            &command.handled_at_ms,
                            &command.handled_by,
                            &new.issued_on,
                        ],
                    )?
                    .get(0);
                ids.push(id);
            }
        }
    }
    Ok(ids)
}
