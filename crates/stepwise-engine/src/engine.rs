//! The engine handle: a cheap, cloneable, `Send + Sync` handle over one database that starts
//! runs, drives them in tasks of their own, takes people's commands and answers questions.
//! The CLI and the desktop app are both thin clients of it.
//!
//! A run is driven by at most one process at a time: the holder of its lock (see `lock`).
//! Everyone else sends it commands through its inbox in the database (see `inbox`) and
//! follows it through the feeds (see `feeds`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use stepwise_core::ids::RunId;
use stepwise_core::run::RunStatus;
use stepwise_core::workflow::{Workflow, WorkflowErrors, parse_workflow};
use stepwise_store::Durability;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::clock::{Clock, SystemClock};
use crate::db::Db;
use crate::driver::{self, Message};
use crate::error::EngineError;
use crate::exec::Executors;
use crate::file_watch::FileWatch;
use crate::lock::RunLock;
use crate::policy_files::UserPolicy;
use crate::settings::UserSettings;
use crate::start::{PreparedRun, StartFiles, StartRun, prepare_run};
use crate::workflow_file;

/// How many compiled workflows an engine keeps.
const COMPILED_WORKFLOWS_KEPT: usize = 64;

/// How to open an engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub db_path: PathBuf,
    pub durability: Durability,
    /// Who this engine records commands and runs as (the OS user for the CLI).
    pub user: String,
    /// The user's policy file, applied to every workspace.
    pub user_policy: Option<PathBuf>,
    /// The user's policy file was named explicitly (not the default location): then it must
    /// exist, so that a typo cannot silently drop every rule in it.
    pub user_policy_named: bool,
    /// The user's settings file (providers and model aliases).
    pub settings: Option<PathBuf>,
    /// The settings file was named explicitly: then it must exist.
    pub settings_named: bool,
    /// Keep driving a run while it waits for a person: commands from anywhere reach this
    /// process's driver, and it re-proposes edits whose files change (the app). Without it, a
    /// driver stops as soon as nothing can move without a person, and releases the run (the
    /// CLI).
    pub hold_waiting_runs: bool,
}

impl EngineConfig {
    pub fn new(db_path: impl Into<PathBuf>) -> EngineConfig {
        EngineConfig {
            db_path: db_path.into(),
            durability: Durability::Full,
            user: current_user(),
            user_policy: None,
            user_policy_named: false,
            settings: None,
            settings_named: false,
            hold_waiting_runs: false,
        }
    }

    /// The configuration every client of one user shares (the CLI and the app): each file
    /// where it is named (an explicitly named policy or settings file must exist), else at its
    /// default place in the user's directories (`<data dir>/stepwise/stepwise.db`,
    /// `<config dir>/stepwise/policy.yaml` and `settings.yaml`).
    pub fn for_user(
        db: Option<PathBuf>,
        user_policy: Option<PathBuf>,
        settings: Option<PathBuf>,
    ) -> Result<EngineConfig, EngineError> {
        let dirs = directories::ProjectDirs::from("", "", "stepwise");
        let db = match (db, &dirs) {
            (Some(db), _) => db,
            (None, Some(dirs)) => dirs.data_dir().join("stepwise.db"),
            (None, None) => {
                return Err(EngineError::Settings {
                    message: "no home directory to keep the database in; name one with --db or STEPWISE_DB".into(),
                });
            }
        };
        let config_file = |name: &str| dirs.as_ref().map(|d| d.config_dir().join(name));
        let mut config = EngineConfig::new(db);
        config.user_policy_named = user_policy.is_some();
        config.user_policy = user_policy.or_else(|| config_file("policy.yaml"));
        config.settings_named = settings.is_some();
        config.settings = settings.or_else(|| config_file("settings.yaml"));
        Ok(config)
    }
}

/// The name of the OS user running this process.
pub fn current_user() -> String {
    let name = whoami::username();
    if name.is_empty() {
        "unknown".to_string()
    } else {
        name
    }
}

/// Counters for benchmarks and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineStats {
    /// Transactions this engine has committed.
    pub commits: u64,
}

/// A run driven by this engine, in a task of its own.
#[derive(Debug)]
pub struct RunHandle {
    run_id: RunId,
    join: JoinHandle<Result<RunStatus, EngineError>>,
}

impl RunHandle {
    pub fn run_id(&self) -> &RunId {
        &self.run_id
    }

    /// Waits until the driver stops: the run finished, or (unless the engine holds waiting
    /// runs) nothing can move without a person. Returns the run's status then.
    pub async fn wait(self) -> Result<RunStatus, EngineError> {
        self.join
            .await
            .map_err(|e| EngineError::Internal(format!("the driver of a run stopped: {e}")))?
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.join.is_finished()
    }

    pub(crate) fn join_mut(&mut self) -> &mut JoinHandle<Result<RunStatus, EngineError>> {
        &mut self.join
    }
}

/// The Stepwise engine. Clones share everything.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: EngineConfig,
    pub(crate) db: Db,
    pub(crate) clock: Arc<dyn Clock>,
    live: Mutex<HashMap<RunId, LiveDriver>>,
    /// How many drivers this process runs; `idle` waits for 0.
    live_count: watch::Sender<usize>,
    next_driver: AtomicU64,
    /// Workflows compiled from recorded sources, by content hash: a run's workflow is
    /// compiled once per engine, not on every load.
    compiled: Mutex<HashMap<String, Arc<Workflow>>>,
    pub(crate) inbox_watch: OnceLock<()>,
    /// Runs another process holds that a thread of this engine stands by for.
    standing_by: Mutex<HashSet<RunId>>,
    /// The watch on pending edits' files, started when a driver first needs it.
    file_watch: OnceLock<FileWatch>,
    /// What performs each operation kind.
    pub(crate) executors: Executors,
}

/// A driver running in this process.
struct LiveDriver {
    id: u64,
    tx: mpsc::UnboundedSender<Message>,
    stopped: watch::Receiver<bool>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("db", &self.inner.config.db_path)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Opens (creating and migrating if needed) the database. Needs no async runtime; every
    /// other method is called from one.
    pub fn open(config: EngineConfig) -> Result<Engine, EngineError> {
        let db = Db::open(&config.db_path, config.durability)?;
        let replaced = db.file.subscribe();
        let engine = Engine {
            inner: Arc::new(Inner {
                config,
                db,
                clock: Arc::new(SystemClock),
                live: Mutex::new(HashMap::new()),
                live_count: watch::channel(0).0,
                next_driver: AtomicU64::new(1),
                compiled: Mutex::new(HashMap::new()),
                inbox_watch: OnceLock::new(),
                standing_by: Mutex::new(HashSet::new()),
                file_watch: OnceLock::new(),
                executors: Executors::new(),
            }),
        };
        let inner = Arc::downgrade(&engine.inner);
        engine
            .inner
            .db
            .writer
            .spawn(stop_when_replaced(inner, replaced));
        Ok(engine)
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    pub fn stats(&self) -> EngineStats {
        EngineStats {
            commits: self.inner.db.writer.commits(),
        }
    }

    /// Reads and checks a workflow file. A file that cannot be read is a validation error
    /// like any other (the caller named a file that is not a workflow).
    pub fn load_workflow(path: &Path) -> Result<(Arc<Workflow>, String), EngineError> {
        let label = path.display().to_string();
        let source = workflow_file::read(path)
            .map_err(|error| EngineError::Workflow(WorkflowErrors(vec![error])))?;
        let workflow = parse_workflow(&label, &source).map_err(EngineError::Workflow)?;
        Ok((Arc::new(workflow), source))
    }

    /// Records a new run (its `RunStarted` event) and starts driving it in a task of its own.
    pub async fn start_run(&self, start: StartRun) -> Result<RunHandle, EngineError> {
        self.inner.db.check_writable()?;
        let user = self.inner.config.user.clone();
        let user_policy = self
            .inner
            .config
            .user_policy
            .clone()
            .map(|path| UserPolicy {
                path,
                named: self.inner.config.user_policy_named,
            });
        let user_settings = self.inner.config.settings.clone().map(|path| UserSettings {
            path,
            named: self.inner.config.settings_named,
        });
        let lock_dir = self.inner.db.lock_dir.clone();
        let now = self.inner.clock.now_ms();
        // Reading and compiling the workflow, the workspace, the policy and settings files is
        // file IO, and a large workflow takes a while to compile: not on an async worker.
        let prepared = tokio::task::spawn_blocking(move || {
            let files = StartFiles {
                user: &user,
                user_policy: user_policy.as_ref(),
                user_settings: user_settings.as_ref(),
                lock_dir: &lock_dir,
            };
            prepare_run(&start, &files, now)
        })
        .await
        .map_err(|e| EngineError::Internal(format!("preparing the run stopped: {e}")))??;
        let PreparedRun {
            workflow,
            row,
            first,
            lock,
        } = prepared;
        let run_id = row.run_id.clone();
        self.remember_workflow(&workflow);
        self.inner
            .db
            .write(move |store| store.create_run(&row, &[first]))
            .await?;
        Ok(self.spawn_driver(&run_id, lock))
    }

    /// Continues a run (by id or unique prefix) in a task of its own: recovers what a crash
    /// interrupted and goes on. Fails with [`EngineError::RunLocked`] if a process (this one
    /// included) drives it already; send that process commands instead.
    pub async fn drive(&self, run: &str) -> Result<RunHandle, EngineError> {
        let run_id = self.find_run(run).await?.run_id;
        self.inner.db.check_writable()?;
        match RunLock::try_acquire(&self.inner.db.lock_dir, &run_id)? {
            Ok(lock) => Ok(self.spawn_driver(&run_id, lock)),
            Err(holder) => Err(EngineError::RunLocked { run_id, holder }),
        }
    }

    /// Starts driving every unfinished run that no process holds, oldest first. Runs held
    /// elsewhere are reported with [`EngineError::RunLocked`].
    pub async fn resume_unheld(
        &self,
    ) -> Result<Vec<(RunId, Result<RunHandle, EngineError>)>, EngineError> {
        self.inner.db.check_writable()?;
        let runs = self
            .inner
            .db
            .read(|store| Ok(store.unfinished_runs()?))
            .await?;
        let mut out = Vec::new();
        for run in runs {
            let handle = match RunLock::try_acquire(&self.inner.db.lock_dir, &run.run_id) {
                Ok(Ok(lock)) => Ok(self.spawn_driver(&run.run_id, lock)),
                Ok(Err(holder)) => Err(EngineError::RunLocked {
                    run_id: run.run_id.clone(),
                    holder,
                }),
                Err(e) => Err(e),
            };
            out.push((run.run_id, handle));
        }
        Ok(out)
    }

    /// Waits until this process drives no run any more (every driver it started has stopped).
    pub async fn idle(&self) {
        let mut count = self.inner.live_count.subscribe();
        let _ = count.wait_for(|n| *n == 0).await;
    }

    /// Starts the driver task for a run whose lock this process has just taken.
    pub(crate) fn spawn_driver(&self, run_id: &RunId, lock: RunLock) -> RunHandle {
        let (tx, rx) = mpsc::unbounded_channel();
        let (stopped_tx, stopped) = watch::channel(false);
        let id = self.inner.next_driver.fetch_add(1, Ordering::Relaxed);
        {
            let mut live = self.live();
            live.insert(
                run_id.clone(),
                LiveDriver {
                    id,
                    tx: tx.clone(),
                    stopped,
                },
            );
            self.inner.live_count.send_replace(live.len());
        }
        self.ensure_inbox_watch();
        let guard = LiveGuard {
            engine: self.clone(),
            run_id: run_id.clone(),
            id,
            stopped: stopped_tx,
        };
        let engine = self.clone();
        let owned_id = run_id.clone();
        let join = self.inner.db.writer.spawn(async move {
            // Unregisters (and tells waiters) however the driver ends, panics included. The
            // driver (and with it the lock) is dropped first; a command sent meanwhile falls back
            // to the inbox and a standby, which waits for the lock.
            let _guard = guard;
            driver::drive(engine, owned_id, lock, tx, rx).await
        });
        RunHandle {
            run_id: run_id.clone(),
            join,
        }
    }

    /// Whether this process drives the run (by full id) now.
    pub fn drives(&self, run_id: &RunId) -> bool {
        self.live().contains_key(run_id)
    }

    /// The channel to this process's driver of the run, if there is one.
    pub(crate) fn driver_channel(&self, run_id: &RunId) -> Option<mpsc::UnboundedSender<Message>> {
        self.live().get(run_id).map(|driver| driver.tx.clone())
    }

    /// Wakes this process's driver of the run to read its inbox; `false` when there is none.
    pub(crate) fn nudge(&self, run_id: &RunId) -> bool {
        self.live()
            .get(run_id)
            .is_some_and(|driver| driver.tx.send(Message::InboxChanged).is_ok())
    }

    /// If this process drives the run: a receiver that turns `true` when that driver stops.
    pub(crate) fn local_driver(&self, run_id: &RunId) -> Option<watch::Receiver<bool>> {
        self.live().get(run_id).map(|driver| driver.stopped.clone())
    }

    /// The engine's watch on pending edits' files.
    pub(crate) fn file_watch(&self) -> &FileWatch {
        self.inner.file_watch.get_or_init(FileWatch::start)
    }

    /// The engine's watch on pending edits' files, if a driver ever needed it.
    pub(crate) fn started_file_watch(&self) -> Option<&FileWatch> {
        self.inner.file_watch.get()
    }

    /// Moves whenever a driver of this process starts or stops.
    pub(crate) fn watch_drivers(&self) -> watch::Receiver<usize> {
        self.inner.live_count.subscribe()
    }

    /// Marks a run as stood by for; `false` if it already was.
    pub(crate) fn start_standing_by(&self, run_id: &RunId) -> bool {
        self.inner
            .standing_by
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(run_id.clone())
    }

    pub(crate) fn stop_standing_by(&self, run_id: &RunId) {
        self.inner
            .standing_by
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(run_id);
    }

    pub(crate) fn drives_anything(&self) -> bool {
        !self.live().is_empty()
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<RunId, LiveDriver>> {
        // A panic while holding this lock cannot leave the map half-changed.
        self.inner
            .live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn remember_workflow(&self, workflow: &Arc<Workflow>) {
        let mut compiled = self
            .inner
            .compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner());
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
        self.inner
            .compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(hash)
            .cloned()
    }
}

/// Unregisters a driver when its task ends.
struct LiveGuard {
    engine: Engine,
    run_id: RunId,
    id: u64,
    stopped: watch::Sender<bool>,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        {
            let mut live = self.engine.live();
            // Only this driver's entry: a new driver for the run may have registered already.
            if live.get(&self.run_id).is_some_and(|d| d.id == self.id) {
                live.remove(&self.run_id);
            }
            self.engine.inner.live_count.send_replace(live.len());
        }
        self.stopped.send_replace(true);
    }
}

/// Once the database file is found replaced, nothing more of this process's runs may happen:
/// the writer hands its write-ahead log over, and every driver stops (killing the commands it
/// started), recording nothing. On the writer thread, where the drivers live.
async fn stop_when_replaced(inner: Weak<Inner>, mut replaced: watch::Receiver<bool>) {
    if replaced.wait_for(|replaced| *replaced).await.is_err() {
        return;
    }
    let Some(inner) = inner.upgrade() else {
        return;
    };
    inner.db.writer.let_go_here();
    let drivers: Vec<mpsc::UnboundedSender<Message>> = inner
        .live
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .map(|driver| driver.tx.clone())
        .collect();
    for driver in drivers {
        let _ = driver.send(Message::DatabaseReplaced);
    }
}
