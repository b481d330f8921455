//! The PostgreSQL backend: the event log of a team, on a server every member's processes reach.
//!
//! Each [`PgStore`] is one connection (one per thread, as SQLite's), with its statements
//! prepared once. What SQLite's single writer gives for free is made explicit here:
//!
//! - Every write transaction first takes the one row of `stepwise_counter` (`UPDATE … RETURNING`),
//!   so writers commit one at a time, in the order of the numbers they drew. A run's
//!   `change_seq`, a command's id and a signal's id therefore become visible in increasing
//!   order, and a follower asking "what changed after N?" never skips one committed late.
//! - The log is append-only by triggers that raise on `UPDATE`, `DELETE` and `TRUNCATE`.
//! - The schema is migrated on first use under an advisory lock (`schema.rs`), so any number
//!   of processes may start at once.
//!
//! The password is never part of what this module shows: [`PgTarget::label`] is the URL
//! without it, and errors name the database by that label.

mod commands;
mod connect;
mod log;
mod password;
mod runs;
mod schema;
mod shared;
mod signals;

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use postgres::{Client, GenericClient, Row, Statement, ToStatement, types::ToSql};

pub use connect::PgTarget;

use crate::{Durability, StoreError};

/// One connection to a PostgreSQL database holding an event log.
pub struct PgStore {
    conn: RefCell<Connection>,
    target: PgTarget,
    durability: Durability,
    /// The URL without a password, as a path: what errors and [`crate::Store::path`] show.
    label: PathBuf,
    commits: std::cell::Cell<u64>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("database", &self.label)
            .finish_non_exhaustive()
    }
}

/// The client and the statements prepared on it.
struct Connection {
    client: Client,
    statements: HashMap<String, Statement>,
}

/// Statements prepared on one connection, by their text.
type Statements = HashMap<String, Statement>;

/// A client (or a transaction on one) and its prepared statements: what every query goes
/// through.
pub(crate) struct Db<'a, C: GenericClient> {
    client: &'a mut C,
    statements: &'a mut Statements,
}

impl<C: GenericClient> Db<'_, C> {
    fn prepared(&mut self, sql: &str) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    pub(crate) fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let statement = self.prepared(sql)?;
        Ok(self.client.query(&statement, params)?)
    }

    pub(crate) fn query_opt(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        let statement = self.prepared(sql)?;
        Ok(self.client.query_opt(&statement, params)?)
    }

    pub(crate) fn query_one(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, StoreError> {
        let statement = self.prepared(sql)?;
        Ok(self.client.query_one(&statement, params)?)
    }

    pub(crate) fn execute(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let statement = self.prepared(sql)?;
        Ok(self.client.execute(&statement, params)?)
    }

    /// A query not worth keeping prepared (its text changes with its arguments).
    pub(crate) fn query_once<T: ?Sized + ToStatement>(
        &mut self,
        sql: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        Ok(self.client.query(sql, params)?)
    }
}

impl PgStore {
    /// Connects to the database `target` names and brings its schema up to date.
    pub fn connect(target: &PgTarget, durability: Durability) -> Result<PgStore, StoreError> {
        let mut client = target.connect(durability)?;
        schema::migrate(&mut client, target)?;
        tracing::debug!(database = %target.label(), ?durability, "opened event store on PostgreSQL");
        Ok(PgStore {
            conn: RefCell::new(Connection {
                client,
                statements: HashMap::new(),
            }),
            target: target.clone(),
            durability,
            label: PathBuf::from(target.label()),
            commits: std::cell::Cell::new(0),
        })
    }

    /// Reads through the connection (reconnecting first if the server closed it).
    pub(crate) fn read<T>(
        &self,
        read: impl FnOnce(&mut Db<'_, Client>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.connection()?;
        let Connection { client, statements } = &mut *conn;
        read(&mut Db { client, statements }).map_err(|error| error.at(&self.label))
    }

    /// Runs `write` in one transaction, committed when it returns `Ok`. It is given the
    /// transaction and the number it drew from `stepwise_counter`, which orders it among all
    /// writes (see the module's documentation).
    pub(crate) fn write<T>(
        &self,
        write: impl FnOnce(&mut Db<'_, postgres::Transaction<'_>>, i64) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.connection()?;
        let Connection { client, statements } = &mut *conn;
        let result = (|| {
            let mut tx = client.transaction()?;
            let mut db = Db {
                client: &mut tx,
                statements,
            };
            let change: i64 = db
                .query_one(
                    "UPDATE stepwise_counter SET value = value + 1 RETURNING value",
                    &[],
                )?
                .get(0);
            let value = write(&mut db, change)?;
            tx.commit()?;
            Ok(value)
        })();
        if result.is_ok() {
            self.commits.set(self.commits.get() + 1);
        }
        result.map_err(|error: StoreError| error.at(&self.label))
    }

    /// The connection, made anew when the server closed the last one (a restart, a network
    /// cut): what was prepared on it is gone with it.
    fn connection(&self) -> Result<std::cell::RefMut<'_, Connection>, StoreError> {
        let mut conn = self
            .conn
            .try_borrow_mut()
            .map_err(|_| StoreError::Postgres {
                database: Some(self.label.display().to_string()),
                reason: "the connection is already in use by this thread".to_owned(),
                retryable: false,
            })?;
        if conn.client.is_closed() {
            tracing::info!(database = %self.label.display(), "reconnecting to PostgreSQL");
            conn.client = self.target.connect(self.durability)?;
            conn.statements.clear();
        }
        Ok(conn)
    }

    /// Starts a read-only snapshot: everything read until [`PgSnapshot::end`] (or its drop)
    /// comes from one commit.
    pub(crate) fn begin_snapshot(&self) -> Result<PgSnapshot<'_>, StoreError> {
        let mut conn = self.connection()?;
        conn.client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .map_err(|error| StoreError::from(error).at(&self.label))?;
        Ok(PgSnapshot { store: self })
    }

    pub fn commits(&self) -> u64 {
        self.commits.get()
    }

    /// The last number drawn by any write: changes whenever anyone commits a write.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        self.read(|db| {
            Ok(db
                .query_one("SELECT value FROM stepwise_counter", &[])?
                .get(0))
        })
    }

    /// The database's URL without a password.
    pub fn path(&self) -> &Path {
        &self.label
    }

    /// Writes are refused by the server's own permissions, not known beforehand.
    pub fn is_read_only(&self) -> bool {
        false
    }

    pub fn check_writable(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// An open read-only snapshot on a [`PgStore`]'s connection.
pub(crate) struct PgSnapshot<'s> {
    store: &'s PgStore,
}

impl PgSnapshot<'_> {
    pub(crate) fn end(self) {}
}

impl Drop for PgSnapshot<'_> {
    fn drop(&mut self) {
        if let Ok(mut conn) = self.store.conn.try_borrow_mut() {
            let _ = conn.client.batch_execute("COMMIT");
        }
    }
}

/// A count or seq read from a `BIGINT`: never negative where the store wrote it.
pub(crate) fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A count or seq for a `BIGINT` column.
pub(crate) fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A limit for SQL, `usize::MAX` meaning none.
pub(crate) fn limit(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
