//! The workspace view's watcher: one workspace at a time (the one the window shows), watched
//! recursively with a short debounce, each burst of changes becoming one live signal.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer};
use tokio::sync::broadcast;

use crate::view::LiveSignal;

/// Changes closer together than this are one signal (well inside the half second in which a
/// change must show).
const DEBOUNCE: Duration = Duration::from_millis(150);

pub struct WorkspaceWatch {
    live: broadcast::Sender<LiveSignal>,
    current: Mutex<Option<(PathBuf, Debouncer<RecommendedWatcher>)>>,
}

impl WorkspaceWatch {
    pub fn new(live: broadcast::Sender<LiveSignal>) -> WorkspaceWatch {
        WorkspaceWatch {
            live,
            current: Mutex::new(None),
        }
    }

    /// Watches `root` (and stops watching the previous one).
    pub fn watch(&self, root: &Path) -> Result<(), String> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if current.as_ref().is_some_and(|(watched, _)| watched == root) {
            return Ok(());
        }
        *current = None;
        let live = self.live.clone();
        let shown = root.display().to_string();
        let mut debouncer = new_debouncer(DEBOUNCE, move |result: DebounceEventResult| {
            if result.is_ok() {
                let _ = live.send(LiveSignal::Workspace {
                    root: shown.clone(),
                });
            }
        })
        .map_err(|e| format!("cannot watch {}: {e}", root.display()))?;
        debouncer
            .watcher()
            .watch(root, RecursiveMode::Recursive)
            .map_err(|e| format!("cannot watch {}: {e}", root.display()))?;
        *current = Some((root.to_path_buf(), debouncer));
        Ok(())
    }
}
