//! Triggers: a watcher (the app, or `stepwise watch`) watches workspaces for workflows whose
//! `on:` says what starts their runs — files changing, a cron schedule, a named signal — and
//! starts those runs, driving them in this process.
//!
//! Every firing is recorded first as a signal (`fire`): a file trigger's claims each change
//! it answers (its path and the version it leaves), a schedule's is keyed by the slot, so that
//! however many watchers see one firing (two `stepwise watch` and the app on one database),
//! each change and each slot is in one signal, which starts one run that records it as its
//! cause. A firing recorded and not started (a crash in between, a start that failed) is
//! started by the next watcher to look.

mod answers;
mod file_state;
mod files;
mod fire;
mod fs_events;
mod own_changes;
mod schedule;
mod space;
mod watcher;

use std::path::PathBuf;

use serde::Serialize;
use stepwise_core::cause::RunCause;
use stepwise_core::ids::RunId;
use tokio::sync::{mpsc, watch};

pub use space::WatchedWorkflow;

use crate::engine::Engine;
use crate::error::EngineError;

/// What to watch.
#[derive(Debug, Clone, Default)]
pub struct WatchOptions {
    /// The workspaces whose `workflows/` are watched.
    pub workspaces: Vec<PathBuf>,
    /// A file holding the time schedules see, in milliseconds since the epoch, read at every
    /// look (for tests that cannot wait for the clock); the system clock when `None`.
    pub clock_file: Option<PathBuf>,
}

/// What a watcher did.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WatchEvent {
    /// The workflows with triggers in a workspace (again whenever its workflows change), once
    /// their files are watched.
    Watching {
        /// The workspace, absolute.
        workspace: String,
        /// Its workflows with triggers.
        workflows: Vec<WatchedWorkflow>,
        /// Workflows that could not be read, each with why.
        problems: Vec<String>,
    },
    /// A trigger started a run.
    Started {
        /// The run it started.
        run_id: RunId,
        /// The workflow's name.
        workflow: String,
        /// The workflow file.
        workflow_path: String,
        /// What started it.
        cause: RunCause,
    },
    /// Something went wrong; the watcher goes on.
    Problem {
        /// What, and where.
        message: String,
    },
}

/// A running watcher: its events, until it is dropped or stopped.
pub struct Watcher {
    events: mpsc::UnboundedReceiver<WatchEvent>,
    stop: watch::Sender<bool>,
}

impl Watcher {
    /// The next thing the watcher did; `None` once it has stopped.
    pub async fn next_event(&mut self) -> Option<WatchEvent> {
        self.events.recv().await
    }

    /// Stops watching (runs it started go on being driven).
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }
}

impl Engine {
    /// Starts watching `options.workspaces` for workflows with triggers, starting their runs
    /// in this process.
    pub async fn watch(&self, options: WatchOptions) -> Result<Watcher, EngineError> {
        self.ctx.db.check_writable()?;
        let mut roots = Vec::new();
        for workspace in &options.workspaces {
            let root = std::fs::canonicalize(workspace).map_err(|error| {
                EngineError::Watch(format!(
                    "cannot watch workspace `{}`: {}",
                    workspace.display(),
                    crate::error::io_reason(&error)
                ))
            })?;
            if !root.is_dir() {
                return Err(EngineError::Watch(format!(
                    "cannot watch workspace `{}`: it is not a directory",
                    workspace.display()
                )));
            }
            roots.push(root);
        }
        let (events_tx, events) = mpsc::unbounded_channel();
        let (stop, stop_rx) = watch::channel(false);
        let watcher = watcher::Loop::new(self.clone(), roots, events_tx, options.clock_file);
        self.ctx.db.writer.spawn(watcher.run(stop_rx));
        Ok(Watcher { events, stop })
    }
}
