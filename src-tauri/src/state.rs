//! The app's state, built once before the window opens from cheap-to-clone handles: the engine
//! over the same database as the CLI, the workspace new runs use, and the live signals.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use stepwise_engine::{Engine, EngineConfig, Named};
use tokio::sync::broadcast;

use crate::demo;
use crate::digest::Digests;
use crate::failures::RecentFailures;
use crate::holders::Holders;
use crate::model::RunModels;
use crate::view::LiveSignal;
use crate::watch::WorkspaceWatch;

/// How many live signals a slow window may fall behind before it reloads everything.
const LIVE_BACKLOG: usize = 1024;

pub struct AppState {
    pub engine: Engine,
    /// Where new runs go unless the person picks another workspace.
    pub default_workspace: PathBuf,
    /// The examples that come with the app.
    pub bundled_workflows: PathBuf,
    /// The default workspace is the demo one laid out by the app.
    pub demo_workspace: bool,
    pub live: broadcast::Sender<LiveSignal>,
    pub watch: WorkspaceWatch,
    /// Each run's log boiled down, for the Workspace and Cost views.
    pub digests: Digests,
    /// The runs the Run view shows, folded and kept current.
    pub models: Arc<RunModels>,
    /// Who drives each unfinished run, from the runs feed.
    pub holders: Arc<Holders>,
    /// Recent driver failures, for a window that opens after them.
    pub failures: Arc<RecentFailures>,
    /// The run the Run view follows (one at a time): its forwarding task.
    pub following: Mutex<Option<tauri::async_runtime::JoinHandle<()>>>,
    /// What the app's watcher of triggers watches.
    pub triggers: Arc<crate::triggers::Triggers>,
}

impl AppState {
    /// Opens the engine as the CLI does (`STEPWISE_DB`, `STEPWISE_USER_POLICY`,
    /// `STEPWISE_SETTINGS`, `STEPWISE_SYNC`, else the defaults), and lays out the demo
    /// workspace.
    pub fn open() -> anyhow::Result<AppState> {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        // The same variables as the CLI, STEPWISE_SYNC included, read by the engine.
        let mut config = EngineConfig::from_env(Named::default())?;
        // The window stays open: runs that wait for a person stay driven here, so that an
        // approval from anywhere is acted on at once.
        config.hold_waiting_runs = true;
        let data_dir = config
            .db_path
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        let engine = Engine::open(config)?;
        let layout = demo::lay_out(&data_dir, var("STEPWISE_WORKSPACE"))?;
        let (live, _) = broadcast::channel(LIVE_BACKLOG);
        Ok(AppState {
            engine,
            default_workspace: layout.workspace,
            bundled_workflows: layout.examples,
            demo_workspace: layout.is_demo,
            watch: WorkspaceWatch::new(live.clone()),
            live,
            digests: Digests::default(),
            models: Arc::default(),
            holders: Arc::default(),
            failures: Arc::default(),
            following: Mutex::new(None),
            triggers: Arc::default(),
        })
    }
}
