//! Triggers: a watcher (the app, or `stepwise watch`) watches workspaces for workflows whose
//! `on:` says what starts their runs — files changing, a cron schedule, a named signal — and
//! starts those runs, driving them in this process.
//!
//! Every firing is recorded first as a signal (`fire`): a file trigger's keyed by the changed
//! paths and their contents, a schedule's by the slot, so that however many watchers see one
//! firing (two `stepwise watch` and the app on one database), one signal is recorded and one
//! run started, which records the signal as its cause. A firing recorded and not started (a
//! crash in between) is started by the next watcher to look.

mod files;
mod fire;
mod own_changes;
mod schedule;
mod space;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;
use stepwise_core::cause::{
    CauseKind, RunCause, files_signal_name, files_summary, schedule_signal_name,
};
use stepwise_core::ids::RunId;
use stepwise_store::{NewSignal, Signal};
use tokio::sync::{mpsc, watch};

pub use space::WatchedWorkflow;

use crate::engine::Engine;
use crate::error::EngineError;
use files::Change;
use fire::Target;
use space::{Space, Watched};

/// How often a watcher looks at its debounces, schedules and signals.
const TICK: Duration = Duration::from_millis(250);
/// A file firing with the same files and contents as one recorded less than this long ago is
/// that one (another watcher's); later, it is a new firing.
const SAME_FIRING_WITHIN_MS: i64 = 60_000;
/// How far back a watcher looks for firings and signals that started no run yet.
const LOOK_BACK_MS: i64 = 15 * 60_000;

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
    /// The workflows with triggers in a workspace (again whenever its workflows change).
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
        let (fs_tx, fs_rx) = mpsc::unbounded_channel();
        let notifier = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let seen = match event {
                Ok(event) if event.need_rescan() => FsSeen::Lost,
                // Reading a file is no change (and the watcher reads what it watches).
                Ok(event) if matches!(event.kind, notify::EventKind::Access(_)) => return,
                Ok(event) => FsSeen::Paths(event.paths),
                Err(_) => FsSeen::Lost,
            };
            let _ = fs_tx.send(seen);
        })
        .map_err(|error| EngineError::Watch(format!("cannot watch files: {error}")))?;
        let loop_state = Loop {
            engine: self.clone(),
            spaces: roots
                .into_iter()
                .map(|root| Space {
                    root,
                    watched: Vec::new(),
                    reload: true,
                })
                .collect(),
            events: events_tx,
            clock_file: options.clock_file,
            began_ms: self.ctx.clock.now_ms(),
            attempted: std::collections::HashSet::new(),
            notifier,
            watching: std::collections::BTreeMap::new(),
        };
        self.ctx.db.writer.spawn(loop_state.run(fs_rx, stop_rx));
        Ok(Watcher { events, stop })
    }
}

/// What the file watch saw.
enum FsSeen {
    Paths(Vec<PathBuf>),
    /// Events were lost: everything is looked at again.
    Lost,
}

struct Loop {
    engine: Engine,
    spaces: Vec<Space>,
    events: mpsc::UnboundedSender<WatchEvent>,
    clock_file: Option<PathBuf>,
    began_ms: i64,
    /// Signals this watcher tried to start a run of a workflow for (by id and path): each is
    /// tried once.
    attempted: std::collections::HashSet<(i64, PathBuf)>,
    notifier: notify::RecommendedWatcher,
    /// What the notifier watches (`true`: recursively).
    watching: std::collections::BTreeMap<PathBuf, bool>,
}

impl Loop {
    async fn run(
        mut self,
        mut fs: mpsc::UnboundedReceiver<FsSeen>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut shutdown = self.engine.ctx.watch_shutdown();
        let mut changes = self.engine.ctx.db.watch_changes();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut database_changed = true;
        loop {
            tokio::select! {
                () = async { let _ = stop.wait_for(|stop| *stop).await; } => return,
                () = async { let _ = shutdown.wait_for(|down| *down).await; } => return,
                seen = fs.recv() => match seen {
                    Some(seen) => self.saw(seen),
                    None => return,
                },
                changed = changes.changed() => {
                    if changed.is_err() { return }
                    database_changed = true;
                }
                _ = tick.tick() => {
                    if self.events.is_closed() { return }
                    self.look(std::mem::take(&mut database_changed)).await;
                }
            }
        }
    }

    fn saw(&mut self, seen: FsSeen) {
        let now = Instant::now();
        let now_ms = self.engine.ctx.clock.now_ms();
        for space in &mut self.spaces {
            match &seen {
                FsSeen::Lost => {
                    space.reload = true;
                    for watched in &mut space.watched {
                        if let Some(files) = &mut watched.files {
                            files.touch_everything(now, now_ms);
                        }
                    }
                }
                FsSeen::Paths(paths) => {
                    for path in paths {
                        let Some(rel) = files::relative(&space.root, path) else {
                            continue;
                        };
                        if rel == "workflows" || rel.starts_with("workflows/") {
                            space.reload = true;
                        }
                        for watched in &mut space.watched {
                            if let Some(files) = &mut watched.files {
                                files.touch(&rel, now, now_ms);
                            }
                        }
                    }
                }
            }
        }
    }

    /// One look at everything due.
    async fn look(&mut self, database_changed: bool) {
        let mut spaces = std::mem::take(&mut self.spaces);
        let mut reloaded = Vec::new();
        for (i, space) in spaces.iter_mut().enumerate() {
            if space.reload {
                let problems = self.reload(space).await;
                reloaded.push((i, problems));
            }
        }
        if !reloaded.is_empty() {
            // Watched first, then looked at again: nothing changed in between is missed.
            self.rewatch(&spaces);
            let (now, now_ms) = (Instant::now(), self.engine.ctx.clock.now_ms());
            for (i, problems) in reloaded {
                let space = &mut spaces[i];
                for files in space.watched.iter_mut().filter_map(|w| w.files.as_mut()) {
                    files.touch_everything(now, now_ms);
                }
                let _ = self.events.send(WatchEvent::Watching {
                    workspace: space.root.display().to_string(),
                    workflows: space.watched.iter().map(Watched::shown).collect(),
                    problems,
                });
                for watched in &space.watched {
                    self.recover(watched).await;
                }
            }
        }
        for space in &mut spaces {
            for watched in &mut space.watched {
                self.look_at(watched, database_changed).await;
            }
        }
        self.spaces = spaces;
    }

    /// Watches what the workspaces' triggers need now, and no more: a file trigger on `src/**`
    /// does not cost a watch per directory of a build's output.
    fn rewatch(&mut self, spaces: &[Space]) {
        use notify::Watcher as _;
        // One watch per directory: recursively when anything needs it so.
        let mut wanted: std::collections::BTreeMap<PathBuf, bool> = Default::default();
        for (dir, recursive) in spaces.iter().flat_map(Space::watches) {
            *wanted.entry(dir).or_default() |= recursive;
        }
        for (dir, recursive) in &self.watching {
            if wanted.get(dir) != Some(recursive) {
                let _ = self.notifier.unwatch(dir);
            }
        }
        let mut failed = Vec::new();
        for (dir, recursive) in &wanted {
            if self.watching.get(dir) == Some(recursive) {
                continue;
            }
            let mode = match recursive {
                true => notify::RecursiveMode::Recursive,
                false => notify::RecursiveMode::NonRecursive,
            };
            if let Err(error) = self.notifier.watch(dir, mode) {
                failed.push(format!("cannot watch `{}`: {error}", dir.display()));
            }
        }
        self.watching = wanted;
        for message in failed {
            self.problem(message);
        }
    }

    /// Reads the space's workflows again; the problems found.
    async fn reload(&mut self, space: &mut Space) -> Vec<String> {
        let mut taken = Space {
            root: space.root.clone(),
            watched: std::mem::take(&mut space.watched),
            reload: true,
        };
        let loaded = self
            .engine
            .ctx
            .exec
            .spawn_blocking(move || {
                let problems = taken.load();
                (taken, problems)
            })
            .await;
        match loaded {
            Ok((loaded, problems)) => {
                *space = loaded;
                problems
            }
            Err(_) => vec!["reading the workflows stopped".to_string()],
        }
    }

    /// Starts what a crash left recorded and not started.
    async fn recover(&mut self, watched: &Watched) {
        let path = watched.target.path_text();
        let since = self.began_ms.saturating_sub(LOOK_BACK_MS);
        let mut names = Vec::new();
        if watched.files.is_some() {
            names.push((files_signal_name(&path), CauseKind::Files));
        }
        if watched.schedule.is_some() {
            names.push((schedule_signal_name(&path), CauseKind::Schedule));
        }
        for (name, kind) in names {
            let unstarted = {
                let path = path.clone();
                self.engine
                    .ctx
                    .db
                    .read(move |store| Ok(store.unstarted_signals(&name, &path, since)?))
                    .await
            };
            match unstarted {
                Ok(signals) => {
                    for signal in signals {
                        let summary = signal.payload["summary"]
                            .as_str()
                            .unwrap_or("a firing")
                            .to_string();
                        self.start(&watched.target, kind, &signal, summary).await;
                    }
                }
                Err(error) => self.problem(error.to_string()),
            }
        }
    }

    async fn look_at(&mut self, watched: &mut Watched, database_changed: bool) {
        if watched.schedule.is_some() {
            self.look_at_schedule(watched).await;
        }
        if watched
            .files
            .as_ref()
            .is_some_and(|f| f.due(Instant::now()))
        {
            self.look_at_files(watched).await;
        }
        if let (Some(name), true) = (watched.signal.clone(), database_changed) {
            self.look_at_signals(&watched.target, &name).await;
        }
    }

    async fn look_at_schedule(&mut self, watched: &mut Watched) {
        let now_ms = self.schedule_now_ms();
        let path = watched.target.path_text();
        let name = schedule_signal_name(&path);
        let Some(schedule) = &mut watched.schedule else {
            return;
        };
        let slot = if watched.schedule_begun {
            schedule.due(now_ms)
        } else {
            let latest = {
                let name = name.clone();
                self.engine
                    .ctx
                    .db
                    .read(move |store| Ok(store.latest_signal(&name)?))
                    .await
            };
            let recorded = match latest {
                Ok(latest) => latest.and_then(|signal| signal.payload["slot_ms"].as_i64()),
                Err(error) => {
                    self.problem(error.to_string());
                    return;
                }
            };
            watched.schedule_begun = true;
            schedule.begin(now_ms, recorded)
        };
        let Some(slot) = slot else {
            return;
        };
        let mut summary = format!("schedule {}", schedule::shown(slot.at_ms, now_ms));
        if slot.catch_up {
            summary.push_str(" (catch-up)");
        }
        let new = NewSignal {
            name,
            payload: json!({
                "slot": schedule::rfc3339(slot.at_ms),
                "slot_ms": slot.at_ms,
                "cron": schedule.trigger.cron,
                "catch_up": slot.catch_up,
                "summary": summary,
            }),
            idempotency_key: slot.at_ms.to_string(),
            correlation_id: None,
            source: self.source(),
            created_at_ms: now_ms,
        };
        let recorded = self
            .engine
            .ctx
            .db
            .write(move |store| store.record_signal(&new))
            .await;
        match recorded {
            Ok((signal, _)) => {
                self.start(&watched.target, CauseKind::Schedule, &signal, summary)
                    .await;
            }
            Err(error) => self.problem(error.to_string()),
        }
    }

    async fn look_at_files(&mut self, watched: &mut Watched) {
        let Some(mut files) = watched.files.take() else {
            return;
        };
        let settled = self
            .engine
            .ctx
            .exec
            .spawn_blocking(move || {
                let changes = files.settle();
                (files, changes)
            })
            .await;
        let Ok((mut files, mut changes)) = settled else {
            self.problem("looking at changed files stopped".to_string());
            return;
        };
        tracing::debug!(?changes, workflow = %watched.target.path.display(), "files changed");
        let answered = self
            .answer_files(&watched.target, &mut files, &mut changes)
            .await;
        if answered {
            files.answered();
        } else {
            files.put_off(Instant::now());
        }
        watched.files = Some(files);
    }

    /// Fires for `changes` unless they are the workspace's runs' own: `false` when they must
    /// wait (a run there is still changing files).
    async fn answer_files(
        &mut self,
        target: &Target,
        files: &mut files::FilesWatch,
        changes: &mut Vec<Change>,
    ) -> bool {
        if changes.is_empty() {
            return true;
        }
        if !files.trigger.include_own {
            let workspace = target.workspace.display().to_string();
            let since = files
                .first_seen_ms
                .unwrap_or_else(|| self.engine.ctx.clock.now_ms());
            let lock_dir = self.engine.ctx.db.lock_dir.clone();
            let own = self
                .engine
                .ctx
                .db
                .read(move |store| own_changes::read(store, &lock_dir, &workspace, since))
                .await;
            match own {
                Ok(own) if own.busy => return false,
                Ok(own) => changes.retain(|change| !own.made(&change.path, &change.now)),
                Err(error) => {
                    self.problem(error.to_string());
                    return false;
                }
            }
            if changes.is_empty() {
                return true;
            }
        }
        let listed: Vec<(String, _)> = changes.iter().map(|c| (c.path.clone(), c.event)).collect();
        let summary = files_summary(&listed);
        let mut key = stepwise_core::hash::ContentHasher::default();
        for change in changes.iter() {
            key.update(change.path.as_bytes());
            key.update(b"\0");
            key.update(change.now.as_deref().unwrap_or("-").as_bytes());
            key.update(b"\n");
        }
        let new = NewSignal {
            name: files_signal_name(&target.path_text()),
            payload: json!({
                "changes": changes.iter().map(|c| json!({"path": c.path, "event": c.event})).collect::<Vec<_>>(),
                "summary": summary,
            }),
            idempotency_key: key.finish(),
            correlation_id: None,
            source: self.source(),
            created_at_ms: self.engine.ctx.clock.now_ms(),
        };
        let recorded = self
            .engine
            .ctx
            .db
            .write(move |store| store.record_firing(&new, SAME_FIRING_WITHIN_MS))
            .await;
        match recorded {
            Ok((signal, _)) => {
                self.start(target, CauseKind::Files, &signal, summary).await;
            }
            Err(error) => self.problem(error.to_string()),
        }
        true
    }

    async fn look_at_signals(&mut self, target: &Target, name: &str) {
        let since = self.began_ms.saturating_sub(LOOK_BACK_MS);
        let (name, path) = (name.to_string(), target.path_text());
        let unstarted = self
            .engine
            .ctx
            .db
            .read(move |store| Ok(store.unstarted_signals(&name, &path, since)?))
            .await;
        match unstarted {
            Ok(signals) => {
                for signal in signals {
                    let summary = format!("signal {}", signal.name);
                    self.start(target, CauseKind::Signal, &signal, summary)
                        .await;
                }
            }
            Err(error) => self.problem(error.to_string()),
        }
    }

    /// Starts the run a firing asks for, once per signal and workflow in this watcher.
    async fn start(&mut self, target: &Target, kind: CauseKind, signal: &Signal, summary: String) {
        if !self
            .attempted
            .insert((signal.signal_id, target.path.clone()))
        {
            return;
        }
        match fire::start(&self.engine, target, kind, signal, summary.clone()).await {
            Ok(Some(run_id)) => {
                tracing::info!(%run_id, workflow = %target.path.display(), %summary, "a trigger started a run");
                let _ = self.events.send(WatchEvent::Started {
                    run_id,
                    workflow: target.workflow.name.clone(),
                    workflow_path: target.path_text(),
                    cause: RunCause {
                        signal_id: signal.signal_id,
                        kind,
                        summary,
                    },
                });
            }
            Ok(None) => {}
            Err(error) => self.problem(format!(
                "{} ({summary}) did not start: {error}",
                target.path.display()
            )),
        }
    }

    fn problem(&self, message: String) {
        tracing::warn!(%message, "watcher");
        let _ = self.events.send(WatchEvent::Problem { message });
    }

    fn source(&self) -> String {
        format!("watch ({})", self.engine.ctx.config.user)
    }

    fn schedule_now_ms(&self) -> i64 {
        self.clock_file
            .as_ref()
            .and_then(|path| std::fs::read_to_string(path).ok())
            .and_then(|text| text.trim().parse::<i64>().ok())
            .unwrap_or_else(|| self.engine.ctx.clock.now_ms())
    }
}
