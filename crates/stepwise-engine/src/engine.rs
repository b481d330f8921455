//! The engine handle: a cheap, cloneable, `Send + Sync` handle over one database that starts
//! runs, drives them in tasks of their own, takes people's commands and answers questions.
//! The CLI and the desktop app are both thin clients of it.
//!
//! A run is driven by at most one process at a time: the holder of its lock (see `lock`).
//! Everyone else sends it commands through its inbox in the database (see `inbox`) and
//! follows it through the feeds (see `feeds`).
//!
//! The handle is the user's: internals hold the `Context` below it. Dropping the last clone of
//! the handle (or [`Engine::shutdown`]) shuts the engine down (see `lifetime`).

use std::path::Path;
use std::sync::Arc;

use stepwise_core::event::ForkOrigin;
use stepwise_core::ids::RunId;
use stepwise_core::workflow::Workflow;

use crate::clock::SystemClock;
use crate::config::EngineConfig;
use crate::context::Context;
use crate::db::Db;
use crate::drivers::{RunHandle, spawn_driver};
use crate::error::EngineError;
use crate::failures::DriverFailure;
use crate::lifetime::{self, ExecRuntime, Owner};
use crate::policy_files::UserPolicy;
use crate::settings::UserSettings;
use crate::start::{PreparedRun, StartFiles, StartRun, prepare_run, prepare_started};
use crate::workflow_file;

/// Counters for benchmarks and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineStats {
    /// Transactions this engine has committed.
    pub commits: u64,
}

/// The Stepwise engine. Clones share everything; dropping the last one shuts it down.
#[derive(Clone)]
pub struct Engine {
    pub(crate) ctx: Arc<Context>,
    /// Held by the handles only: when the last one goes, the engine shuts down.
    _owner: Arc<Owner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("db", &self.ctx.config.db_path)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Opens (creating and migrating if needed) the database. Needs no async runtime; every
    /// other method is called from one.
    pub fn open(config: EngineConfig) -> Result<Engine, EngineError> {
        let exec = ExecRuntime::start()?;
        let handle = exec.handle();
        let db = Db::open(
            &config.db_path,
            config.shared.as_ref(),
            config.durability,
            &config.host,
            handle.clone(),
            Box::new(move || exec.stop()),
        )?;
        let ctx = Arc::new(Context::new(config, db, Arc::new(SystemClock), handle));
        lifetime::stop_when_replaced(&ctx);
        #[cfg(feature = "postgres")]
        lifetime::stop_drivers_of_lost_holds(&ctx);
        Ok(Engine {
            _owner: Arc::new(Owner::new(Arc::clone(&ctx))),
            ctx,
        })
    }

    /// What the engine was opened with.
    pub fn config(&self) -> &EngineConfig {
        &self.ctx.config
    }

    /// The database, as people are shown it: the SQLite file's path, or the PostgreSQL
    /// database's URL without its password.
    pub fn database_name(&self) -> String {
        self.ctx.db.file.path().display().to_string()
    }

    /// Counters for benchmarks and tests.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            commits: self.ctx.db.writer.commits(),
        }
    }

    /// Shuts the engine down for every clone of this handle: it stops adopting and standing
    /// by for runs, its drivers let go of their runs (killing the commands they started; the
    /// next holder recovers them), feeds end, and its watches and threads stop. Returns once
    /// they have. Everything asked of the engine afterwards fails with
    /// [`EngineError::ShutDown`]. Dropping the last clone does the same without waiting.
    pub async fn shutdown(&self) {
        lifetime::begin_shutdown(&self.ctx);
        self.ctx.db.writer.exited().await;
    }

    /// Reads and checks a workflow file, its custom steps from `step_types` (see
    /// [`crate::load_step_types`], read once for many files). A file that cannot be read is a
    /// validation error like any other (the caller named a file that is not a workflow).
    pub fn load_workflow(
        path: &Path,
        step_types: &stepwise_core::custom_step::StepTypes,
    ) -> Result<(Arc<Workflow>, String), EngineError> {
        workflow_file::load(path, step_types)
    }

    /// Records a new run (its `RunStarted` event) and starts driving it in a task of its own.
    pub async fn start_run(&self, start: StartRun) -> Result<RunHandle, EngineError> {
        self.ctx.db.check_writable()?;
        let prepared = self.prepare(start, None, None).await?;
        self.record_and_drive(prepared, Vec::new()).await
    }

    /// Records a prepared run (its `RunStarted`, then `reused`: a fork's events from its
    /// parent) and starts driving it in a task of its own.
    pub(crate) async fn record_and_drive(
        &self,
        prepared: PreparedRun,
        reused: Vec<stepwise_store::NewEvent>,
    ) -> Result<RunHandle, EngineError> {
        crate::drivers::record_and_spawn(&self.ctx, prepared, reused).await
    }

    /// Checks and resolves a start (the workflow from its file, or `workflow` already read;
    /// for a fork, where it comes from): reading and compiling the workflow, the workspace,
    /// the policy and settings files is file IO, and a large workflow takes a while to
    /// compile, so not on an async worker.
    pub(crate) async fn prepare(
        &self,
        start: StartRun,
        workflow: Option<crate::start::ReadWorkflow>,
        fork: Option<ForkOrigin>,
    ) -> Result<PreparedRun, EngineError> {
        let user = self.ctx.config.user.clone();
        let host = self.ctx.config.host.clone();
        let user_policy = self.ctx.config.user_policy.clone().map(|path| UserPolicy {
            path,
            named: self.ctx.config.user_policy_named,
        });
        let user_settings = self.ctx.config.settings.clone().map(|path| UserSettings {
            path,
            named: self.ctx.config.settings_named,
        });
        let holds = self.ctx.db.holds.clone();
        let now = self.ctx.clock.now_ms();
        self.ctx
            .exec
            .spawn_blocking(move || {
                let files = StartFiles {
                    user: &user,
                    host: &host,
                    user_policy: user_policy.as_ref(),
                    user_settings: user_settings.as_ref(),
                    holds: &holds,
                };
                match workflow {
                    Some(workflow) => prepare_started(&start, workflow, &files, now, fork),
                    None => prepare_run(&start, &files, now),
                }
            })
            .await
            .map_err(|e| EngineError::Internal(format!("preparing the run stopped: {e}")))?
    }

    /// Continues a run (by id or unique prefix) in a task of its own: recovers what a crash
    /// interrupted and goes on. Fails with [`EngineError::RunLocked`] if a process (this one
    /// included) drives it already; send that process commands instead.
    pub async fn drive(&self, run: &str) -> Result<RunHandle, EngineError> {
        let run_id = self.find_run(run).await?.run_id;
        self.ctx.db.check_writable()?;
        match self.ctx.hold(&run_id).await? {
            Ok(lock) => Ok(spawn_driver(&self.ctx, &run_id, lock)),
            Err(holder) => Err(EngineError::RunLocked { run_id, holder }),
        }
    }

    /// Starts driving every unfinished run that no process holds, oldest first. Runs held
    /// elsewhere are reported with [`EngineError::RunLocked`].
    pub async fn resume_unheld(
        &self,
    ) -> Result<Vec<(RunId, Result<RunHandle, EngineError>)>, EngineError> {
        self.ctx.db.check_writable()?;
        let runs = self
            .ctx
            .db
            .read(|store| Ok(store.unfinished_runs()?))
            .await?;
        let mut out = Vec::new();
        for run in runs {
            // A run of another machine is driven there: not even its hold is taken here.
            if let Err(elsewhere) = self.ctx.refuse_other_machine(&run.run_id).await {
                out.push((run.run_id, Err(elsewhere)));
                continue;
            }
            let handle = match self.ctx.hold(&run.run_id).await {
                Ok(Ok(lock)) => Ok(spawn_driver(&self.ctx, &run.run_id, lock)),
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
        let mut count = self.ctx.live.watch_count();
        let _ = count.wait_for(|n| *n == 0).await;
    }

    /// The failures of this engine's drivers from now on, as they happen: each is also logged,
    /// and recorded in its run where it could be (see [`crate::DriverFailure`]).
    pub fn subscribe_failures(&self) -> tokio::sync::broadcast::Receiver<DriverFailure> {
        self.ctx.failures.subscribe()
    }

    /// Faults and delays for tests to inject; never used otherwise.
    #[doc(hidden)]
    pub fn test_hooks(&self) -> &crate::TestHooks {
        &self.ctx.test_hooks
    }

    /// Whether this process drives the run (by full id) now.
    pub fn drives(&self, run_id: &RunId) -> bool {
        self.ctx.live.drives(run_id)
    }
}
