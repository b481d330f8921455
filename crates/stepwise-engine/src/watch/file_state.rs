//! What a watched path holds, as a file trigger tells one version from another: the content
//! hash of a plain file (a very large one by size and time), the target of a link, the kind of
//! anything else; and when that version appeared (its modification time), which every watcher
//! reads alike and which tells two saves of the same content apart. A file is read only when
//! it is plain and inside the workspace, never through a link.

use std::io::Read;
use std::path::{Path, PathBuf};

use stepwise_core::hash::ContentHasher;

/// Files larger than this are known by size and modification time, not read.
pub(super) const MAX_HASHED_BYTES: u64 = 64 * 1024 * 1024;

/// One version of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FileState {
    /// What it holds: `sha256:…`, `size:N`, `link:TARGET`, `dir`, `special`, `unreadable`.
    pub(super) content: String,
    /// Its modification time, in nanoseconds since the epoch.
    pub(super) modified_ns: u128,
}

impl FileState {
    /// The same content, whenever written.
    pub(super) fn same_content(&self, other: &FileState) -> bool {
        self.content == other.content
    }
}

/// What `rel` (workspace-relative) under `root` holds; `None` when nothing is there, or when
/// it is not inside the workspace (a directory on its way is a link).
pub(super) fn state_of(root: &Path, rel: &str) -> Option<FileState> {
    let path = root.join(rel);
    let meta = std::fs::symlink_metadata(&path).ok()?;
    // A link among its directories would lead out of the workspace.
    let parent = path.parent().map(std::fs::canonicalize)?.ok()?;
    if !parent.starts_with(root) {
        return None;
    }
    let modified_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let content = if meta.file_type().is_symlink() {
        let target = std::fs::read_link(&path).ok()?;
        format!("link:{}", target.display())
    } else if meta.is_dir() {
        "dir".to_string()
    } else if !meta.is_file() {
        "special".to_string()
    } else if meta.len() > MAX_HASHED_BYTES {
        format!("size:{}", meta.len())
    } else {
        hash_of(&path)
    };
    Some(FileState {
        content,
        modified_ns,
    })
}

fn hash_of(path: &Path) -> String {
    let Some(file) = crate::lock::open_path_to_read(path) else {
        // There a moment ago, and now not a plain file (or gone): looked at again next time.
        return "unreadable".to_string();
    };
    let mut hasher = ContentHasher::default();
    let mut buffer = vec![0_u8; 64 * 1024];
    let mut limited = file.take(MAX_HASHED_BYTES);
    loop {
        match limited.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buffer[..n]),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return "unreadable".to_string(),
        }
    }
    hasher.finish()
}

/// `path` relative to `root` with `/` between names; `None` outside it or not UTF-8.
pub(super) fn relative(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    Some(parts?.join("/"))
}

/// `path` is under `dir` (strictly).
pub(super) fn is_under(path: &str, dir: &str) -> bool {
    path.strip_prefix(dir)
        .is_some_and(|rest| rest.starts_with('/'))
        || (dir.is_empty() && !path.is_empty())
}

/// `path` is `dir` or under it (`` is the workspace: everything is within it).
pub(super) fn is_within(path: &str, dir: &str) -> bool {
    dir.is_empty() || path == dir || is_under(path, dir)
}

/// Where a pattern's files can be: its leading directories with no glob character, and
/// whether below them too (`src/gen` and yes for `src/gen/**/*.rs`; `` and no for
/// `Cargo.toml`, a file of the workspace itself).
pub(super) fn base_of(pattern: &str) -> (String, bool) {
    let parts: Vec<&str> = pattern.split('/').collect();
    let is_glob = |part: &&str| part.contains(['*', '?', '[', ']', '{', '}', '\\']);
    let dirs = &parts[..parts.len().saturating_sub(1)];
    let literal: Vec<&str> = dirs
        .iter()
        .take_while(|part| !is_glob(part))
        .copied()
        .collect();
    // Only the last part has glob characters: its files are in that one directory.
    let recursive =
        literal.len() < dirs.len() || parts.last().is_some_and(|last| last.contains("**"));
    (literal.join("/"), recursive)
}

/// The directory to watch for a base: the base when it is there, else the workspace
/// (recursively: the base may be created).
pub(super) fn watched_dir(root: &Path, (base, recursive): &(String, bool)) -> (PathBuf, bool) {
    let dir = root.join(base);
    match std::fs::symlink_metadata(&dir) {
        Ok(meta) if meta.is_dir() => (dir, *recursive),
        _ => (root.to_path_buf(), true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_is_looked_for_under_its_literal_directories() {
        assert_eq!(base_of("src/gen/**/*.rs"), ("src/gen".into(), true));
        assert_eq!(base_of("src/*.rs"), ("src".into(), false));
        assert_eq!(base_of("**/*.md"), ("".into(), true));
        assert_eq!(base_of("Cargo.toml"), ("".into(), false));
        assert_eq!(base_of("docs/README.md"), ("docs".into(), false));
        assert_eq!(base_of("a/{b,c}/d.txt"), ("a".into(), true));
        assert_eq!(base_of("src/**"), ("src".into(), true));
        assert!(is_under("src/a", "src") && is_under("a", "") && !is_under("srcx", "src"));
    }

    #[test]
    fn a_file_behind_a_linked_directory_is_not_read() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        let outside = tempfile::tempdir().expect("another");
        std::fs::write(outside.path().join("secret"), "s").expect("write");
        std::os::unix::fs::symlink(outside.path(), root.join("linked")).expect("link");
        assert_eq!(state_of(&root, "linked/secret"), None);
        std::fs::write(root.join("plain"), "p").expect("write");
        assert!(state_of(&root, "plain").is_some_and(|s| s.content.starts_with("sha256:")));
    }
}
