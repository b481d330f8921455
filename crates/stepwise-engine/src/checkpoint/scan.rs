//! One look at a workspace's files: walk them (as `.gitignore` files and the checkpoint's
//! `ignore` globs leave them; never `.git/` or `.stepwise/`, never through a link), `lstat`
//! each, and hash only those whose size, times or inode moved since they were last hashed, as
//! git's index does. A file modified too close to when it was hashed is hashed again, since a
//! change within the file system's timestamp resolution would not show in its times.

use std::collections::HashMap;
use std::io::Read as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use cap_std::fs::OpenOptionsExt as _;
use globset::GlobSet;
use ignore::gitignore::Gitignore;
use stepwise_core::checkpoint::{FileVersion, Snapshot};
use stepwise_core::hash::ContentHasher;

use crate::exec::gitignore;
use crate::sandbox::Workspace;

/// The most files a checkpoint looks at; a workspace with more is refused, so that a checkpoint
/// never claims to know what it did not see.
pub(crate) const MAX_FILES: usize = 200_000;
/// The deepest a checkpoint goes.
const MAX_DEPTH: usize = 64;
/// A file modified within this long before it was hashed is hashed again next time.
const RACY_NS: i128 = 100_000_000;
/// The same, on a file system that keeps whole seconds only (FAT, exFAT, some network mounts).
const COARSE_RACY_NS: i128 = 2_000_000_000;

/// How close to its hashing a modification must be to distrust the file's times.
fn racy_window(mtime_ns: i128) -> i128 {
    if mtime_ns % 1_000_000_000 == 0 {
        COARSE_RACY_NS
    } else {
        RACY_NS
    }
}

/// A file that is there but cannot be read: named by what its stat says, never stored.
fn unreadable(stat: &Stat) -> FileVersion {
    FileVersion {
        hash: format!("unreadable:{}:{}", stat.size, stat.mtime_ns),
        size: stat.size,
        stored: false,
    }
}

/// What was known of a file when it was last hashed.
#[derive(Debug, Clone)]
pub(crate) struct Known {
    stat: Stat,
    /// When it was hashed (ns since the epoch).
    hashed_at_ns: i128,
    version: FileVersion,
}

/// The parts of `lstat` that move when a file's content does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
    dev: u64,
}

impl Stat {
    fn of(meta: &std::fs::Metadata) -> Stat {
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Stat {
            size: meta.len(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
            ino: meta.ino(),
            dev: meta.dev(),
        }
    }
}

/// The files found, and what is now known of them.
pub(crate) struct Scanned {
    pub(crate) snapshot: Snapshot,
    pub(crate) known: HashMap<String, Known>,
}

/// Looks at the workspace's files, reusing what `known` says of those whose stat did not move.
/// The content of each file read (and so hashed) this time, if at most the ceiling, goes to
/// `read` with its hash, as it is read.
pub(crate) fn scan(
    ws: &Workspace,
    ignore: &GlobSet,
    max_file_bytes: u64,
    known: &HashMap<String, Known>,
    read: &mut dyn FnMut(String, Vec<u8>) -> Result<(), String>,
) -> Result<Scanned, String> {
    let started_ns = now_ns();
    let (found, unseen) = walk(ws, ignore)?;
    let mut snapshot = Snapshot::new();
    let mut now_known = HashMap::with_capacity(found.len());
    // What is under a directory that could not be read (or lies too deep) was not seen: what
    // was known of it stands, rather than read as deleted.
    for (rel, was) in known {
        if unseen.iter().any(|dir| rel.starts_with(dir.as_str())) {
            snapshot.insert(rel.clone(), was.version.clone());
            now_known.insert(rel.clone(), was.clone());
        }
    }
    for (rel, stat) in found {
        if let Some(was) = known.get(&rel)
            && was.stat == stat
            && stat.mtime_ns < was.hashed_at_ns - racy_window(stat.mtime_ns)
            // Not kept under a smaller ceiling than this one's.
            && (was.version.stored || stat.size > max_file_bytes)
        {
            snapshot.insert(rel.clone(), was.version.clone());
            now_known.insert(rel, was.clone());
            continue;
        }
        let (version, content) = match hash_file(ws, &rel, max_file_bytes) {
            Ok(hashed) => hashed,
            // Gone since the walk saw it: not part of this checkpoint.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            // There, but not readable (another user's, say): recorded as such, not as deleted.
            Err(_) => (unreadable(&stat), None),
        };
        if let Some(content) = content {
            read(version.hash.clone(), content)?;
        }
        snapshot.insert(rel.clone(), version.clone());
        now_known.insert(
            rel,
            Known {
                stat,
                hashed_at_ns: started_ns,
                version,
            },
        );
    }
    Ok(Scanned {
        snapshot,
        known: now_known,
    })
}

/// A directory to read: where, as a workspace-relative prefix (`""` or `dir/`), its depth and
/// the `.gitignore` files above it, nearest last.
type Dir = (PathBuf, String, usize, Arc<Vec<Arc<Gitignore>>>);

/// The files a walk found with their stat, and the directories it did not read (as prefixes).
type Walked = (Vec<(String, Stat)>, Vec<String>);

/// Directories waiting to be read, and how many walkers are reading one.
struct Queue {
    dirs: Vec<Dir>,
    busy: usize,
    /// Directories not read (unreadable, or too deep), as workspace-relative prefixes (`d/`).
    unseen: Vec<String>,
}

/// Walks the workspace's regular files: each as its workspace-relative path with `/` and its
/// `lstat`. Directories are read one by one (by up to two walkers side by side: most of the
/// time is the file system's), each `.gitignore` once, where it is (see `exec::gitignore`);
/// links are never followed.
fn walk(ws: &Workspace, ignore: &GlobSet) -> Result<Walked, String> {
    let queue = Mutex::new(Queue {
        dirs: vec![(
            ws.root().to_path_buf(),
            String::new(),
            0,
            Arc::new(Vec::new()),
        )],
        busy: 0,
        unseen: Vec::new(),
    });
    let more = Condvar::new();
    let count = AtomicUsize::new(0);
    // This thread walks; a second walker starts once two directories wait (a small workspace
    // is not worth a thread). A walker that stopped would leave its files out, and they would
    // read as deleted: that is an error.
    let found = std::thread::scope(|scope| -> Result<Vec<(String, Stat)>, String> {
        let mut helper = None;
        let mut found = Vec::new();
        walker(&queue, &more, &count, ignore, &mut found, &mut || {
            if helper.is_none() {
                helper = Some(scope.spawn(|| {
                    let mut found = Vec::new();
                    walker(&queue, &more, &count, ignore, &mut found, &mut || {});
                    found
                }));
            }
        });
        if let Some(helper) = helper {
            found.extend(
                helper
                    .join()
                    .map_err(|_| "a walker of the workspace stopped".to_string())?,
            );
        }
        Ok(found)
    })?;
    if count.load(Ordering::Relaxed) > MAX_FILES {
        return Err(format!(
            "the workspace has more than {MAX_FILES} files that checkpoints look at; name large folders in `checkpoint.ignore` of the policy file (or in a .gitignore)"
        ));
    }
    let unseen = std::mem::take(&mut queue.lock().unwrap_or_else(PoisonError::into_inner).unseen);
    Ok((found, unseen))
}

/// One walker: takes directories from the queue until none is left and none is being read;
/// calls `want_help` when two or more wait.
fn walker(
    queue: &Mutex<Queue>,
    more: &Condvar,
    count: &AtomicUsize,
    ignore: &GlobSet,
    found: &mut Vec<(String, Stat)>,
    want_help: &mut dyn FnMut(),
) {
    loop {
        let dir = {
            let mut q = queue.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                if count.load(Ordering::Relaxed) > MAX_FILES {
                    q.dirs.clear();
                }
                if let Some(dir) = q.dirs.pop() {
                    q.busy += 1;
                    break Some(dir);
                }
                if q.busy == 0 {
                    break None;
                }
                q = more.wait(q).unwrap_or_else(PoisonError::into_inner);
            }
        };
        let Some(dir) = dir else {
            more.notify_all();
            return;
        };
        let (subdirs, unseen) = read_dir(dir, ignore, count, found);
        let waiting = {
            let mut q = queue.lock().unwrap_or_else(PoisonError::into_inner);
            q.dirs.extend(subdirs);
            q.unseen.extend(unseen);
            q.busy -= 1;
            q.dirs.len()
        };
        more.notify_all();
        if waiting >= 2 {
            want_help();
        }
    }
}

/// Reads one directory: its files go to `found`; its directories are returned, and those not
/// to be read (too deep, or this one if it cannot be read) as unseen prefixes.
fn read_dir(
    (dir, prefix, depth, above): Dir,
    ignore: &GlobSet,
    count: &AtomicUsize,
    found: &mut Vec<(String, Stat)>,
) -> (Vec<Dir>, Vec<String>) {
    let mut subdirs = Vec::new();
    let mut unseen = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        // Gone since its parent was read: nothing under it is there.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (subdirs, unseen),
        // There, but not ours to read: what was known under it stands.
        Err(_) => {
            unseen.push(prefix);
            return (subdirs, unseen);
        }
    };
    let gitignores = match gitignore::load(&dir) {
        Some(here) => {
            let mut all = Vec::clone(&above);
            all.push(Arc::new(here));
            Arc::new(all)
        }
        None => above,
    };
    for entry in entries {
        let Ok(entry) = entry else { continue };
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let (is_dir, is_file) = (kind.is_dir(), kind.is_file());
        if !is_dir && !is_file {
            continue;
        }
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            // A name that is not UTF-8 cannot be recorded as such: left out.
            continue;
        };
        // A repository's own store, at any depth (a nested clone's too), and the workspace's
        // `.stepwise/`.
        if is_dir && (name == ".git" || (depth == 0 && name == ".stepwise")) {
            continue;
        }
        let rel = format!("{prefix}{name}");
        if !ignore.is_empty()
            && (ignore.is_match(&rel) || (is_dir && ignore.is_match(format!("{rel}/"))))
        {
            continue;
        }
        let path = entry.path();
        let ignored = gitignores
            .iter()
            .rev()
            .map(|g| g.matched(&path, is_dir))
            .find(|m| !m.is_none());
        if ignored.is_some_and(|m| m.is_ignore()) {
            continue;
        }
        if is_dir {
            if depth < MAX_DEPTH {
                subdirs.push((path, format!("{rel}/"), depth + 1, Arc::clone(&gitignores)));
            } else {
                unseen.push(format!("{rel}/"));
            }
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if count.fetch_add(1, Ordering::Relaxed) >= MAX_FILES {
            break;
        }
        found.push((rel, Stat::of(&meta)));
    }
    (subdirs, unseen)
}

/// A file's version, and its content when it is at most `max_file_bytes` (it is then stored).
/// One open, then questions to the opened file: non-blocking and not through a link, so that a
/// FIFO or a link swapped in since the walk (by a command running beside) is refused, never
/// waited on or followed.
pub(super) fn hash_file(
    ws: &Workspace,
    rel: &str,
    max_file_bytes: u64,
) -> std::io::Result<(FileVersion, Option<Vec<u8>>)> {
    let mut options = cap_std::fs::OpenOptions::new();
    options
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW);
    let mut file = ws.dir().open_with(rel, &options)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let size = meta.len();
    if size <= max_file_bytes {
        let mut content = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        // Read at most one byte past the ceiling: a file that grew meanwhile is not read whole.
        (&mut file)
            .take(max_file_bytes.saturating_add(1))
            .read_to_end(&mut content)?;
        if content.len() as u64 <= max_file_bytes {
            let version = FileVersion {
                hash: stepwise_core::hash::content_hash(&content),
                size: content.len() as u64,
                stored: true,
            };
            return Ok((version, Some(content)));
        }
        let mut hasher = ContentHasher::default();
        hasher.update(&content);
        let version = hash_rest(&mut file, hasher, content.len() as u64)?;
        return Ok((version, None));
    }
    hash_rest(&mut file, ContentHasher::default(), 0).map(|version| (version, None))
}

/// Hashes what is left of `file` after the `seen` bytes `hasher` has had: a version not
/// stored.
fn hash_rest(
    file: &mut cap_std::fs::File,
    mut hasher: ContentHasher,
    seen: u64,
) -> std::io::Result<FileVersion> {
    let mut size = seen;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        size += read as u64;
    }
    Ok(FileVersion {
        hash: hasher.finish(),
        size,
        stored: false,
    })
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}
