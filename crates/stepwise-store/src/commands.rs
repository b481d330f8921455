//! The command inbox: decisions (approve, reject, pause, …) issued by any process, for the
//! process that holds the run to apply.
//!
//! A command is inserted `pending` and handled exactly once: the holder marks it `applied` in
//! the same transaction as the events it leads to (see [`SqliteStore::append_handling`]), or
//! `refused` with the reason. A trigger refuses any later change, so a command can never be
//! applied twice, even by two holders in turn after a crash.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::Value;
use stepwise_core::ids::RunId;

use crate::{SqliteStore, StoreError};

/// A command about to be recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCommand {
    pub run_id: RunId,
    /// What is asked, as the engine serialises it.
    pub body: Value,
    pub issued_by: String,
    /// The machine it was sent from (absent in commands recorded before machines were).
    pub issued_on: Option<String>,
    pub issued_at_ms: i64,
}

/// Where a command stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandState {
    Pending,
    Applied,
    Refused,
}

impl CommandState {
    pub fn as_str(self) -> &'static str {
        match self {
            CommandState::Pending => "pending",
            CommandState::Applied => "applied",
            CommandState::Refused => "refused",
        }
    }

    pub(crate) fn parse(text: &str) -> CommandState {
        match text {
            "applied" => CommandState::Applied,
            "refused" => CommandState::Refused,
            _ => CommandState::Pending,
        }
    }
}

/// A command as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandRow {
    pub command_id: i64,
    pub run_id: RunId,
    pub body: Value,
    pub issued_by: String,
    /// The machine it was sent from, when recorded.
    pub issued_on: Option<String>,
    pub issued_at_ms: i64,
    pub state: CommandState,
    /// What handling it led to, as the engine describes it; `None` while pending.
    pub outcome: Option<Value>,
    pub handled_at_ms: Option<i64>,
    /// Which process handled it (e.g. `pid 4242`).
    pub handled_by: Option<String>,
}

/// How a command was handled: `state` is `Applied` or `Refused`.
#[derive(Debug, Clone, PartialEq)]
pub struct HandledCommand {
    pub command: CommandRef,
    pub state: CommandState,
    pub outcome: Value,
    pub handled_at_ms: i64,
    pub handled_by: String,
}

/// Which command was handled.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandRef {
    /// One waiting in the inbox.
    Pending(i64),
    /// One handed straight to the holder (in the same process), recorded as it is handled.
    New(NewCommand),
}

impl HandledCommand {
    /// The command's id where it is known without asking the database: a pending command's;
    /// 0 for a new one, whose id the insert gave (for a commit whose answer was lost).
    pub fn known_id(&self) -> i64 {
        match &self.command {
            CommandRef::Pending(id) => *id,
            CommandRef::New(_) => 0,
        }
    }
}

const COMMAND_COLUMNS: &str = "command_id, run_id, body, issued_by, issued_at_ms, state, \
                               outcome, handled_at_ms, handled_by, issued_on";

fn command_row(row: &Row<'_>) -> rusqlite::Result<CommandRow> {
    let json = |index: usize, text: Option<String>| -> rusqlite::Result<Option<Value>> {
        text.map(|t| {
            serde_json::from_str(&t).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    index,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })
        })
        .transpose()
    };
    let body: String = row.get(2)?;
    let state: String = row.get(5)?;
    Ok(CommandRow {
        command_id: row.get(0)?,
        run_id: RunId::from(row.get::<_, String>(1)?),
        body: json(2, Some(body))?.unwrap_or(Value::Null),
        issued_by: row.get(3)?,
        issued_at_ms: row.get(4)?,
        state: CommandState::parse(&state),
        outcome: json(6, row.get(6)?)?,
        handled_at_ms: row.get(7)?,
        handled_by: row.get(8)?,
        issued_on: row.get(9)?,
    })
}

impl SqliteStore {
    /// Records a pending command for a run and returns its id. Ids grow with every command,
    /// across runs, in the order the commands were committed.
    pub fn insert_command(&mut self, command: &NewCommand) -> Result<i64, StoreError> {
        let exists: Option<i64> = self
            .conn
            .prepare_cached("SELECT 1 FROM runs WHERE run_id = ?1")?
            .query_row([command.run_id.as_str()], |row| row.get(0))
            .optional()?;
        if exists.is_none() {
            return Err(StoreError::RunNotFound(command.run_id.to_string()));
        }
        self.conn
            .prepare_cached(
                "INSERT INTO commands (run_id, body, issued_by, issued_at_ms, issued_on)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                command.run_id.as_str(),
                command.body.to_string(),
                command.issued_by,
                command.issued_at_ms,
                command.issued_on,
            ])?;
        self.commits += 1;
        Ok(self.conn.last_insert_rowid())
    }

    /// One command, if it exists.
    pub fn command(&self, command_id: i64) -> Result<Option<CommandRow>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {COMMAND_COLUMNS} FROM commands WHERE command_id = ?1"
            ))?
            .query_row([command_id], command_row)
            .optional()?)
    }

    /// Every command sent to a run, handled or not, oldest first: who decided what, and when.
    pub fn commands(&self, run_id: &RunId) -> Result<Vec<CommandRow>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {COMMAND_COLUMNS} FROM commands WHERE run_id = ?1 ORDER BY command_id"
            ))?
            .query_map([run_id.as_str()], command_row)?
            .collect::<Result<_, _>>()?)
    }

    /// A run's pending commands, oldest first.
    pub fn pending_commands(&self, run_id: &RunId) -> Result<Vec<CommandRow>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {COMMAND_COLUMNS} FROM commands
                 WHERE run_id = ?1 AND state = 'pending' ORDER BY command_id"
            ))?
            .query_map([run_id.as_str()], command_row)?
            .collect::<Result<_, _>>()?)
    }

    /// Pending commands of any run with an id above `after`: `(command_id, run_id)`, oldest
    /// first. A holder uses it to learn that commands arrived for the runs it drives.
    pub fn pending_commands_after(&self, after: i64) -> Result<Vec<(i64, RunId)>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT command_id, run_id FROM commands
                 WHERE state = 'pending' AND command_id > ?1 ORDER BY command_id",
            )?
            .query_map([after], |row| {
                Ok((row.get(0)?, RunId::from(row.get::<_, String>(1)?)))
            })?
            .collect::<Result<_, _>>()?)
    }

    /// Marks commands handled without appending events (refusals, or commands that change
    /// nothing), in one transaction, and returns their ids.
    pub fn handle_commands(&mut self, handled: &[HandledCommand]) -> Result<Vec<i64>, StoreError> {
        if handled.is_empty() {
            return Ok(Vec::new());
        }
        let tx = self.conn.transaction()?;
        let ids = mark_handled(&tx, handled)?;
        tx.commit()?;
        self.commits += 1;
        Ok(ids)
    }
}

/// Marks commands handled inside the caller's transaction (recording those handed over
/// directly) and returns their ids, in order. Fails with [`StoreError::CommandHandled`] if one
/// is not pending any more, so that the transaction (and the events appended with it) rolls
/// back rather than apply a command twice.
pub(crate) fn mark_handled(
    conn: &Connection,
    handled: &[HandledCommand],
) -> Result<Vec<i64>, StoreError> {
    let mut ids = Vec::with_capacity(handled.len());
    for command in handled {
        match &command.command {
            CommandRef::Pending(command_id) => {
                let changed = conn
                    .prepare_cached(
                        "UPDATE commands SET state = ?2, outcome = ?3, handled_at_ms = ?4,
                                             handled_by = ?5
                         WHERE command_id = ?1 AND state = 'pending'",
                    )?
                    .execute(params![
                        command_id,
                        command.state.as_str(),
                        command.outcome.to_string(),
                        command.handled_at_ms,
                        command.handled_by,
                    ])?;
                if changed != 1 {
                    return Err(StoreError::CommandHandled(*command_id));
                }
                ids.push(*command_id);
            }
            CommandRef::New(new) => {
                conn.prepare_cached(
                    "INSERT INTO commands (run_id, body, issued_by, issued_at_ms, state, outcome,
                                           handled_at_ms, handled_by, issued_on)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?
                .execute(params![
                    new.run_id.as_str(),
                    new.body.to_string(),
                    new.issued_by,
                    new.issued_at_ms,
                    command.state.as_str(),
                    command.outcome.to_string(),
                    command.handled_at_ms,
                    command.handled_by,
                    new.issued_on,
                ])?;
                ids.push(conn.last_insert_rowid());
            }
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::test_support::{event, new_run, rid, seq, temp_store};

    fn new_command(run_id: &str, body: Value) -> NewCommand {
        NewCommand {
            run_id: run_id.into(),
            body,
            issued_by: "alice".into(),
            issued_on: Some("alpha".into()),
            issued_at_ms: 5,
        }
    }

    fn handled(command_id: i64, state: CommandState) -> HandledCommand {
        HandledCommand {
            command: CommandRef::Pending(command_id),
            state,
            outcome: json!({"ok": true}),
            handled_at_ms: 9,
            handled_by: "pid 1".into(),
        }
    }

    #[test]
    fn commands_are_pending_until_handled_with_their_events() {
        let (_dir, mut store) = temp_store();
        store
            .create_run(&new_run("r1"), &[event("A", json!(1))])
            .unwrap();
        store
            .create_run(&new_run("r2"), &[event("A", json!(1))])
            .unwrap();
        let first = store
            .insert_command(&new_command("r1", json!({"pause": {}})))
            .unwrap();
        let second = store
            .insert_command(&new_command("r2", json!("cancel")))
            .unwrap();
        let third = store
            .insert_command(&new_command("r1", json!("resume")))
            .unwrap();
        assert!(first < second && second < third);

        let pending: Vec<i64> = store
            .pending_commands(&rid("r1"))
            .unwrap()
            .iter()
            .map(|c| c.command_id)
            .collect();
        assert_eq!(pending, [first, third]);
        assert_eq!(
            store.pending_commands_after(first).unwrap(),
            [(second, rid("r2")), (third, rid("r1"))]
        );

        store
            .append_handling(
                &rid("r1"),
                seq(1),
                &[event("RunPauseRequested", json!({}))],
                Some("paused"),
                &[handled(first, CommandState::Applied)],
            )
            .unwrap();
        let row = store.command(first).unwrap().unwrap();
        assert_eq!(row.state, CommandState::Applied);
        assert_eq!(row.outcome, Some(json!({"ok": true})));
        assert_eq!(row.handled_by.as_deref(), Some("pid 1"));
        assert_eq!(row.body, json!({"pause": {}}));
        assert_eq!(store.pending_commands(&rid("r1")).unwrap().len(), 1);
    }

    #[test]
    fn a_command_is_handled_once_and_a_second_try_writes_no_events() {
        let (_dir, mut store) = temp_store();
        store
            .create_run(&new_run("r1"), &[event("A", json!(1))])
            .unwrap();
        let id = store
            .insert_command(&new_command("r1", json!("cancel")))
            .unwrap();
        store
            .handle_commands(&[handled(id, CommandState::Refused)])
            .unwrap();
        let err = store
            .append_handling(
                &rid("r1"),
                seq(1),
                &[event("RunCancelRequested", json!({}))],
                None,
                &[handled(id, CommandState::Applied)],
            )
            .unwrap_err();
        assert!(
            matches!(err, StoreError::CommandHandled(i) if i == id),
            "{err:?}"
        );
        assert_eq!(store.load_events(&rid("r1"), seq(0)).unwrap().len(), 1);
        assert_eq!(
            store.command(id).unwrap().unwrap().state,
            CommandState::Refused
        );
        // Not even SQL from outside can rewrite a handled command.
        let rewrite = store
            .conn
            .execute("UPDATE commands SET state = 'applied'", []);
        assert!(rewrite.unwrap_err().to_string().contains("cannot change"));
    }

    #[test]
    fn a_command_handed_over_directly_is_recorded_as_handled_with_its_events() {
        let (_dir, mut store) = temp_store();
        store
            .create_run(&new_run("r1"), &[event("A", json!(1))])
            .unwrap();
        let direct = HandledCommand {
            command: CommandRef::New(new_command("r1", json!({"command": "pause"}))),
            ..handled(0, CommandState::Applied)
        };
        let (last, ids) = store
            .append_commands(
                &rid("r1"),
                seq(1),
                &[event("RunPauseRequested", json!({}))],
                None,
                &[direct],
            )
            .unwrap();
        assert_eq!(last, seq(2));
        let row = store.command(ids[0]).unwrap().unwrap();
        assert_eq!(row.state, CommandState::Applied);
        assert_eq!(row.body, json!({"command": "pause"}));
        assert!(store.pending_commands(&rid("r1")).unwrap().is_empty());
    }

    #[test]
    fn a_command_for_an_unknown_run_is_refused() {
        let (_dir, mut store) = temp_store();
        let err = store
            .insert_command(&new_command("ghost", json!("cancel")))
            .unwrap_err();
        assert!(matches!(err, StoreError::RunNotFound(ref id) if id == "ghost"));
    }
}
