//! The workspace's `.gitignore` files, as listings and checkpoints honour them. `ignore`'s own
//! reading of ignore files is not used: it would open them following links and read them whole
//! (a `.ignore` linked to `/dev/zero` would never end), and look above the workspace. Here a
//! `.gitignore` is read only as a regular file, never through a link, at most 64 KiB, within
//! the workspace.

use std::collections::HashMap;
use std::io::Read as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};

/// The longest `.gitignore` read; a longer one is read this far.
const MAX_GITIGNORE_BYTES: u64 = 64 * 1024;

/// The `.gitignore` of each workspace directory, read once.
pub(crate) struct Ignores {
    root: PathBuf,
    read: Mutex<HashMap<PathBuf, Option<Arc<Gitignore>>>>,
}

impl Ignores {
    pub(crate) fn new(root: PathBuf) -> Ignores {
        Ignores {
            root,
            read: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a `.gitignore` of the workspace ignores `path`: the deepest one that says
    /// anything of it decides (a `!pattern` there keeps it).
    pub(crate) fn ignored(&self, path: &Path, is_dir: bool) -> bool {
        let Some(parent) = path.parent() else {
            return false;
        };
        for dir in parent.ancestors() {
            if !dir.starts_with(&self.root) {
                break;
            }
            if let Some(gitignore) = self.of(dir) {
                match gitignore.matched(path, is_dir) {
                    Match::Ignore(_) => return true,
                    Match::Whitelist(_) => return false,
                    Match::None => {}
                }
            }
        }
        false
    }

    fn of(&self, dir: &Path) -> Option<Arc<Gitignore>> {
        let mut read = self.read.lock().unwrap_or_else(PoisonError::into_inner);
        read.entry(dir.to_path_buf())
            .or_insert_with(|| load(dir).map(Arc::new))
            .clone()
    }
}

/// `dir/.gitignore`, when it is a regular file (a link is not followed), its first 64 KiB.
pub(crate) fn load(dir: &Path) -> Option<Gitignore> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(dir.join(".gitignore"))
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut bytes = Vec::new();
    (&mut file)
        .take(MAX_GITIGNORE_BYTES)
        .read_to_end(&mut bytes)
        .ok()?;
    // A byte that is not UTF-8 spoils its line only, not the whole file (which would let
    // `target/` or `node_modules/` in); a file cut at the ceiling loses its last, partial line.
    if bytes.len() as u64 == MAX_GITIGNORE_BYTES
        && let Some(end) = bytes.iter().rposition(|&b| b == b'\n')
    {
        bytes.truncate(end);
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut builder = GitignoreBuilder::new(dir);
    for line in text.lines() {
        let _ = builder.add_line(None, line);
    }
    builder.build().ok()
}
