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
mod holds;
mod listen;
mod log;
mod password;
mod runs;
mod schema;
mod shared;
mod signals;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use postgres::{Client, GenericClient, Row, Statement, ToStatement, types::ToSql};

pub use connect::{PgProbe, PgTarget};
pub use listen::PgListener;

use crate::{Durability, StoreError};

/// One connection to a PostgreSQL database holding an event log.
///
/// Every call runs on a thread of the connection's own: the blocking client drives its
/// connection with a runtime of its own, which may not be started inside another (the engine's
/// writer thread is one), and so it waits there, off whatever runtime the caller is on.
pub struct PgStore {
    /// Always `Some` but while the store is dropped (on its thread: see `Drop`).
    conn: Mutex<Option<Connection>>,
    io: rayon_core::ThreadPool,
    target: PgTarget,
    durability: Durability,
    /// The URL without a password, as a path: what errors and [`crate::Store::path`] show.
    label: PathBuf,
    commits: AtomicU64,
    /// The connection's server process (0 before the first connection).
    pid: AtomicU32,
    /// How many connections were made after the first: a session's locks, and a snapshot,
    /// belong to the connection they were taken on.
    generation: AtomicU64,
    /// A snapshot is open: a call that finds the connection gone fails rather than read the
    /// rest of it outside the snapshot on a new one.
    in_snapshot: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("database", &self.label)
            .finish_non_exhaustive()
    }
}

/// The client, the statements prepared on it, and its server process.
struct Connection {
    client: Client,
    statements: HashMap<String, Statement>,
    pid: u32,
}

/// The channel every write notifies at its commit, for the change feeds of every process.
pub const CHANGES_CHANNEL: &str = "stepwise_changes";

impl Connection {
    fn open(target: &PgTarget, durability: Durability) -> Result<Connection, StoreError> {
        let mut client = target.connect(durability)?;
        let pid: i32 = client
            .query_one("SELECT pg_backend_pid()", &[])
            .map_err(|error| StoreError::from(error).at(Path::new(target.label())))?
            .get(0);
        Ok(Connection {
            client,
            statements: HashMap::new(),
            pid: u32::try_from(pid).unwrap_or(0),
        })
    }
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
        let io = rayon_core::ThreadPoolBuilder::new()
            .num_threads(1)
            .thread_name(|_| "stepwise-pg".to_owned())
            .build()
            .map_err(|error| StoreError::Unreachable {
                database: target.label().to_owned(),
                reason: format!("no thread for its connection: {error}"),
            })?;
        let conn = io.install(|| {
            let mut conn = Connection::open(target, durability)?;
            schema::migrate(&mut conn.client, target)?;
            Ok::<_, StoreError>(conn)
        })?;
        tracing::debug!(database = %target.label(), ?durability, "opened event store on PostgreSQL");
        Ok(PgStore {
            pid: AtomicU32::new(conn.pid),
            conn: Mutex::new(Some(conn)),
            io,
            target: target.clone(),
            durability,
            label: PathBuf::from(target.label()),
            commits: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            in_snapshot: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Reads through the connection (reconnecting first if the server closed it). A read
    /// that finds the connection gone (the server restarted since it was last used) is read
    /// again, once, on a new one: a read changes nothing, so it may be repeated.
    pub(crate) fn read<T: Send>(
        &self,
        read: impl Fn(&mut Db<'_, Client>) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        self.io.install(move || {
            let mut tries = 0;
            loop {
                tries += 1;
                let mut guard = self.connection()?;
                let Some(Connection {
                    client, statements, ..
                }) = guard.as_mut()
                else {
                    return Err(self.closed());
                };
                let result =
                    read(&mut Db { client, statements }).map_err(|error| error.at(&self.label));
                let lost = forget_if_lost(&mut guard, &result);
                if !(lost && tries == 1 && !self.in_snapshot.load(Ordering::Acquire)) {
                    return result;
                }
            }
        })
    }

    /// Runs `write` in one transaction, committed when it returns `Ok`. It is given the
    /// transaction and the number it drew from `stepwise_counter`, which orders it among all
    /// writes (see the module's documentation).
    pub(crate) fn write<T: Send>(
        &self,
        write: impl FnOnce(&mut Db<'_, postgres::Transaction<'_>>, i64) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        self.io.install(|| self.write_here(write))
    }

    /// [`PgStore::write`], on the connection's thread.
    fn write_here<T>(
        &self,
        write: impl FnOnce(&mut Db<'_, postgres::Transaction<'_>>, i64) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut write = Some(write);
        let mut tries = 0;
        loop {
            tries += 1;
            let mut guard = self.connection()?;
            let Some(Connection {
                client, statements, ..
            }) = guard.as_mut()
            else {
                return Err(self.closed());
            };
            // Whether the failure came before `write` was called: nothing was written then.
            let mut begun = false;
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
                begun = true;
                let write = write.take().ok_or_else(|| StoreError::Postgres {
                    database: None,
                    reason: "a write was tried twice".to_owned(),
                    retryable: false,
                    gone: false,
                })?;
                let value = write(&mut db, change)?;
                // Delivered at the commit, to every process listening (see `changes`).
                db.query_one(
                    &format!("SELECT pg_notify('{CHANGES_CHANNEL}', '')::text"),
                    &[],
                )?;
                tx.commit()?;
                Ok(value)
            })();
            if result.is_ok() {
                self.commits.fetch_add(1, Ordering::Relaxed);
            }
            let lost = forget_if_lost(&mut guard, &result);
            // A connection the server ended since it was last used fails at the transaction's
            // first statement, before anything is written: begun again, once, on a new one. A
            // failure later leaves the write's fate for the caller to find out.
            if !(lost && !begun && tries == 1) {
                return result.map_err(|error: StoreError| error.at(&self.label));
            }
        }
    }

    /// The connection, made anew when the server closed the last one (a restart, a network
    /// cut): what was prepared on it is gone with it.
    fn connection(&self) -> Result<MutexGuard<'_, Option<Connection>>, StoreError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if conn.as_ref().is_none_or(|conn| conn.client.is_closed()) {
            if self.in_snapshot.load(Ordering::Acquire) {
                return Err(self.closed());
            }
            tracing::info!(database = %self.label.display(), "reconnecting to PostgreSQL");
            let opened = Connection::open(&self.target, self.durability)?;
            self.pid.store(opened.pid, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::AcqRel);
            *conn = Some(opened);
        }
        Ok(conn)
    }

    /// Which connection this is: it moves each time one is made anew (what was held on the
    /// last one is gone).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn closed(&self) -> StoreError {
        StoreError::Postgres {
            database: Some(self.label.display().to_string()),
            reason: "the connection is closed".to_owned(),
            retryable: true,
            gone: true,
        }
    }

    /// Starts a read-only snapshot: everything read until [`PgSnapshot::end`] (or its drop)
    /// comes from one commit.
    pub(crate) fn begin_snapshot(&self) -> Result<PgSnapshot<'_>, StoreError> {
        self.io.install(|| {
            // As for a read: a connection found gone at the start is made anew, once.
            let mut tries = 0;
            loop {
                tries += 1;
                let mut guard = self.connection()?;
                let conn = guard.as_mut().ok_or_else(|| self.closed())?;
                let begun = conn
                    .client
                    .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .map_err(StoreError::from);
                if !(forget_if_lost(&mut guard, &begun) && tries == 1) {
                    return begun.map_err(|error| error.at(&self.label));
                }
            }
        })?;
        self.in_snapshot.store(true, Ordering::Release);
        Ok(PgSnapshot { store: self })
    }

    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// The server process of this connection, as the notifications of its commits name their
    /// sender (another one after a reconnect).
    pub fn backend_pid(&self) -> Option<u32> {
        Some(self.pid.load(Ordering::Relaxed)).filter(|pid| *pid != 0)
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

impl Drop for PgStore {
    /// Closing the connection waits for the server as every call does: on the store's thread,
    /// never inside the caller's runtime.
    fn drop(&mut self) {
        let conn = self
            .conn
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        self.io.install(move || drop(conn));
    }
}

/// After a failure that says the connection may be gone, the next call connects anew rather
/// than find out again (the client may not know yet that the server ended it).
/// Returns whether it was gone.
fn forget_if_lost<T>(conn: &mut Option<Connection>, result: &Result<T, StoreError>) -> bool {
    if let Err(StoreError::Postgres {
        retryable: true, ..
    }) = result
        && conn.as_mut().is_some_and(|conn| {
            conn.client.is_closed() || conn.client.simple_query("SELECT 1").is_err()
        })
    {
        *conn = None;
        return true;
    }
    false
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
        let store = self.store;
        store.in_snapshot.store(false, Ordering::Release);
        store.io.install(|| {
            let mut guard = store.conn.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(conn) = guard.as_mut()
                && conn.client.batch_execute("COMMIT").is_err()
            {
                // Whatever state it is in, the next call starts on a clean connection.
                *guard = None;
            }
        });
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
