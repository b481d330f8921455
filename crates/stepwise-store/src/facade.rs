//! [`Store`]: one API over the two backends. Each method hands the call to the backend the
//! store was opened on; what a method guarantees is documented on [`SqliteStore`]'s method of
//! the same name and holds on both (the contract tests run each against both).

use std::path::Path;

use stepwise_core::ids::{EventSeq, RunId};

use crate::{
    CommandRow, Durability, FileId, HandledCommand, MemoryEntry, MemorySummary, NewCommand,
    NewEvent, NewRun, NewSignal, Rememberer, RunFilter, RunRow, Signal, SqliteStore, StoreError,
    StoredEvent, Verified,
};

/// An open event log: a SQLite file or a PostgreSQL database. One per thread.
#[derive(Debug)]
pub struct Store {
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    Sqlite(SqliteStore),
    #[cfg(feature = "postgres")]
    Postgres(Box<crate::PgStore>),
}

/// Calls the same method on whichever backend the store was opened on.
macro_rules! on_backend {
    ($self:ident, $store:ident => $call:expr) => {
        match &$self.backend {
            Backend::Sqlite($store) => $call,
            #[cfg(feature = "postgres")]
            Backend::Postgres($store) => $call,
        }
    };
    (mut $self:ident, $store:ident => $call:expr) => {
        match &mut $self.backend {
            Backend::Sqlite($store) => $call,
            #[cfg(feature = "postgres")]
            Backend::Postgres($store) => $call,
        }
    };
}

impl From<SqliteStore> for Store {
    fn from(store: SqliteStore) -> Store {
        Store {
            backend: Backend::Sqlite(store),
        }
    }
}

#[cfg(feature = "postgres")]
impl From<crate::PgStore> for Store {
    fn from(store: crate::PgStore) -> Store {
        Store {
            backend: Backend::Postgres(Box::new(store)),
        }
    }
}

impl Store {
    /// Opens (creating and migrating) the SQLite database at `path`: [`SqliteStore::open`].
    pub fn open(path: &Path, durability: Durability) -> Result<Store, StoreError> {
        SqliteStore::open(path, durability).map(Store::from)
    }

    /// Another connection to a SQLite database, for reading: [`SqliteStore::open_reader`].
    pub fn open_reader(path: &Path) -> Result<Store, StoreError> {
        SqliteStore::open_reader(path).map(Store::from)
    }

    /// Connects to (creating and migrating the schema of) a PostgreSQL database.
    #[cfg(feature = "postgres")]
    pub fn open_postgres(
        target: &crate::PgTarget,
        durability: Durability,
    ) -> Result<Store, StoreError> {
        crate::PgStore::connect(target, durability).map(Store::from)
    }

    /// The SQLite store, when that is the backend.
    pub fn as_sqlite(&self) -> Option<&SqliteStore> {
        match &self.backend {
            Backend::Sqlite(store) => Some(store),
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => None,
        }
    }

    /// The PostgreSQL store, when that is the backend.
    #[cfg(feature = "postgres")]
    pub fn as_postgres(&self) -> Option<&crate::PgStore> {
        match &self.backend {
            Backend::Postgres(store) => Some(store),
            Backend::Sqlite(_) => None,
        }
    }

    /// The server process of a PostgreSQL connection (`None` on SQLite): notifications of
    /// this connection's commits name it.
    pub fn backend_pid(&self) -> Option<u32> {
        match &self.backend {
            Backend::Sqlite(_) => None,
            #[cfg(feature = "postgres")]
            Backend::Postgres(store) => store.backend_pid(),
        }
    }

    /// Runs `read` inside one read transaction, so that everything it reads comes from the same
    /// commit (a run's row and its events agree, however fast a writer appends).
    pub fn snapshot<T, E: From<StoreError>>(
        &self,
        read: impl FnOnce(&Store) -> Result<T, E>,
    ) -> Result<T, E> {
        match &self.backend {
            Backend::Sqlite(store) => {
                // Deferred: the snapshot is taken by the first read and held until the end;
                // dropping the transaction ends it (there is nothing to commit).
                let snapshot = store
                    .conn
                    .unchecked_transaction()
                    .map_err(|e| E::from(StoreError::from(e)))?;
                let result = read(self);
                drop(snapshot);
                result
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(store) => {
                let snapshot = store.begin_snapshot().map_err(E::from)?;
                let result = read(self);
                snapshot.end();
                result
            }
        }
    }

    /// How many transactions this connection has committed.
    pub fn commits(&self) -> u64 {
        on_backend!(self, store => store.commits())
    }

    /// A number that changes whenever another connection commits (SQLite's `data_version`;
    /// on PostgreSQL the last change seq of any run).
    pub fn data_version(&self) -> Result<i64, StoreError> {
        on_backend!(self, store => store.data_version())
    }

    /// The database: its file, or for PostgreSQL its URL without a password.
    pub fn path(&self) -> &Path {
        on_backend!(self, store => store.path())
    }

    /// Whether this user may only read the database.
    pub fn is_read_only(&self) -> bool {
        on_backend!(self, store => store.is_read_only())
    }

    /// The file this connection opened (none on PostgreSQL).
    pub fn file_id(&self) -> Option<FileId> {
        self.as_sqlite().and_then(SqliteStore::file_id)
    }

    /// [`SqliteStore::check_file`]; always fine on PostgreSQL.
    pub fn check_file(&self) -> Result<(), StoreError> {
        self.as_sqlite().map_or(Ok(()), SqliteStore::check_file)
    }

    /// Fails with [`StoreError::ReadOnly`] if this connection may not write.
    pub fn check_writable(&self) -> Result<(), StoreError> {
        on_backend!(self, store => store.check_writable())
    }

    /// [`SqliteStore::empty_wal`]; nothing to do on PostgreSQL.
    pub fn empty_wal(&self) -> Result<(), StoreError> {
        self.as_sqlite().map_or(Ok(()), SqliteStore::empty_wal)
    }

    /// [`SqliteStore::keep_wal_on_close`]; nothing to do on PostgreSQL.
    pub fn keep_wal_on_close(&self) {
        if let Some(store) = self.as_sqlite() {
            store.keep_wal_on_close();
        }
    }

    /// [`SqliteStore::integrity_check`]; PostgreSQL checks its own pages (`ok`).
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        self.as_sqlite()
            .map_or_else(|| Ok("ok".to_owned()), SqliteStore::integrity_check)
    }

    /// [`SqliteStore::grow_wal_ahead`]; never grows anything on PostgreSQL.
    pub fn grow_wal_ahead(&mut self) -> Result<bool, StoreError> {
        match &mut self.backend {
            Backend::Sqlite(store) => store.grow_wal_ahead(),
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => Ok(false),
        }
    }

    // --- blobs

    pub fn put_blob(&mut self, bytes: &[u8]) -> Result<String, StoreError> {
        on_backend!(mut self, store => store.put_blob(bytes))
    }

    pub fn put_hashed_blobs(&mut self, blobs: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        on_backend!(mut self, store => store.put_hashed_blobs(blobs))
    }

    pub fn get_blob(&self, hash: &str) -> Result<Option<Vec<u8>>, StoreError> {
        on_backend!(self, store => store.get_blob(hash))
    }

    // --- the log

    pub fn verify_run(&self, run_id: &RunId) -> Result<Verified, StoreError> {
        on_backend!(self, store => store.verify_run(run_id))
    }

    pub fn append(
        &mut self,
        run_id: &RunId,
        expected_last_seq: EventSeq,
        events: &[NewEvent],
        status: Option<&str>,
    ) -> Result<EventSeq, StoreError> {
        self.append_handling(run_id, expected_last_seq, events, status, &[])
    }

    pub fn append_handling(
        &mut self,
        run_id: &RunId,
        expected_last_seq: EventSeq,
        events: &[NewEvent],
        status: Option<&str>,
        handled: &[HandledCommand],
    ) -> Result<EventSeq, StoreError> {
        self.append_commands(run_id, expected_last_seq, events, status, handled)
            .map(|(last_seq, _)| last_seq)
    }

    pub fn append_commands(
        &mut self,
        run_id: &RunId,
        expected_last_seq: EventSeq,
        events: &[NewEvent],
        status: Option<&str>,
        handled: &[HandledCommand],
    ) -> Result<(EventSeq, Vec<i64>), StoreError> {
        on_backend!(mut self, store => store.append_commands(run_id, expected_last_seq, events, status, handled))
    }

    pub fn load_events(
        &self,
        run_id: &RunId,
        after_seq: EventSeq,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.load_events_page(run_id, after_seq, usize::MAX)
    }

    pub fn load_events_page(
        &self,
        run_id: &RunId,
        after_seq: EventSeq,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        on_backend!(self, store => store.load_events_page(run_id, after_seq, limit))
    }

    pub fn load_events_at(
        &self,
        run_id: &RunId,
        seqs: &[EventSeq],
    ) -> Result<Vec<StoredEvent>, StoreError> {
        on_backend!(self, store => store.load_events_at(run_id, seqs))
    }

    // --- runs

    pub fn create_run(
        &mut self,
        run: &NewRun,
        events: &[NewEvent],
    ) -> Result<EventSeq, StoreError> {
        on_backend!(mut self, store => store.create_run(run, events))
    }

    pub fn run(&self, run_id: &RunId) -> Result<Option<RunRow>, StoreError> {
        on_backend!(self, store => store.run(run_id))
    }

    pub fn runs_from(&self, run_id: &RunId) -> Result<Vec<RunRow>, StoreError> {
        on_backend!(self, store => store.runs_from(run_id))
    }

    pub fn find_run(&self, id_or_prefix: &str) -> Result<RunRow, StoreError> {
        on_backend!(self, store => store.find_run(id_or_prefix))
    }

    pub fn list_runs(&self, limit: usize) -> Result<Vec<RunRow>, StoreError> {
        on_backend!(self, store => store.list_runs(limit))
    }

    pub fn runs_changed_since(
        &self,
        change_seq: u64,
        limit: usize,
    ) -> Result<Vec<RunRow>, StoreError> {
        on_backend!(self, store => store.runs_changed_since(change_seq, limit))
    }

    pub fn last_change_seq(&self) -> Result<u64, StoreError> {
        on_backend!(self, store => store.last_change_seq())
    }

    pub fn unfinished_runs(&self) -> Result<Vec<RunRow>, StoreError> {
        on_backend!(self, store => store.unfinished_runs())
    }

    pub fn runs_page(
        &self,
        filter: &RunFilter,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<RunRow>, StoreError> {
        on_backend!(self, store => store.runs_page(filter, offset, limit))
    }

    pub fn count_runs(&self, filter: &RunFilter) -> Result<u64, StoreError> {
        on_backend!(self, store => store.count_runs(filter))
    }

    pub fn count_runs_by_status(&self) -> Result<Vec<(String, u64)>, StoreError> {
        on_backend!(self, store => store.count_runs_by_status())
    }

    // --- the command inbox

    pub fn insert_command(&mut self, command: &NewCommand) -> Result<i64, StoreError> {
        on_backend!(mut self, store => store.insert_command(command))
    }

    pub fn command(&self, command_id: i64) -> Result<Option<CommandRow>, StoreError> {
        on_backend!(self, store => store.command(command_id))
    }

    pub fn commands(&self, run_id: &RunId) -> Result<Vec<CommandRow>, StoreError> {
        on_backend!(self, store => store.commands(run_id))
    }

    pub fn pending_commands(&self, run_id: &RunId) -> Result<Vec<CommandRow>, StoreError> {
        on_backend!(self, store => store.pending_commands(run_id))
    }

    pub fn pending_commands_after(&self, after: i64) -> Result<Vec<(i64, RunId)>, StoreError> {
        on_backend!(self, store => store.pending_commands_after(after))
    }

    pub fn handle_commands(&mut self, handled: &[HandledCommand]) -> Result<Vec<i64>, StoreError> {
        on_backend!(mut self, store => store.handle_commands(handled))
    }

    // --- signals and trigger firings

    pub fn record_signal(&mut self, new: &NewSignal) -> Result<(Signal, bool), StoreError> {
        on_backend!(mut self, store => store.record_signal(new))
    }

    pub fn take_signal(
        &mut self,
        name: &str,
        run: &str,
        op: u64,
    ) -> Result<Option<Signal>, StoreError> {
        on_backend!(mut self, store => store.take_signal(name, run, op))
    }

    pub fn signal_ready(&self, name: &str, run: &str, op: u64) -> Result<bool, StoreError> {
        on_backend!(self, store => store.signal_ready(name, run, op))
    }

    pub fn signals(&self, limit: usize) -> Result<Vec<Signal>, StoreError> {
        on_backend!(self, store => store.signals(limit))
    }

    pub fn record_file_firing(
        &mut self,
        workflow_path: &str,
        keys: &[String],
        build: impl FnOnce(&[usize]) -> NewSignal + Send,
    ) -> Result<Option<Signal>, StoreError> {
        on_backend!(mut self, store => store.record_file_firing(workflow_path, keys, build))
    }

    pub fn unstarted_signals(
        &self,
        name: &str,
        workflow_path: &str,
        after_id: i64,
        since_ms: i64,
    ) -> Result<Vec<Signal>, StoreError> {
        on_backend!(self, store => store.unstarted_signals(name, workflow_path, after_id, since_ms))
    }

    pub fn latest_signal(&self, name: &str) -> Result<Option<Signal>, StoreError> {
        on_backend!(self, store => store.latest_signal(name))
    }

    pub fn runs_in_workspace_since(
        &self,
        workspace: &str,
        since_ms: i64,
    ) -> Result<Vec<RunRow>, StoreError> {
        on_backend!(self, store => store.runs_in_workspace_since(workspace, since_ms))
    }

    // --- agent memory

    pub fn remember(
        &mut self,
        memory: &str,
        key: &str,
        text: &str,
        by: Rememberer<'_>,
    ) -> Result<bool, StoreError> {
        on_backend!(mut self, store => store.remember(memory, key, text, by))
    }

    pub fn recall(&self, memory: &str, query: &str) -> Result<Vec<MemoryEntry>, StoreError> {
        on_backend!(self, store => store.recall(memory, query))
    }

    pub fn memory_entries(&self, memory: &str) -> Result<Vec<MemoryEntry>, StoreError> {
        on_backend!(self, store => store.memory_entries(memory))
    }

    pub fn forget(&mut self, memory: &str, key: &str) -> Result<bool, StoreError> {
        on_backend!(mut self, store => store.forget(memory, key))
    }

    pub fn memories(&self) -> Result<Vec<MemorySummary>, StoreError> {
        on_backend!(self, store => store.memories())
    }

    // --- telemetry bookkeeping

    pub fn start_telemetry(&mut self, collector: &str, now_ms: i64) -> Result<(), StoreError> {
        on_backend!(mut self, store => store.start_telemetry(collector, now_ms))
    }

    pub fn claim_telemetry(
        &mut self,
        collector: &str,
        holder: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        on_backend!(mut self, store => store.claim_telemetry(collector, holder, now_ms, lease_ms))
    }

    pub fn release_telemetry(&mut self, collector: &str, holder: &str) -> Result<(), StoreError> {
        on_backend!(mut self, store => store.release_telemetry(collector, holder))
    }

    pub fn telemetry_pending(
        &self,
        collector: &str,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<(RunRow, u64)>, StoreError> {
        on_backend!(self, store => store.telemetry_pending(collector, since_ms, limit))
    }

    pub fn advance_telemetry(
        &mut self,
        collector: &str,
        holder: &str,
        run_id: &str,
        span: (u64, u64),
    ) -> Result<bool, StoreError> {
        on_backend!(mut self, store => store.advance_telemetry(collector, holder, run_id, span))
    }
}
