//! What the engine's internals share, below the public handle: the configuration, the
//! database, the clock, the executors and the runtime they run on, the drivers of this process,
//! the watches, and the signal that the engine is shutting down.
//!
//! Drivers, feeds, standbys and background tasks hold the context, never an `Engine`: the
//! handle is the user's, and dropping its last clone shuts the engine down (see `lifetime`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

use stepwise_core::ids::RunId;
use stepwise_core::workflow::Workflow;
use tokio::runtime::Handle;
use tokio::sync::watch;

use crate::checkpoint::Checkpoints;
use crate::clock::Clock;
use crate::config::EngineConfig;
use crate::db::Db;
use crate::error::EngineError;
use crate::executors::Executors;
use crate::failures::Failures;
use crate::file_watch::FileWatch;
use crate::live::LiveDrivers;
use crate::locks_dir_watch::LocksDirWatch;
use crate::test_hooks::TestHooks;

/// How many compiled workflows an engine keeps.
const COMPILED_WORKFLOWS_KEPT: usize = 64;

pub(crate) struct Context {
    pub(crate) config: EngineConfig,
    pub(crate) db: Db,
    pub(crate) clock: Arc<dyn Clock>,
    /// The drivers of this process.
    pub(crate) live: LiveDrivers,
    /// Workflows compiled from recorded sources, by content hash: a run's workflow is
    /// compiled once per engine, not on every load.
    compiled: Mutex<HashMap<String, Arc<Workflow>>>,
    pub(crate) inbox_watch: OnceLock<()>,
    /// Runs another process holds that this engine stands by for.
    standing_by: Mutex<HashSet<RunId>>,
    /// The machine each run looked at belongs to, when another than this one (`None`: this
    /// one, or recorded before machines were); see `machines`.
    pub(crate) machines: Mutex<HashMap<RunId, Option<String>>>,
    /// The watch on pending edits' files, started when a driver first needs it.
    file_watch: OnceLock<FileWatch>,
    /// The watch on the locks directory (run locks held elsewhere, progress files), started
    /// when first needed.
    locks_dir_watch: OnceLock<LocksDirWatch>,
    /// What performs each operation kind.
    pub(crate) executors: Executors,
    /// Drivers that failed, for whoever wants to know.
    pub(crate) failures: Failures,
    /// The multi-threaded runtime where operations are performed (model streams, commands,
    /// progress, large reads, lock probes, reads of the database): never the writer's thread,
    /// so that a slow commit delays no stream and a busy stream no commit.
    pub(crate) exec: Handle,
    /// Raised once, when the engine starts shutting down.
    shutdown: watch::Sender<bool>,
    /// Faults tests inject.
    pub(crate) test_hooks: TestHooks,
    /// What is known of the workspaces checkpoints were taken of.
    pub(crate) checkpoints: Checkpoints,
}

impl Context {
    pub(crate) fn new(
        config: EngineConfig,
        db: Db,
        clock: Arc<dyn Clock>,
        exec: Handle,
    ) -> Context {
        let executors = Executors::new(config.settings.clone(), config.settings_named);
        Context {
            config,
            db,
            clock,
            live: LiveDrivers::new(),
            compiled: Mutex::new(HashMap::new()),
            inbox_watch: OnceLock::new(),
            standing_by: Mutex::new(HashSet::new()),
            machines: Mutex::new(HashMap::new()),
            file_watch: OnceLock::new(),
            locks_dir_watch: OnceLock::new(),
            executors,
            failures: Failures::new(),
            exec,
            shutdown: watch::channel(false).0,
            test_hooks: TestHooks::default(),
            checkpoints: Checkpoints::default(),
        }
    }

    /// The engine's watch on pending edits' files.
    pub(crate) fn file_watch(&self) -> &FileWatch {
        self.file_watch.get_or_init(FileWatch::start)
    }

    /// The engine's watch on pending edits' files, if a driver ever needed it.
    pub(crate) fn started_file_watch(&self) -> Option<&FileWatch> {
        self.file_watch.get()
    }

    /// The engine's watch on the locks directory: run locks held elsewhere, progress files.
    pub(crate) fn locks_dir_watch(&self) -> &LocksDirWatch {
        self.locks_dir_watch
            .get_or_init(|| LocksDirWatch::start(&self.db.lock_dir, self.exec.clone()))
    }

    /// Takes the run if nobody holds it now, off the async workers (a hold on a PostgreSQL
    /// server is a round trip); otherwise says who holds it.
    pub(crate) async fn hold(
        &self,
        run_id: &RunId,
    ) -> Result<Result<crate::lock::RunLock, String>, EngineError> {
        let holds = self.db.holds.clone();
        let run_id = run_id.clone();
        let now = self.clock.now_ms();
        self.exec
            .spawn_blocking(move || holds.try_acquire(&run_id, now))
            .await
            .map_err(|e| EngineError::Internal(format!("taking a run stopped: {e}")))?
    }

    /// Marks a run as stood by for; `false` if it already was.
    pub(crate) fn start_standing_by(&self, run_id: &RunId) -> bool {
        self.standing_by
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(run_id.clone())
    }

    /// Whether this engine stands by for the run already.
    pub(crate) fn is_standing_by(&self, run_id: &RunId) -> bool {
        self.standing_by
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(run_id)
    }

    pub(crate) fn stop_standing_by(&self, run_id: &RunId) {
        self.standing_by
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(run_id);
    }

    pub(crate) fn remember_workflow(&self, workflow: &Arc<Workflow>) {
        let mut compiled = self.compiled.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded, for a long-lived process: when full, one entry goes (any: a workflow
        // dropped is only compiled again when a run of it is loaded).
        if compiled.len() >= COMPILED_WORKFLOWS_KEPT
            && !compiled.contains_key(&workflow.source_hash)
            && let Some(old) = compiled.keys().next().cloned()
        {
            compiled.remove(&old);
        }
        compiled.insert(workflow.source_hash.clone(), Arc::clone(workflow));
    }

    pub(crate) fn cached_workflow(&self, hash: &str) -> Option<Arc<Workflow>> {
        self.compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(hash)
            .cloned()
    }

    /// Whether the engine is shutting down (or has shut down).
    pub(crate) fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// A receiver that turns `true` when the engine starts shutting down.
    pub(crate) fn watch_shutdown(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Raises the shutdown signal; `false` if it was raised before.
    pub(crate) fn raise_shutdown(&self) -> bool {
        !self.shutdown.send_replace(true)
    }

    /// Stops the watches: their threads end and they call nobody any more.
    pub(crate) fn stop_watches(&self) {
        if let Some(watch) = self.file_watch.get() {
            watch.stop();
        }
        if let Some(watch) = self.locks_dir_watch.get() {
            watch.stop();
        }
        self.db.changes.stop();
    }

    /// Waits until the database may have changed (see `db::changes`); fails once the engine
    /// shuts down.
    pub(crate) async fn changed(
        &self,
        changes: &mut watch::Receiver<u64>,
    ) -> Result<(), EngineError> {
        let mut shutdown = self.watch_shutdown();
        tokio::select! {
            changed = changes.changed() => changed.map_err(|_| EngineError::ShutDown),
            _ = shutdown.wait_for(|down| *down) => Err(EngineError::ShutDown),
        }
    }
}
