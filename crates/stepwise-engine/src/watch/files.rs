//! A file trigger's view of its workspace: what each matching file held when last looked at,
//! which paths were touched since, and once they have been quiet for the debounce, what
//! changed (created, modified, deleted), by content: a file saved with what it held already is
//! no change. Files are read without following links and only when plain; a very large file
//! is known by its size and time rather than read.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use globset::GlobSet;
use stepwise_core::hash::ContentHasher;
use stepwise_core::workflow::triggers::{FileEvent, FilesTrigger};

/// Directories a file trigger never looks into: the repository's and Stepwise's own.
const NEVER_WATCHED: [&str; 2] = [".git", ".stepwise"];
/// The most entries a look at the whole workspace (or a new directory) walks.
const MAX_WALKED: usize = 200_000;
/// Files larger than this are known by size and modification time, not read.
const MAX_HASHED_BYTES: u64 = 64 * 1024 * 1024;
/// How long a change waits again when a run in the workspace is still changing files.
pub(super) const RETRY_AFTER: Duration = Duration::from_millis(500);

/// One change a trigger answers: the path (workspace-relative, `/`), what happened, and the
/// content it holds now (`None`: deleted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Change {
    pub(super) path: String,
    pub(super) event: FileEvent,
    pub(super) now: Option<String>,
}

pub(super) struct FilesWatch {
    pub(super) trigger: FilesTrigger,
    matcher: GlobSet,
    /// The directories (workspace-relative) the patterns can match under: each pattern's
    /// literal leading directories (`src/gen` for `src/gen/**/*.rs`; `` for `**/*.md`).
    bases: Vec<String>,
    root: PathBuf,
    /// What each matching file held when last looked at (absent: not there).
    known: HashMap<String, String>,
    /// Paths touched since they were last looked at (a directory stands for what is in it).
    touched: BTreeSet<String>,
    last_touch: Option<Instant>,
    /// Changes seen and not yet answered: what the path held before them and holds now.
    pending: BTreeMap<String, (Option<String>, Option<String>)>,
    /// When the first of the pending changes was seen, in ms since the epoch.
    pub(super) first_seen_ms: Option<i64>,
    retry_at: Option<Instant>,
}

impl FilesWatch {
    /// Looks at every matching file of the workspace `root` (file IO: not on an async worker).
    pub(super) fn new(root: &Path, trigger: FilesTrigger) -> Result<FilesWatch, String> {
        let matcher = trigger.matcher()?;
        let mut bases: Vec<String> = trigger.paths.iter().map(|p| literal_base(p)).collect();
        bases.sort();
        bases.dedup();
        let mut watch = FilesWatch {
            trigger,
            matcher,
            bases,
            root: root.to_path_buf(),
            known: HashMap::new(),
            touched: BTreeSet::new(),
            last_touch: None,
            pending: BTreeMap::new(),
            first_seen_ms: None,
            retry_at: None,
        };
        let mut seen = Vec::new();
        for base in &watch.bases {
            // A base inside another is walked with it.
            if (watch.bases.iter()).any(|other| other != base && is_within(base, other)) {
                continue;
            }
            seen.extend(watch.walk(&root.join(base)));
        }
        for (rel, _) in seen {
            if let Some(state) = state_of(&root.join(&rel)) {
                watch.known.insert(rel, state);
            }
        }
        Ok(watch)
    }

    /// Notes that `rel` (workspace-relative) may have changed.
    /// The directories to watch for this trigger: each base that is there, recursively, or
    /// the workspace when one is not there yet (it may be created).
    pub(super) fn watched_dirs(&self) -> Vec<PathBuf> {
        self.bases
            .iter()
            .map(|base| self.root.join(base))
            .map(|dir| if dir.is_dir() { dir } else { self.root.clone() })
            .collect()
    }

    pub(super) fn touch(&mut self, rel: &str, now: Instant, now_ms: i64) {
        if rel.split('/').any(|part| NEVER_WATCHED.contains(&part)) {
            return;
        }
        // A directory may hold matching files when it is on the way to a base or inside one
        // (a directory created with files in it, or moved in, is one event).
        let relevant = self.matcher.is_match(rel)
            || self.known.keys().any(|known| is_under(known, rel))
            || ((self.bases.iter()).any(|base| is_within(rel, base) || is_within(base, rel))
                && self.root.join(rel).is_dir());
        if relevant {
            self.touched.insert(rel.to_string());
            self.last_touch = Some(now);
            self.first_seen_ms.get_or_insert(now_ms);
        }
    }

    /// Events may have been lost: every known and matching file is looked at again.
    pub(super) fn touch_everything(&mut self, now: Instant, now_ms: i64) {
        self.touched.insert(String::new());
        self.last_touch = Some(now);
        self.first_seen_ms.get_or_insert(now_ms);
    }

    /// Whether it is time to look: the touched paths have been quiet for the debounce, or
    /// changes put off are due again.
    pub(super) fn due(&self, now: Instant) -> bool {
        let quiet = self
            .last_touch
            .is_some_and(|at| now.duration_since(at) >= self.trigger.debounce);
        let retry = self.retry_at.is_some_and(|at| now >= at) && !self.pending.is_empty();
        (quiet && !self.touched.is_empty()) || retry
    }

    /// Looks at the touched paths (file IO) and returns the changes not yet answered, in path
    /// order, of the kinds the trigger answers.
    pub(super) fn settle(&mut self) -> Vec<Change> {
        let touched = std::mem::take(&mut self.touched);
        self.last_touch = None;
        self.retry_at = None;
        let mut paths: BTreeSet<String> = BTreeSet::new();
        for rel in &touched {
            let full = if rel.is_empty() {
                self.root.clone()
            } else {
                self.root.join(rel)
            };
            if full.is_dir() {
                paths.extend(self.walk(&full).into_iter().map(|(path, _)| path));
            } else if self.matcher.is_match(rel) {
                paths.insert(rel.clone());
            }
            // What was known under it and may be gone.
            paths.extend(
                (self.known.keys())
                    .filter(|known| rel.is_empty() || is_under(known, rel))
                    .cloned(),
            );
        }
        for rel in paths {
            let now = state_of(&self.root.join(&rel));
            let before = match &now {
                Some(state) => self.known.insert(rel.clone(), state.clone()),
                None => self.known.remove(&rel),
            };
            if before == now {
                continue;
            }
            let entry = self.pending.entry(rel).or_insert((before, None));
            entry.1 = now;
        }
        self.pending.retain(|_, (before, now)| before != now);
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
                self.trigger.events.contains(&event).then(|| Change {
                    path: path.clone(),
                    event,
                    now: now.clone(),
                })
            })
            .collect()
    }

    /// The changes wait: a run in the workspace is still changing files.
    pub(super) fn put_off(&mut self, now: Instant) {
        self.retry_at = Some(now + RETRY_AFTER);
    }

    /// The pending changes are answered (a run started, or they were a run's own).
    pub(super) fn answered(&mut self) {
        self.pending.clear();
        self.first_seen_ms = None;
        self.retry_at = None;
    }

    /// The matching files under `dir`, workspace-relative, never into the directories that
    /// are never watched, never through a link, at most [`MAX_WALKED`] entries.
    fn walk(&self, dir: &Path) -> Vec<(String, PathBuf)> {
        let walker = ignore::WalkBuilder::new(dir)
            .standard_filters(false)
            .follow_links(false)
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
            .filter_map(|entry| {
                let rel = relative(&self.root, entry.path())?;
                self.matcher
                    .is_match(&rel)
                    .then(|| (rel, entry.path().to_path_buf()))
            })
            .collect()
    }
}

/// `path` relative to `root` with `/` between names; `None` outside it or not UTF-8.
pub(super) fn relative(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    Some(parts?.join("/"))
}

fn is_under(path: &str, dir: &str) -> bool {
    path.strip_prefix(dir)
        .is_some_and(|rest| rest.starts_with('/'))
}

/// `path` is `dir` or under it (`` is the workspace: everything is within it).
fn is_within(path: &str, dir: &str) -> bool {
    dir.is_empty() || path == dir || is_under(path, dir)
}

/// A pattern's leading directories with no glob character in them.
fn literal_base(pattern: &str) -> String {
    let parts: Vec<&str> = pattern.split('/').collect();
    let literal: Vec<&str> = parts[..parts.len().saturating_sub(1)]
        .iter()
        .take_while(|part| !part.contains(['*', '?', '[', ']', '{', '}', '\\']))
        .copied()
        .collect();
    literal.join("/")
}

/// What a path holds: the content hash of a plain file, the target of a link, the kind of
/// anything else; `None` when nothing is there.
fn state_of(path: &Path) -> Option<String> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(path).ok()?;
        return Some(format!("link:{}", target.display()));
    }
    if !meta.is_file() {
        return Some(if meta.is_dir() { "dir" } else { "special" }.to_string());
    }
    if meta.len() > MAX_HASHED_BYTES {
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        return Some(format!("size:{}:modified:{modified}", meta.len()));
    }
    let Some(file) = crate::lock::open_path_to_read(path) else {
        // There a moment ago, and now not a plain file (or gone): looked at again next time.
        return Some("unreadable".to_string());
    };
    let mut hasher = ContentHasher::default();
    let mut buffer = vec![0_u8; 64 * 1024];
    let mut limited = file.take(MAX_HASHED_BYTES);
    loop {
        match limited.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buffer[..n]),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Some("unreadable".to_string()),
        }
    }
    Some(hasher.finish())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn trigger(paths: &[&str], events: &[FileEvent]) -> FilesTrigger {
        FilesTrigger {
            paths: paths.iter().map(|p| p.to_string()).collect(),
            events: events.iter().copied().collect(),
            debounce: Duration::ZERO,
            include_own: false,
        }
    }

    #[test]
    fn changes_are_told_by_content_and_merged_until_answered() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("src")).unwrap();
        std::fs::write(root.join("src/a.rs"), "a").unwrap();
        let all = [FileEvent::Create, FileEvent::Modify, FileEvent::Delete];
        let mut watch = FilesWatch::new(root, trigger(&["src/**/*.rs"], &all)).unwrap();
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
    }

    #[test]
    fn a_pattern_is_looked_for_under_its_literal_directories_only() {
        assert_eq!(literal_base("src/gen/**/*.rs"), "src/gen");
        assert_eq!(literal_base("src/*.rs"), "src");
        assert_eq!(literal_base("**/*.md"), "");
        assert_eq!(literal_base("Cargo.toml"), "");
        assert_eq!(literal_base("a/{b,c}/d.txt"), "a");
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("target/deep")).unwrap();
        std::fs::create_dir_all(root.join("src")).unwrap();
        let all = [FileEvent::Create, FileEvent::Modify, FileEvent::Delete];
        let mut watch = FilesWatch::new(root, trigger(&["src/**"], &all)).unwrap();
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
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("gone.txt"), "x").unwrap();
        let mut watch = FilesWatch::new(root, trigger(&["*.txt"], &[FileEvent::Delete])).unwrap();
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
}
