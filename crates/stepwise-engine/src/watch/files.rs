//! A file trigger's view of its workspace: what each matching file held when last looked at,
//! which paths were touched since, and once they have been quiet for the debounce (or touched
//! for too long without a pause), what changed — created, modified, deleted — by content: a
//! file saved with what it held already is no change. Each change is named by its path and the
//! version it leaves (content and modification time), as every watcher sees it, so that
//! watchers that grouped changes differently still claim each once (`fire`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use globset::GlobSet;
use stepwise_core::workflow::triggers::{FileEvent, FilesTrigger};

use super::file_state::{FileState, base_of, is_under, is_within, relative, state_of, watched_dir};

/// Directories a file trigger never looks into: the repository's and Stepwise's own.
const NEVER_WATCHED: [&str; 2] = [".git", ".stepwise"];
/// The most entries a look at the workspace (or a new directory) walks.
const MAX_WALKED: usize = 200_000;
/// How long a change waits again when a run in the workspace is still changing files.
const RETRY_AFTER: Duration = Duration::from_millis(500);
/// Files touched without a pause for this long (or ten debounces, if longer) are looked at
/// anyway: a log written every second must not keep a trigger from ever firing.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// One change a trigger answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Change {
    /// Workspace-relative, with `/`.
    pub(super) path: String,
    pub(super) event: FileEvent,
    /// What it holds now (`None`: deleted).
    pub(super) now: Option<String>,
    /// The change as every watcher names it: the path and the version it leaves (for a
    /// deletion, the version deleted).
    pub(super) key: String,
}

pub(super) struct FilesWatch {
    pub(super) trigger: FilesTrigger,
    matcher: GlobSet,
    /// Where the patterns' files can be: workspace-relative directories, and whether below
    /// them too.
    bases: Vec<(String, bool)>,
    root: PathBuf,
    /// What each matching file held when last looked at (absent: not there).
    known: BTreeMap<String, FileState>,
    /// Paths touched since they were last looked at (a directory stands for what is in it).
    touched: BTreeSet<String>,
    first_touch: Option<Instant>,
    last_touch: Option<Instant>,
    /// Changes seen and not yet answered: what the path held before them and holds now.
    pending: BTreeMap<String, (Option<FileState>, Option<FileState>)>,
    /// When the first of the pending changes was seen, in ms since the epoch.
    pub(super) first_seen_ms: Option<i64>,
    retry_at: Option<Instant>,
}

impl FilesWatch {
    /// Looks at every matching file of the workspace `root` (file IO: not on an async worker).
    pub(super) fn new(root: &Path, trigger: FilesTrigger) -> Result<FilesWatch, String> {
        let matcher = trigger.matcher()?;
        let mut bases: Vec<(String, bool)> = trigger.paths.iter().map(|p| base_of(p)).collect();
        bases.sort();
        bases.dedup();
        let mut watch = FilesWatch {
            trigger,
            matcher,
            bases,
            root: root.to_path_buf(),
            known: BTreeMap::new(),
            touched: BTreeSet::new(),
            first_touch: None,
            last_touch: None,
            pending: BTreeMap::new(),
            first_seen_ms: None,
            retry_at: None,
        };
        for rel in watch.matching_under("") {
            if let Some(state) = state_of(root, &rel) {
                watch.known.insert(rel, state);
            }
        }
        Ok(watch)
    }

    /// The directories to watch for this trigger, and whether recursively.
    pub(super) fn watched_dirs(&self) -> Vec<(PathBuf, bool)> {
        self.bases
            .iter()
            .map(|base| watched_dir(&self.root, base))
            .collect()
    }

    /// Notes that `rel` (workspace-relative) may have changed.
    pub(super) fn touch(&mut self, rel: &str, now: Instant, now_ms: i64) {
        if rel.split('/').any(|part| NEVER_WATCHED.contains(&part)) {
            return;
        }
        // A directory may hold matching files: one on the way to a base or inside one (a
        // directory created with files in it, or moved in, is one event), or one with known
        // files under it (deleted or moved away whole).
        let relevant = self.matcher.is_match(rel)
            || self.knows_under(rel)
            || (self.bases.iter().any(|(base, recursive)| {
                (*recursive && is_within(rel, base)) || is_under(base, rel)
            }) && std::fs::symlink_metadata(self.root.join(rel)).is_ok_and(|m| m.is_dir()));
        if relevant {
            self.touched.insert(rel.to_string());
            self.first_touch.get_or_insert(now);
            self.last_touch = Some(now);
            self.first_seen_ms.get_or_insert(now_ms);
        }
    }

    fn knows_under(&self, dir: &str) -> bool {
        let prefix = format!("{dir}/");
        self.known
            .range(prefix.clone()..)
            .next()
            .is_some_and(|(path, _)| path.starts_with(&prefix))
    }

    /// Events may have been lost (or the watch was made anew): everything is looked at again.
    pub(super) fn touch_everything(&mut self, now: Instant, now_ms: i64) {
        self.touched.insert(String::new());
        self.first_touch.get_or_insert(now);
        self.last_touch = Some(now);
        self.first_seen_ms.get_or_insert(now_ms);
    }

    /// Whether it is time to look: the touched paths have been quiet for the debounce (or
    /// touched too long without a pause), or changes put off are due again, quiet too.
    pub(super) fn due(&self, now: Instant) -> bool {
        let debounce = self.trigger.debounce;
        let quiet = self
            .last_touch
            .is_none_or(|at| now.duration_since(at) >= debounce);
        let too_long = self
            .first_touch
            .is_some_and(|at| now.duration_since(at) >= MAX_WAIT.max(debounce * 10));
        let touched = !self.touched.is_empty() && (quiet || too_long);
        let retry = !self.pending.is_empty() && self.retry_at.is_some_and(|at| now >= at) && quiet;
        touched || retry
    }

    /// Looks at the touched paths (file IO) and returns the changes not yet answered, in path
    /// order, of the kinds the trigger answers.
    pub(super) fn settle(&mut self) -> Vec<Change> {
        let touched = std::mem::take(&mut self.touched);
        self.first_touch = None;
        self.last_touch = None;
        self.retry_at = None;
        let mut paths: BTreeSet<String> = BTreeSet::new();
        for rel in &touched {
            let is_dir = rel.is_empty()
                || std::fs::symlink_metadata(self.root.join(rel)).is_ok_and(|m| m.is_dir());
            if is_dir {
                paths.extend(self.matching_under(rel));
            } else if self.matcher.is_match(rel) {
                paths.insert(rel.clone());
            }
            // What was known there and may be gone.
            let prefix = format!("{rel}/");
            paths.extend(
                (self.known.keys())
                    .filter(|known| rel.is_empty() || *known == rel || known.starts_with(&prefix))
                    .cloned(),
            );
        }
        for rel in paths {
            let now = state_of(&self.root, &rel);
            let before = match &now {
                Some(state) => self.known.insert(rel.clone(), state.clone()),
                None => self.known.remove(&rel),
            };
            let same = match (&before, &now) {
                (Some(a), Some(b)) => a.same_content(b),
                (None, None) => true,
                _ => false,
            };
            if same {
                continue;
            }
            let entry = self.pending.entry(rel).or_insert((before, None));
            entry.1 = now;
        }
        self.pending.retain(|_, (before, now)| match (before, now) {
            (Some(a), Some(b)) => !a.same_content(b),
            (None, None) => false,
            _ => true,
        });
        if self.pending.is_empty() {
            self.first_seen_ms = None;
        }
        self.pending
            .iter()
            .filter_map(|(path, (before, now))| {
                let event = match (before, now) {
                    (None, Some(_)) => FileEvent::Create,
                    (Some(_), None) => FileEvent::Delete,
                    _ => FileEvent::Modify,
                };
                let key = match (now, before) {
                    (Some(now), _) => format!("{path}\0{}\0{}", now.content, now.modified_ns),
                    (None, Some(before)) => format!(
                        "{path}\0deleted\0{}\0{}",
                        before.content, before.modified_ns
                    ),
                    (None, None) => return None,
                };
                self.trigger.events.contains(&event).then(|| Change {
                    path: path.clone(),
                    event,
                    now: now.as_ref().map(|state| state.content.clone()),
                    key,
                })
            })
            .collect()
    }

    /// The changes wait: a run in the workspace is still changing files, or they could not
    /// be recorded yet.
    pub(super) fn put_off(&mut self, now: Instant) {
        self.retry_at = Some(now + RETRY_AFTER);
    }

    /// The pending changes are answered (a run started, or they were a run's own).
    pub(super) fn answered(&mut self) {
        self.pending.clear();
        self.first_seen_ms = None;
        self.retry_at = None;
    }

    /// The matching files (workspace-relative) in the directory `rel` and below, where the
    /// patterns can have files: never into the directories never watched, never through a
    /// link, at most [`MAX_WALKED`] entries.
    fn matching_under(&self, rel: &str) -> Vec<String> {
        let mut found = Vec::new();
        for (base, recursive) in &self.bases {
            // Walk the part of `rel` the base covers.
            let (start, depth) = if is_within(rel, base) {
                let below = rel.strip_prefix(base.as_str()).map_or(0, |rest| {
                    rest.split('/').filter(|part| !part.is_empty()).count()
                });
                match (recursive, below) {
                    (true, _) => (rel.to_string(), None),
                    (false, 0) => (rel.to_string(), Some(1)),
                    (false, _) => continue,
                }
            } else if is_under(base, rel) {
                (base.clone(), if *recursive { None } else { Some(1) })
            } else {
                continue;
            };
            found.extend(self.walk(&start, depth));
        }
        found.sort();
        found.dedup();
        found
    }

    fn walk(&self, rel: &str, max_depth: Option<usize>) -> Vec<String> {
        let dir = self.root.join(rel);
        if !std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
            return Vec::new();
        }
        let walker = ignore::WalkBuilder::new(&dir)
            .standard_filters(false)
            .follow_links(false)
            .max_depth(max_depth)
            .filter_entry(|entry| {
                !NEVER_WATCHED
                    .iter()
                    .any(|name| entry.file_name() == std::ffi::OsStr::new(name))
            })
            .build();
        walker
            .take(MAX_WALKED)
            .filter_map(Result::ok)
            .filter(|entry| !entry.file_type().is_some_and(|t| t.is_dir()))
            .filter_map(|entry| relative(&self.root, entry.path()))
            .filter(|rel| self.matcher.is_match(rel))
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const ALL: [FileEvent; 3] = [FileEvent::Create, FileEvent::Modify, FileEvent::Delete];

    fn trigger(paths: &[&str], events: &[FileEvent]) -> FilesTrigger {
        FilesTrigger {
            paths: paths.iter().map(|p| p.to_string()).collect(),
            events: events.iter().copied().collect(),
            debounce: Duration::ZERO,
            include_own: false,
        }
    }

    fn root() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        (dir, root)
    }

    #[test]
    fn changes_are_told_by_content_and_merged_until_answered() {
        let (_dir, root) = root();
        std::fs::create_dir(root.join("src")).unwrap();
        std::fs::write(root.join("src/a.rs"), "a").unwrap();
        let mut watch = FilesWatch::new(&root, trigger(&["src/**/*.rs"], &ALL)).unwrap();
        let now = Instant::now();

        // Saved with the same content: no change.
        std::fs::write(root.join("src/a.rs"), "a").unwrap();
        watch.touch("src/a.rs", now, 1);
        assert!(watch.due(now));
        assert!(watch.settle().is_empty());

        // A new directory with a file in it, and a modification.
        std::fs::create_dir_all(root.join("src/deep")).unwrap();
        std::fs::write(root.join("src/deep/b.rs"), "b").unwrap();
        std::fs::write(root.join("src/a.rs"), "a2").unwrap();
        std::fs::write(root.join("src/notes.txt"), "x").unwrap();
        watch.touch("src/deep", now, 2);
        watch.touch("src/a.rs", now, 2);
        watch.touch("src/notes.txt", now, 2);
        let changes = watch.settle();
        let seen: Vec<_> = changes.iter().map(|c| (c.path.as_str(), c.event)).collect();
        assert_eq!(
            seen,
            [
                ("src/a.rs", FileEvent::Modify),
                ("src/deep/b.rs", FileEvent::Create)
            ]
        );

        // Not answered yet: created then deleted is no change at all.
        std::fs::remove_file(root.join("src/deep/b.rs")).unwrap();
        watch.touch("src/deep/b.rs", now, 3);
        let changes = watch.settle();
        assert_eq!(changes.len(), 1, "{changes:?}");
        watch.answered();
        assert!(watch.settle().is_empty());

        // A directory deleted whole: its files are deleted.
        std::fs::remove_dir_all(root.join("src")).unwrap();
        watch.touch("src", now, 4);
        let changes = watch.settle();
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(
            (changes[0].path.as_str(), changes[0].event),
            ("src/a.rs", FileEvent::Delete)
        );
    }

    #[test]
    fn the_same_content_saved_again_later_is_another_change() {
        let (_dir, root) = root();
        std::fs::write(root.join("a.txt"), "x").unwrap();
        let mut watch = FilesWatch::new(&root, trigger(&["*.txt"], &ALL)).unwrap();
        let now = Instant::now();
        let mut keys = Vec::new();
        for content in ["y", "x", "y"] {
            std::thread::sleep(Duration::from_millis(5));
            std::fs::write(root.join("a.txt"), content).unwrap();
            watch.touch("a.txt", now, 1);
            let changes = watch.settle();
            assert_eq!(changes.len(), 1);
            keys.push(changes[0].key.clone());
            watch.answered();
        }
        assert_ne!(keys[0], keys[2], "two saves of `y` are two changes");
    }

    #[test]
    fn a_pattern_is_looked_for_where_it_can_match_only() {
        let (_dir, root) = root();
        std::fs::create_dir_all(root.join("target/deep")).unwrap();
        std::fs::create_dir_all(root.join("src")).unwrap();
        let mut watch = FilesWatch::new(&root, trigger(&["src/**", "Cargo.toml"], &ALL)).unwrap();
        let dirs = watch.watched_dirs();
        assert!(dirs.contains(&(root.join("src"), true)), "{dirs:?}");
        assert!(dirs.contains(&(root.clone(), false)), "{dirs:?}");
        let now = Instant::now();
        watch.touch("target/deep", now, 1);
        assert!(
            !watch.due(now),
            "a directory no pattern reaches is not looked into"
        );
        std::fs::create_dir_all(root.join("src/new")).unwrap();
        std::fs::write(root.join("src/new/x.txt"), "x").unwrap();
        watch.touch("src/new", now, 1);
        assert_eq!(watch.settle().len(), 1);
    }

    #[test]
    fn only_the_events_asked_for_count_and_links_are_not_followed() {
        let (_dir, root) = root();
        std::fs::write(root.join("gone.txt"), "x").unwrap();
        let mut watch = FilesWatch::new(&root, trigger(&["*.txt"], &[FileEvent::Delete])).unwrap();
        let now = Instant::now();
        std::fs::write(root.join("new.txt"), "x").unwrap();
        std::os::unix::fs::symlink("/dev/zero", root.join("zero.txt")).unwrap();
        std::fs::remove_file(root.join("gone.txt")).unwrap();
        for path in ["new.txt", "zero.txt", "gone.txt"] {
            watch.touch(path, now, 1);
        }
        let changes = watch.settle();
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].path, "gone.txt");
        assert_eq!(changes[0].now, None);
    }

    #[test]
    fn files_touched_without_a_pause_are_looked_at_in_the_end() {
        let (_dir, root) = root();
        let mut slow = trigger(&["*.log"], &ALL);
        slow.debounce = Duration::from_secs(5);
        let mut watch = FilesWatch::new(&root, slow).unwrap();
        let start = Instant::now();
        let mut at = start;
        while at < start + Duration::from_secs(49) {
            watch.touch("app.log", at, 1);
            assert!(!watch.due(at), "quiet? {:?}", at - start);
            at += Duration::from_secs(1);
        }
        watch.touch("app.log", at + Duration::from_secs(1), 1);
        assert!(watch.due(at + Duration::from_secs(1)));
    }
}
