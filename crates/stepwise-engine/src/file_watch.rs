//! One filesystem watch per engine for the files of pending edits, shared by all its drivers
//! (an inotify instance is a scarce, per-user resource). A driver registers the files its
//! pending edits target; the watch follows the nearest existing directory of each (not the
//! files: editors replace files by renaming, and a file may not exist yet) and tells the driver
//! whose files an event touches, through the callback it registered (the watch knows nothing
//! of drivers).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use notify::{RecommendedWatcher, RecursiveMode, Watcher};

/// Who wants to know, and about which files.
struct Interest {
    targets: BTreeSet<PathBuf>,
    dirs: BTreeSet<PathBuf>,
    on_change: OnChange,
}

/// Called (on the watch's own thread) when a file of an interest may have changed.
pub(crate) type OnChange = Arc<dyn Fn() + Send + Sync>;

pub(crate) struct FileWatch {
    /// `None` when no watch could be had: pending edits are then checked when approved.
    watcher: Mutex<Option<RecommendedWatcher>>,
    interests: Arc<Mutex<HashMap<u64, Interest>>>,
}

impl FileWatch {
    pub(crate) fn start() -> FileWatch {
        let interests: Arc<Mutex<HashMap<u64, Interest>>> = Arc::default();
        let seen = Arc::clone(&interests);
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let interests = seen.lock().unwrap_or_else(|p| p.into_inner());
            for interest in interests.values() {
                let relevant = match &event {
                    // Events may have been lost (the queue overflowed): look.
                    Ok(event) if event.need_rescan() => true,
                    Ok(event) => event
                        .paths
                        .iter()
                        .any(|p| interest.targets.iter().any(|t| t.starts_with(p))),
                    // Events may have been lost: look.
                    Err(_) => true,
                };
                if relevant {
                    (interest.on_change)();
                }
            }
        });
        let watcher = match watcher {
            Ok(watcher) => Some(watcher),
            Err(error) => {
                tracing::warn!(%error, "cannot watch the files of pending edits; they are checked when approved instead");
                None
            }
        };
        FileWatch {
            watcher: Mutex::new(watcher),
            interests,
        }
    }

    /// Sets what driver `id` watches: `targets` inside `root`. Empty targets drop its interest.
    pub(crate) fn set(
        &self,
        id: u64,
        root: &Path,
        targets: BTreeSet<PathBuf>,
        on_change: OnChange,
    ) {
        // The nearest directory that exists: a file in a directory yet to be made shows up as
        // that directory appearing first.
        let dirs: BTreeSet<PathBuf> = targets
            .iter()
            .filter_map(|t| {
                t.ancestors()
                    .skip(1)
                    .take_while(|d| d.starts_with(root))
                    .find(|d| d.is_dir())
                    .map(Path::to_path_buf)
            })
            .collect();
        let mut interests = self.interests.lock().unwrap_or_else(|p| p.into_inner());
        let before = watched_dirs(&interests);
        if targets.is_empty() {
            interests.remove(&id);
        } else {
            interests.insert(
                id,
                Interest {
                    targets,
                    dirs,
                    on_change,
                },
            );
        }
        let after = watched_dirs(&interests);
        drop(interests);
        let mut watcher = self.watcher.lock().unwrap_or_else(|p| p.into_inner());
        let Some(watcher) = watcher.as_mut() else {
            return;
        };
        for gone in before.difference(&after) {
            let _ = watcher.unwatch(gone);
        }
        for new in after.difference(&before) {
            if let Err(error) = watcher.watch(new, RecursiveMode::NonRecursive) {
                tracing::warn!(%error, dir = %new.display(), "cannot watch a directory of a pending edit");
            }
        }
    }

    /// Stops watching: the watch's thread ends, and no callback is called any more.
    pub(crate) fn stop(&self) {
        self.interests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        drop(
            self.watcher
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
    }

    /// The files driver `id` watches.
    pub(crate) fn targets(&self, id: u64) -> BTreeSet<PathBuf> {
        self.interests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .map(|interest| interest.targets.clone())
            .unwrap_or_default()
    }
}

fn watched_dirs(interests: &HashMap<u64, Interest>) -> BTreeSet<PathBuf> {
    interests
        .values()
        .flat_map(|interest| interest.dirs.iter().cloned())
        .collect()
}
