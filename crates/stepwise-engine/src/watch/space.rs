//! A watched workspace: the workflows in its `workflows/` folder that declare triggers, each
//! with what its triggers watch. Read again whenever a file there changes; a workflow whose
//! file did not change keeps what it saw (its files, its last schedule slot).

use std::path::PathBuf;

use serde::Serialize;
use stepwise_core::workflow::triggers::Triggers;

use super::files::FilesWatch;
use super::fire::Target;
use super::schedule::ScheduleWatch;

/// A workflow with triggers, as a watcher reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WatchedWorkflow {
    /// Its name.
    pub name: String,
    /// Its file.
    pub path: String,
    /// Each trigger as people read it: `files src/**/*.rs`, `schedule */15 * * * *`.
    pub triggers: Vec<String>,
}

pub(super) struct Watched {
    pub(super) target: Target,
    pub(super) files: Option<FilesWatch>,
    pub(super) schedule: Option<ScheduleWatch>,
    /// Whether the schedule's last recorded slot was read (it needs the database).
    pub(super) schedule_begun: bool,
    /// Its file watch was just made: what changed while it was made is looked at.
    pub(super) fresh: bool,
}

impl Watched {
    pub(super) fn shown(&self) -> WatchedWorkflow {
        WatchedWorkflow {
            name: self.target.workflow.name.clone(),
            path: self.target.path_text(),
            triggers: described(&self.target.workflow.triggers),
        }
    }
}

fn described(triggers: &Triggers) -> Vec<String> {
    let mut shown = Vec::new();
    if let Some(files) = &triggers.files {
        shown.push(format!("files {}", files.paths.join(", ")));
    }
    if let Some(schedule) = &triggers.schedule {
        shown.push(format!("schedule {}", schedule.cron));
    }
    if let Some(signal) = &triggers.signal {
        shown.push(format!("signal {signal}"));
    }
    shown
}

pub(super) struct Space {
    /// The workspace, absolute and free of links.
    pub(super) root: PathBuf,
    pub(super) watched: Vec<Watched>,
    /// A file in `workflows/` changed: read them again.
    pub(super) reload: bool,
}

impl Space {
    /// The workspace's folder of workflows.
    pub(super) fn workflows_dir(&self) -> PathBuf {
        self.root.join("workflows")
    }

    /// What to watch for this workspace: the workspace itself, not recursively (its
    /// `workflows/` may be created), `workflows/`, and what each file trigger needs,
    /// recursively. `true`: recursively.
    pub(super) fn watches(&self) -> Vec<(PathBuf, bool)> {
        let mut watches = vec![(self.root.clone(), false)];
        if self.workflows_dir().is_dir() {
            watches.push((self.workflows_dir(), false));
        }
        for watched in &self.watched {
            watches.extend(watched.files.iter().flat_map(FilesWatch::watched_dirs));
        }
        watches
    }

    /// Reads the workflows again (file IO: not on an async worker), keeping the watches of
    /// those whose file is unchanged. Returns the problems found (a workflow that does not
    /// load is named with why).
    pub(super) fn load(&mut self) -> Vec<String> {
        self.reload = false;
        let mut problems = Vec::new();
        let mut old = std::mem::take(&mut self.watched);
        for path in crate::workflow_file::workflow_files(&self.workflows_dir()) {
            let path = std::fs::canonicalize(&path).unwrap_or(path);
            let (workflow, _, _) = match crate::workflow_file::load_in(&path, Some(&self.root)) {
                Ok(read) => read,
                Err(error) => {
                    problems.push(format!("{}: {error}", path.display()));
                    continue;
                }
            };
            if !workflow.triggers.any() {
                continue;
            }
            if let Some(i) = old.iter().position(|w| {
                w.target.path == path && w.target.workflow.source_hash == workflow.source_hash
            }) {
                self.watched.push(old.swap_remove(i));
                continue;
            }
            let files = match workflow
                .triggers
                .files
                .clone()
                .map(|files| FilesWatch::new(&self.root, files))
            {
                Some(Ok(files)) => Some(files),
                Some(Err(message)) => {
                    problems.push(format!("{}: {message}", path.display()));
                    continue;
                }
                None => None,
            };
            let schedule = match workflow.triggers.schedule.clone().map(ScheduleWatch::new) {
                Some(Ok(schedule)) => Some(schedule),
                Some(Err(message)) => {
                    problems.push(format!("{}: {message}", path.display()));
                    continue;
                }
                None => None,
            };
            self.watched.push(Watched {
                target: Target {
                    path,
                    workspace: self.root.clone(),
                    workflow,
                },
                files,
                schedule,
                schedule_begun: false,
                fresh: true,
            });
        }
        problems
    }
}
