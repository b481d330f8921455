//! The workspace view's watcher: one workspace at a time (the one the window shows), each of its
//! folders watched on its own, with a short debounce, each burst of changes becoming one live
//! signal. What `.gitignore` ignores is not watched (a build's `target/` or a `node_modules/`
//! churns thousands of files and would cost a watch per folder and a signal per build), nor ever
//! `target/`, `node_modules/` or `.git/`; a folder created later is watched when it appears.
//! Files being opened or read are not changes: the view listing the workspace, or a run reading
//! a file, must not signal (which would have the view list it again, and so on).

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use ignore::WalkBuilder;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::broadcast;

use crate::view::LiveSignal;

/// Changes closer together than this are one signal (well inside the half second in which a
/// change must show).
const DEBOUNCE: Duration = Duration::from_millis(150);

/// Never watched, whatever `.gitignore` says: tools' output and the repository's own store.
const NEVER_WATCHED: &[&str] = &[".git", "target", "node_modules"];

/// At most this many folders are watched (each costs the kernel a watch).
const MAX_WATCHED: usize = 8_192;

struct Current {
    root: PathBuf,
    watcher: RecommendedWatcher,
    watched: HashSet<PathBuf>,
    /// The root's `.gitignore` (and `.git/info/exclude`): changes of what it ignores inside a
    /// watched folder (`*.pyc`, say) are not signalled.
    ignored: Gitignore,
}

type Shared = Arc<Mutex<Option<Current>>>;

pub struct WorkspaceWatch {
    live: broadcast::Sender<LiveSignal>,
    current: Shared,
}

fn lock(shared: &Shared) -> MutexGuard<'_, Option<Current>> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether a path inside the workspace goes through a folder that is never watched.
fn never_watched(rel: &Path) -> bool {
    rel.components().any(|c| match c {
        Component::Normal(name) => NEVER_WATCHED.iter().any(|n| name == *n),
        _ => false,
    })
}

fn root_ignores(root: &Path) -> Gitignore {
    let mut builder = GitignoreBuilder::new(root);
    for file in [root.join(".gitignore"), root.join(".git/info/exclude")] {
        if file.is_file() {
            // A line that does not parse is left out; the rest still applies.
            let _ = builder.add(file);
        }
    }
    builder.build().unwrap_or_else(|_| Gitignore::empty())
}

/// The folders under `dir` (itself included) to watch: not ignored by any `.gitignore` on the
/// way, never one of `NEVER_WATCHED`, never through a symbolic link.
fn folders(root: &Path, dir: &Path) -> Vec<PathBuf> {
    let mut walk = WalkBuilder::new(dir);
    walk.hidden(false)
        .parents(true)
        .git_ignore(true)
        .git_exclude(true)
        .git_global(false)
        .ignore(false)
        // A workspace need not be a git repository for its `.gitignore` to count.
        .require_git(false)
        .follow_links(false)
        .filter_entry(|entry| {
            !NEVER_WATCHED
                .iter()
                .any(|n| entry.file_name() == *n && entry.depth() > 0)
        });
    walk.build()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_some_and(|t| t.is_dir()))
        .map(|e| e.into_path())
        .filter(|p| p.strip_prefix(root).is_ok_and(|rel| !never_watched(rel)))
        .take(MAX_WATCHED)
        .collect()
}

impl Current {
    fn add(&mut self, dir: &Path) {
        for folder in folders(&self.root, dir) {
            if self.watched.len() >= MAX_WATCHED {
                tracing::warn!(root = %self.root.display(), "watching the first {MAX_WATCHED} folders only");
                return;
            }
            if self.watched.contains(&folder) {
                continue;
            }
            match self.watcher.watch(&folder, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.watched.insert(folder);
                }
                Err(error) => tracing::debug!("not watching {}: {error}", folder.display()),
            }
        }
    }

    /// Takes in a burst of changed paths: watches new folders, and says whether any change is
    /// one the view shows.
    fn changed(&mut self, paths: Vec<PathBuf>) -> bool {
        let mut shown = false;
        let mut ignores_changed = false;
        for path in paths {
            let Ok(rel) = path.strip_prefix(&self.root) else {
                continue;
            };
            if never_watched(rel) {
                continue;
            }
            let is_dir = path.is_dir();
            if self
                .ignored
                .matched_path_or_any_parents(rel, is_dir)
                .is_ignore()
            {
                continue;
            }
            shown = true;
            ignores_changed |= path.file_name().is_some_and(|n| n == ".gitignore");
            if is_dir && !self.watched.contains(&path) {
                self.add(&path);
            }
        }
        if ignores_changed {
            self.ignored = root_ignores(&self.root);
        }
        shown
    }
}

/// The paths of the next burst of changes: the first change, and all that follow it within
/// `DEBOUNCE`. `None` once the watcher is gone.
fn next_burst(changes: &std::sync::mpsc::Receiver<Vec<PathBuf>>) -> Option<Vec<PathBuf>> {
    let mut paths = changes.recv().ok()?;
    let deadline = std::time::Instant::now() + DEBOUNCE;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match changes.recv_timeout(left) {
            Ok(more) => paths.extend(more),
            Err(_) => return Some(paths),
        }
    }
}

impl WorkspaceWatch {
    pub fn new(live: broadcast::Sender<LiveSignal>) -> WorkspaceWatch {
        WorkspaceWatch {
            live,
            current: Arc::default(),
        }
    }

    /// Watches `root` (and stops watching the previous one).
    pub fn watch(&self, root: &Path) -> Result<(), String> {
        let mut current = lock(&self.current);
        if current.as_ref().is_some_and(|c| c.root == root) {
            return Ok(());
        }
        *current = None;
        let (changes, bursts) = std::sync::mpsc::channel::<Vec<PathBuf>>();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if let Ok(event) = event
                && !matches!(event.kind, EventKind::Access(_))
            {
                let _ = changes.send(event.paths);
            }
        })
        .map_err(|e| format!("cannot watch {}: {e}", root.display()))?;
        let live = self.live.clone();
        let weak: Weak<Mutex<Option<Current>>> = Arc::downgrade(&self.current);
        let watched_root = root.to_path_buf();
        // Ends when the watcher (and with it the sending side) is dropped.
        std::thread::Builder::new()
            .name("workspace-watch".into())
            .spawn(move || {
                while let Some(paths) = next_burst(&bursts) {
                    let Some(shared) = weak.upgrade() else {
                        return;
                    };
                    let relevant = {
                        let mut current = lock(&shared);
                        match current.as_mut() {
                            Some(c) if c.root == watched_root => c.changed(paths),
                            _ => return,
                        }
                    };
                    if relevant {
                        let _ = live.send(LiveSignal::Workspace {
                            root: watched_root.display().to_string(),
                        });
                    }
                }
            })
            .map_err(|e| format!("cannot watch {}: {e}", root.display()))?;
        let mut watch = Current {
            root: root.to_path_buf(),
            watcher,
            watched: HashSet::new(),
            ignored: root_ignores(root),
        };
        watch.add(root);
        if watch.watched.is_empty() {
            return Err(format!("cannot watch {}", root.display()));
        }
        *current = Some(watch);
        Ok(())
    }

    /// The folders watched now, relative to the root (for tests).
    #[cfg(test)]
    pub fn watched(&self) -> Vec<PathBuf> {
        let current = lock(&self.current);
        let mut out: Vec<PathBuf> = current
            .iter()
            .flat_map(|c| {
                c.watched
                    .iter()
                    .filter_map(|p| p.strip_prefix(&c.root).ok().map(Path::to_path_buf))
            })
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mkdirs(root: &Path, dirs: &[&str]) {
        for d in dirs {
            std::fs::create_dir_all(root.join(d)).expect("mkdir");
        }
    }

    /// Waits (at most `limit`) for a workspace signal.
    fn signalled(rx: &mut broadcast::Receiver<LiveSignal>, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            match rx.try_recv() {
                Ok(LiveSignal::Workspace { .. }) => return true,
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        false
    }

    #[test]
    fn what_gitignore_ignores_and_tools_folders_are_never_watched() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let root = dir.path();
        mkdirs(
            root,
            &[
                "src/pkg",
                "target/debug/deps",
                "node_modules/left-pad",
                ".git/objects",
                "build/out",
                "docs/node_modules/x",
                "venv/lib",
            ],
        );
        std::fs::write(root.join(".gitignore"), "build/\n/venv\n*.pyc\n").expect("write");
        let (live, mut rx) = broadcast::channel(16);
        let watch = WorkspaceWatch::new(live);
        watch.watch(root).expect("watch");
        let watched = watch.watched();
        let shown: Vec<String> = watched.iter().map(|p| p.display().to_string()).collect();
        assert_eq!(shown, ["", "docs", "src", "src/pkg"]);

        // A new folder is watched as it appears, and a change in it is signalled.
        std::fs::create_dir_all(root.join("src/new")).expect("mkdir");
        assert!(
            signalled(&mut rx, Duration::from_secs(10)),
            "the new folder"
        );
        std::fs::write(root.join("src/new/a.txt"), "a").expect("write");
        assert!(signalled(&mut rx, Duration::from_secs(10)), "a file in it");
        assert!(watch.watched().contains(&PathBuf::from("src/new")));
        // Bursts of the writes above may still be arriving: wait for a quiet spell.
        while signalled(&mut rx, Duration::from_millis(500)) {}
        // Ignored files in a watched folder change nothing the view shows.
        std::fs::write(root.join("src/cache.pyc"), "x").expect("write");
        std::fs::create_dir_all(root.join("build/more")).expect("mkdir");
        // Reading is not changing: listing the workspace (as the view does) or reading a file
        // (as a run does) must not signal, or the view would list it again, and again.
        let _ = std::fs::read_dir(root.join("src")).map(|d| d.count());
        let _ = std::fs::read_to_string(root.join("src/new/a.txt"));
        assert!(!signalled(&mut rx, Duration::from_millis(600)));
        assert!(!watch.watched().iter().any(|p| p.starts_with("build")));
    }
}
