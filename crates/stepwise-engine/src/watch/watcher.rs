//! A watcher's loop: it takes what the file watch saw, reads the workspaces' workflows again
//! when theirs change, keeps the file watch on what the triggers need, and every tick looks
//! at what is due — files quiet for their debounce, schedule slots passed, signals recorded,
//! firings recorded and not started — and starts their runs.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use stepwise_core::cause::{CauseKind, files_signal_name, schedule_signal_name};
use stepwise_store::Signal;
use tokio::sync::{mpsc, watch};

use super::fire::{self, Target};
use super::fs_events::{FsEvents, Seen};
use super::space::{Space, Watched};
use super::{WatchEvent, file_state};
use crate::engine::Engine;

/// How often a watcher looks at its debounces, schedules and signals.
const TICK: Duration = Duration::from_millis(250);
/// How often firings recorded and not started are looked for.
const RECOVER_EVERY: Duration = Duration::from_secs(10);
/// How far back a watcher looks for firings and signals that started no run yet.
const LOOK_BACK_MS: i64 = 24 * 3600 * 1000;
/// How often a start that fails is tried before it is given up (and said so).
const MAX_TRIES: u32 = 3;

pub(super) struct Loop {
    pub(super) engine: Engine,
    spaces: Vec<Space>,
    events: mpsc::UnboundedSender<WatchEvent>,
    clock_file: Option<PathBuf>,
    began_ms: i64,
    /// Firings whose run is started (here or by another watcher) or given up, by signal id and
    /// workflow file: not tried again.
    done: HashSet<(i64, PathBuf)>,
    /// Starts that failed, by signal id and workflow file, and how often.
    failed: HashMap<(i64, PathBuf), u32>,
    /// Per workflow file and signal name: the signal id up to which all are done.
    cursors: HashMap<(PathBuf, String), i64>,
    fs: FsEvents,
    /// Something changed on disk: the directories the triggers need may have too.
    rewatch: bool,
    last_recover: Option<Instant>,
    /// The problems of the file watch last said (each is said once).
    watch_problems: Vec<String>,
}

impl Loop {
    pub(super) fn new(
        engine: Engine,
        roots: Vec<PathBuf>,
        events: mpsc::UnboundedSender<WatchEvent>,
        clock_file: Option<PathBuf>,
    ) -> Loop {
        let began_ms = engine.ctx.clock.now_ms();
        Loop {
            engine,
            spaces: roots
                .into_iter()
                .map(|root| Space {
                    root,
                    watched: Vec::new(),
                    reload: true,
                })
                .collect(),
            events,
            clock_file,
            began_ms,
            done: HashSet::new(),
            failed: HashMap::new(),
            cursors: HashMap::new(),
            fs: FsEvents::new(),
            rewatch: true,
            last_recover: None,
            watch_problems: Vec::new(),
        }
    }

    pub(super) async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut shutdown = self.engine.ctx.watch_shutdown();
        let mut changes = self.engine.ctx.db.watch_changes();
        let gathered = self.fs.gathered();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut database_changed = true;
        loop {
            tokio::select! {
                () = async { let _ = stop.wait_for(|stop| *stop).await; } => return,
                () = async { let _ = shutdown.wait_for(|down| *down).await; } => return,
                () = gathered.changed() => {
                    let seen = self.fs.take();
                    self.saw(seen);
                }
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

    fn saw(&mut self, seen: Seen) {
        let now = Instant::now();
        let now_ms = self.engine.ctx.clock.now_ms();
        self.rewatch = true;
        for space in &mut self.spaces {
            if seen.lost {
                space.reload = true;
                for files in space.watched.iter_mut().filter_map(|w| w.files.as_mut()) {
                    files.touch_everything(now, now_ms);
                }
                continue;
            }
            for path in &seen.paths {
                let Some(rel) = file_state::relative(&space.root, path) else {
                    continue;
                };
                if rel == "workflows" || rel.starts_with("workflows/") {
                    space.reload = true;
                }
                for files in space.watched.iter_mut().filter_map(|w| w.files.as_mut()) {
                    files.touch(&rel, now, now_ms);
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
                reloaded.push((i, self.reload(space).await));
            }
        }
        let (now, now_ms) = (Instant::now(), self.engine.ctx.clock.now_ms());
        if std::mem::take(&mut self.rewatch) || !reloaded.is_empty() {
            let wanted = spaces.iter().flat_map(Space::watches).collect();
            let (anew, problems) = self.fs.watch(wanted);
            // Whatever happened while the watch was made anew is looked at.
            for watched in spaces.iter_mut().flat_map(|s| s.watched.iter_mut()) {
                if let (true, Some(files)) = (anew || watched.fresh, watched.files.as_mut()) {
                    files.touch_everything(now, now_ms);
                }
                watched.fresh = false;
            }
            if problems != self.watch_problems {
                for problem in &problems {
                    self.problem(problem.clone());
                }
                self.watch_problems = problems;
            }
        }
        for (i, problems) in reloaded {
            let space = &spaces[i];
            let _ = self.events.send(WatchEvent::Watching {
                workspace: space.root.display().to_string(),
                workflows: space.watched.iter().map(Watched::shown).collect(),
                problems,
            });
        }
        let recover = self
            .last_recover
            .is_none_or(|at| now.duration_since(at) >= RECOVER_EVERY);
        if recover {
            self.last_recover = Some(now);
        }
        for watched in spaces.iter_mut().flat_map(|s| s.watched.iter_mut()) {
            if recover {
                self.recover(
                    &watched.target,
                    watched.files.is_some(),
                    watched.schedule.is_some(),
                )
                .await;
            }
            self.look_at(watched, database_changed).await;
        }
        self.spaces = spaces;
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

    /// Starts the runs of firings recorded and not started (a crash in between, a start that
    /// failed).
    async fn recover(&mut self, target: &Target, files: bool, schedule: bool) {
        let path = target.path_text();
        if files {
            self.start_unstarted(target, &files_signal_name(&path), CauseKind::Files)
                .await;
        }
        if schedule {
            self.start_unstarted(target, &schedule_signal_name(&path), CauseKind::Schedule)
                .await;
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
        let signal = watched.target.workflow.triggers.signal.clone();
        if let (Some(name), true) = (signal, database_changed) {
            self.start_unstarted(&watched.target, &name, CauseKind::Signal)
                .await;
        }
    }

    /// Starts a run for each signal named `name` that started none of `target` yet.
    pub(super) async fn start_unstarted(&mut self, target: &Target, name: &str, kind: CauseKind) {
        let cursor_key = (target.path.clone(), name.to_string());
        let after = self.cursors.get(&cursor_key).copied().unwrap_or(0);
        let since = self.began_ms.saturating_sub(LOOK_BACK_MS);
        let (owned_name, path) = (name.to_string(), target.path_text());
        let unstarted = self
            .engine
            .ctx
            .db
            .read(move |store| Ok(store.unstarted_signals(&owned_name, &path, after, since)?))
            .await;
        let signals = match unstarted {
            Ok(signals) => signals,
            Err(error) => return self.problem(error.to_string()),
        };
        let mut all_done = true;
        for signal in signals {
            let done = self.start(target, kind, &signal).await;
            all_done &= done;
            if all_done {
                self.cursors.insert(cursor_key.clone(), signal.signal_id);
            }
        }
    }

    /// Starts the run a firing asks for, unless it started already; `true` once it is done
    /// with (started, by anyone, or given up).
    pub(super) async fn start(
        &mut self,
        target: &Target,
        kind: CauseKind,
        signal: &Signal,
    ) -> bool {
        let key = (signal.signal_id, target.path.clone());
        if self.done.contains(&key) {
            return true;
        }
        let cause = fire::cause_of(kind, signal);
        let summary = cause.summary.clone();
        match fire::start(&self.engine, target, &cause, signal).await {
            Ok(started) => {
                self.done.insert(key);
                self.failed.remove(&(signal.signal_id, target.path.clone()));
                if let Some(run_id) = started {
                    tracing::info!(%run_id, workflow = %target.path.display(), %summary, "a trigger started a run");
                    let _ = self.events.send(WatchEvent::Started {
                        run_id,
                        workflow: target.workflow.name.clone(),
                        workflow_path: target.path_text(),
                        cause,
                    });
                }
                true
            }
            Err(error) => {
                let tries = self.failed.entry(key.clone()).or_default();
                *tries += 1;
                let given_up = *tries >= MAX_TRIES;
                self.problem(format!(
                    "{} ({summary}) did not start{}: {error}",
                    target.path.display(),
                    if given_up {
                        ", given up"
                    } else {
                        "; it is tried again"
                    },
                ));
                if given_up {
                    self.done.insert(key);
                }
                given_up
            }
        }
    }

    pub(super) fn problem(&self, message: String) {
        tracing::warn!(%message, "watcher");
        let _ = self.events.send(WatchEvent::Problem { message });
    }

    pub(super) fn source(&self) -> String {
        format!("watch ({})", self.engine.ctx.config.user)
    }

    pub(super) fn schedule_now_ms(&self) -> i64 {
        self.clock_file
            .as_ref()
            .and_then(|path| std::fs::read_to_string(path).ok())
            .and_then(|text| text.trim().parse::<i64>().ok())
            .unwrap_or_else(|| self.engine.ctx.clock.now_ms())
    }
}
