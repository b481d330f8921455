//! The file watch of a watcher: the directories its triggers need (each once, recursively when
//! any trigger needs it so, none below another watched recursively), never through a link.
//! What it sees is gathered into one bounded set of paths that the watcher takes at its pace:
//! a storm of events (a build, a checkout) costs a set, not a queue, and past
//! [`MAX_GATHERED`] paths it is "look at everything again".
//!
//! When what it must watch changes, the watch is made anew rather than amended: removing one
//! watch of a recursive pair takes the other's with it, and a watched directory deleted and
//! made again is watched no more. Whatever happened in between is looked at again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};
use tokio::sync::Notify;

/// The most distinct paths gathered before the watcher is told to look at everything.
const MAX_GATHERED: usize = 100_000;

/// What the watch saw since it was last taken.
#[derive(Debug, Default)]
pub(super) struct Seen {
    pub(super) paths: BTreeSet<PathBuf>,
    /// Events were lost (or too many came): everything is looked at again.
    pub(super) lost: bool,
}

#[derive(Default)]
pub(super) struct Gathered {
    seen: Mutex<Seen>,
    wake: Notify,
}

impl Gathered {
    /// Waits until something was seen (at once if something was since the last wait).
    pub(super) async fn changed(&self) {
        self.wake.notified().await;
    }
}

pub(super) struct FsEvents {
    gathered: Arc<Gathered>,
    watcher: Option<RecommendedWatcher>,
    /// What is watched: directory, and whether recursively.
    watching: BTreeMap<PathBuf, bool>,
}

impl FsEvents {
    pub(super) fn new() -> FsEvents {
        FsEvents {
            gathered: Arc::default(),
            watcher: None,
            watching: BTreeMap::new(),
        }
    }

    /// Where what it sees is gathered (to wait on while the watch itself is made anew).
    pub(super) fn gathered(&self) -> Arc<Gathered> {
        Arc::clone(&self.gathered)
    }

    /// What was seen since the last take.
    pub(super) fn take(&self) -> Seen {
        let mut seen = self
            .gathered
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        std::mem::take(&mut *seen)
    }

    /// Watches `wanted` (directory, recursively?) from now on. `Ok(true)` when the watch was
    /// made anew (what happened before it is not known: look again); the problems of the
    /// directories that could not be watched (they are tried again next time).
    pub(super) fn watch(&mut self, wanted: Vec<(PathBuf, bool)>) -> (bool, Vec<String>) {
        let mut merged: BTreeMap<PathBuf, bool> = BTreeMap::new();
        for (dir, recursive) in wanted {
            *merged.entry(dir).or_default() |= recursive;
        }
        // A directory below one watched recursively is watched with it.
        let recursive: Vec<PathBuf> = (merged.iter())
            .filter(|(_, recursive)| **recursive)
            .map(|(dir, _)| dir.clone())
            .collect();
        merged.retain(|dir, _| !recursive.iter().any(|r| dir != r && dir.starts_with(r)));
        if self.watcher.is_some() && merged == self.watching {
            return (false, Vec::new());
        }
        let gathered = Arc::clone(&self.gathered);
        let config = notify::Config::default().with_follow_symlinks(false);
        let mut watcher = match RecommendedWatcher::new(
            move |event: notify::Result<notify::Event>| gather(&gathered, event),
            config,
        ) {
            Ok(watcher) => watcher,
            Err(error) => {
                self.watcher = None;
                self.watching.clear();
                return (true, vec![format!("cannot watch files: {error}")]);
            }
        };
        let mut problems = Vec::new();
        let mut watching = BTreeMap::new();
        for (dir, recursive) in merged {
            let mode = match recursive {
                true => RecursiveMode::Recursive,
                false => RecursiveMode::NonRecursive,
            };
            match watcher.watch(&dir, mode) {
                Ok(()) => {
                    watching.insert(dir, recursive);
                }
                Err(error) => problems.push(format!("cannot watch `{}`: {error}", dir.display())),
            }
        }
        self.watcher = Some(watcher);
        self.watching = watching;
        (true, problems)
    }
}

fn gather(gathered: &Gathered, event: notify::Result<notify::Event>) {
    {
        let mut seen = gathered
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match event {
            Ok(event) if event.need_rescan() => seen.lost = true,
            // Reading a file is no change (and the watcher reads what it watches).
            Ok(event) if matches!(event.kind, notify::EventKind::Access(_)) => return,
            Ok(event) => {
                if !seen.lost {
                    seen.paths.extend(event.paths);
                }
                if seen.paths.len() > MAX_GATHERED {
                    seen.paths.clear();
                    seen.lost = true;
                }
            }
            Err(_) => seen.lost = true,
        }
    }
    gathered.wake.notify_one();
}
