//! The engine: one handle over the store that starts runs, drives them, takes people's
//! decisions and answers questions about runs. The CLI and the app are both thin clients of it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use stepwise_core::event::{Event, Resolution, RunStarted};
use stepwise_core::run::{EditedProposal, RunState, RunStatus};
use stepwise_core::workflow::{Workflow, parse_workflow};
use stepwise_store::{Durability, NewRun, RunRow, Store, StoredEvent};
use tokio::sync::{mpsc, oneshot};

use crate::clock::{Clock, SystemClock};
use crate::driver::{Driver, Message};
use crate::error::EngineError;
use crate::lock::RunLock;
use crate::policy_files::load_policy;
use crate::record::{decode, new_event};
use crate::sandbox::Workspace;

/// How to open an engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub db_path: PathBuf,
    pub durability: Durability,
    /// Who this engine records decisions as (the OS user for the CLI).
    pub user: String,
    /// The user's policy file, applied to every workspace.
    pub user_policy: Option<PathBuf>,
}

impl EngineConfig {
    pub fn new(db_path: impl Into<PathBuf>) -> EngineConfig {
        EngineConfig {
            db_path: db_path.into(),
            durability: Durability::Full,
            user: current_user(),
            user_policy: None,
        }
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

/// What to start.
#[derive(Debug, Clone)]
pub struct StartRun {
    pub workflow_path: PathBuf,
    pub workspace: PathBuf,
    pub inputs: BTreeMap<String, String>,
    pub trigger: String,
    /// Overrides the workflow's `max_parallel`.
    pub max_parallel: Option<usize>,
}

/// Something a person (or a client acting for one) asks of a run.
#[derive(Debug, Clone)]
pub enum Command {
    /// `proposal`: the hash (or a prefix of it) of the proposal the person saw; when given,
    /// the approval is refused if the step now waits on a different proposal.
    Approve {
        step: String,
        comment: Option<String>,
        edited: Option<EditedProposal>,
        proposal: Option<String>,
    },
    Reject {
        step: String,
        reason: String,
        proposal: Option<String>,
    },
    Resolve {
        step: String,
        resolution: Resolution,
    },
    Pause,
    Resume,
    Cancel,
}

/// How long `drive` keeps going.
#[derive(Debug, Clone, Copy, Default)]
pub struct DriveOptions {
    /// Keep the driver alive while the run waits for a person, so that decisions sent with
    /// [`Engine::send`] reach it in-process (the app). Without it, `drive` returns as soon as
    /// nothing can move without a person (the CLI).
    pub stay_alive_while_waiting: bool,
}

/// Told about events as soon as they are durable.
pub trait Observer: Send + Sync {
    fn events_appended(&self, run_id: &str, events: &[(u64, i64, Event)]);
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoObserver;

impl Observer for NoObserver {
    fn events_appended(&self, _run_id: &str, _events: &[(u64, i64, Event)]) {}
}

/// A run read back from the store.
#[derive(Debug)]
pub struct LoadedRun {
    pub row: RunRow,
    pub events: Vec<(StoredEvent, Event)>,
    pub state: RunState,
}

/// The Stepwise engine.
pub struct Engine {
    store: Mutex<Store>,
    config: EngineConfig,
    lock_dir: PathBuf,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) live: Mutex<HashMap<String, mpsc::UnboundedSender<Message>>>,
    /// Workflows compiled from recorded sources, by content hash: a run's workflow is
    /// compiled once per engine, not on every drive.
    compiled: Mutex<HashMap<String, Arc<Workflow>>>,
}

impl Engine {
    pub fn open(config: EngineConfig) -> Result<Engine, EngineError> {
        let store = Store::open(&config.db_path, config.durability)?;
        let lock_dir = lock_dir_for(&config.db_path);
        Ok(Engine {
            store: Mutex::new(store),
            config,
            lock_dir,
            clock: Arc::new(SystemClock),
            live: Mutex::new(HashMap::new()),
            compiled: Mutex::new(HashMap::new()),
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The store, for reading. Never held across an `.await`.
    pub fn store(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock leaves the store itself consistent (SQLite
        // transactions roll back), so a poisoned lock is safe to keep using.
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reads and checks a workflow file.
    pub fn load_workflow(path: &Path) -> Result<(Arc<Workflow>, String), EngineError> {
        let source = std::fs::read_to_string(path).map_err(|source| EngineError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let workflow =
            parse_workflow(&path.display().to_string(), &source).map_err(EngineError::Workflow)?;
        Ok((Arc::new(workflow), source))
    }

    /// Records a new run (its `RunStarted` event) and returns its id. Nothing runs until it is
    /// driven.
    pub fn start_run(&self, start: &StartRun) -> Result<String, EngineError> {
        let (workflow, source) = Engine::load_workflow(&start.workflow_path)?;
        let inputs = workflow.resolve_inputs(&start.inputs)?;
        let workspace = Workspace::open(&start.workspace)?;
        let policy = load_policy(self.config.user_policy.as_deref(), workspace.root())?;
        let run_id = uuid::Uuid::new_v4().to_string();
        let workflow_path = std::path::absolute(&start.workflow_path)
            .unwrap_or_else(|_| start.workflow_path.clone());
        let started = RunStarted {
            run_id: run_id.clone(),
            workflow_name: workflow.name.clone(),
            workflow_path: workflow_path.display().to_string(),
            workflow_hash: workflow.source_hash.clone(),
            workflow_source: source,
            workspace: workspace.root().display().to_string(),
            inputs,
            trigger: start.trigger.clone(),
            started_by: self.config.user.clone(),
            max_parallel: start.max_parallel.unwrap_or(workflow.max_parallel).max(1),
            policy,
        };
        // Check now that the recorded policy compiles, so that a bad rule fails the start,
        // not the first drive.
        RunState::new(workflow.clone(), started.clone()).map_err(|source| EngineError::State {
            run_id: run_id.clone(),
            source,
        })?;
        let now = self.clock.now_ms();
        let row = NewRun {
            run_id: run_id.clone(),
            workflow_name: started.workflow_name.clone(),
            workflow_path: started.workflow_path.clone(),
            workflow_hash: started.workflow_hash.clone(),
            workspace: started.workspace.clone(),
            trigger: started.trigger.clone(),
            status: RunStatus::Running.as_str().to_string(),
            created_at_ms: now,
        };
        self.compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(workflow.source_hash.clone(), Arc::clone(&workflow));
        let event = Event::RunStarted(started);
        self.store()
            .create_run(&row, &[new_event(&event, None, now)])?;
        Ok(run_id)
    }

    /// Reads a run (by id or unique prefix) and folds its events.
    pub fn load_run(&self, id_or_prefix: &str) -> Result<LoadedRun, EngineError> {
        let (row, stored) = {
            let store = self.store();
            let row = store.find_run(id_or_prefix)?;
            let stored = store.load_events(&row.run_id, 0)?;
            (row, stored)
        };
        let events = stored
            .into_iter()
            .map(|s| decode(&row.run_id, &s).map(|e| (s, e)))
            .collect::<Result<Vec<_>, _>>()?;
        let workflow = self.run_workflow(&row, &events)?;
        let numbered: Vec<(u64, Event)> = events.iter().map(|(s, e)| (s.seq, e.clone())).collect();
        let state = RunState::load(workflow, &numbered).map_err(|source| EngineError::State {
            run_id: row.run_id.clone(),
            source,
        })?;
        Ok(LoadedRun { row, events, state })
    }

    fn run_workflow(
        &self,
        row: &RunRow,
        events: &[(StoredEvent, Event)],
    ) -> Result<Arc<Workflow>, EngineError> {
        let cached = self
            .compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&row.workflow_hash)
            .cloned();
        if let Some(workflow) = cached {
            return Ok(workflow);
        }
        let workflow = recorded_workflow(&row.run_id, events)?;
        self.compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(workflow.source_hash.clone(), Arc::clone(&workflow));
        Ok(workflow)
    }

    /// Drives a run until it finishes or (unless told to stay alive) nothing can move without a
    /// person. `command` is applied first. Only one driver per run exists at a time, across
    /// processes.
    pub async fn drive(
        &self,
        run_id: &str,
        command: Option<Command>,
        observer: &dyn Observer,
        options: DriveOptions,
    ) -> Result<RunStatus, EngineError> {
        let run_id = self.store().find_run(run_id)?.run_id;
        let lock = RunLock::acquire(&self.lock_dir, &run_id)?;
        let loaded = self.load_run(&run_id)?;
        let mut driver = Driver::new(self, loaded, lock, observer, options)?;
        driver.run(command).await
    }

    /// Sends a command to a run: to its live driver in this process if there is one, else by
    /// driving it here until it waits again.
    pub async fn send(
        &self,
        run_id: &str,
        command: Command,
        observer: &dyn Observer,
    ) -> Result<RunStatus, EngineError> {
        let run_id = self.store().find_run(run_id)?.run_id;
        if let Some(reply) = self.send_to_live(&run_id, command.clone()).await {
            return reply;
        }
        self.drive(&run_id, Some(command), observer, DriveOptions::default())
            .await
    }

    /// Hands a command to the run's live driver in this process, if there is one that takes
    /// it; `None` when there is none (nothing was recorded).
    pub async fn send_to_live(
        &self,
        run_id: &str,
        command: Command,
    ) -> Option<Result<RunStatus, EngineError>> {
        let tx = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(run_id)
            .cloned()?;
        let (reply_tx, reply_rx) = oneshot::channel();
        tx.send(Message::Command(command, reply_tx)).ok()?;
        reply_rx.await.ok()
    }

    /// Drives every unfinished run that no other process is driving; the runs that are busy
    /// elsewhere are skipped. Returns each run's status.
    pub async fn resume_all(
        &self,
        observer: &dyn Observer,
    ) -> Result<Vec<(String, Result<RunStatus, EngineError>)>, EngineError> {
        let runs = self.store().unfinished_runs()?;
        let mut out = Vec::new();
        for run in runs {
            let status = self
                .drive(&run.run_id, None, observer, DriveOptions::default())
                .await;
            out.push((run.run_id, status));
        }
        Ok(out)
    }
}

/// Locks live beside the database: one file per run.
fn lock_dir_for(db_path: &Path) -> PathBuf {
    // The same database reached through another path (a symlink, a relative path) must share
    // its locks; the store has created the file by now, so it can be canonicalised.
    let canonical = db_path.canonicalize().ok();
    let db_path = canonical.as_deref().unwrap_or(db_path);
    let name = db_path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "stepwise".into());
    db_path
        .parent()
        .unwrap_or(Path::new("."))
        .join(format!("{name}.locks"))
}

/// The workflow a run was started with, from the source recorded in its first event.
pub fn recorded_workflow(
    run_id: &str,
    events: &[(StoredEvent, Event)],
) -> Result<Arc<Workflow>, EngineError> {
    match events.first() {
        Some((_, Event::RunStarted(started))) => {
            parse_workflow(&started.workflow_path, &started.workflow_source)
                .map(Arc::new)
                .map_err(EngineError::Workflow)
        }
        _ => Err(EngineError::State {
            run_id: run_id.to_string(),
            source: stepwise_core::run::StateError::NotStarted { seq: 1 },
        }),
    }
}
