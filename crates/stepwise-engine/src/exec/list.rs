//! Listing a workspace directory's files, as `.gitignore` files leave them: hidden files and the
//! workspace's `.stepwise/` left out, links not followed, bounded in the files kept and the
//! entries looked at. The walk is `ignore`'s (ripgrep's walker) with its own ignore files off:
//! it would open them following links and read them whole (a `.ignore` linked to `/dev/zero`
//! would never end), and look above the workspace. `.gitignore` files are read here instead:
//! regular files only, never through a link, at most 64 KiB, within the workspace.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use globset::GlobBuilder;
use stepwise_core::operation::{OperationError, OperationErrorKind, OperationResult};

use super::gitignore::Ignores;
use crate::sandbox::Workspace;

/// The most files one listing keeps (it says when there were more).
pub const MAX_LISTED: usize = 1_000;
/// The most entries one listing looks at, kept, hidden or ignored: a huge tree stops the walk
/// there.
const MAX_VISITED: usize = 100_000;
/// The deepest a listing goes below its directory.
const MAX_DEPTH: usize = 32;

/// The files under `path` (a workspace directory), workspace-relative with `/`, sorted; with
/// `glob`, those whose workspace-relative path matches it (`*` within one directory).
pub fn list_files(
    ws: &Workspace,
    path: &str,
    glob: Option<&str>,
) -> Result<OperationResult, OperationError> {
    let mut paths = Vec::new();
    let mut truncated = false;
    let cut = walk_files(ws, path, glob, |shown, _| {
        if paths.len() == MAX_LISTED {
            truncated = true;
            return false;
        }
        paths.push(shown.to_string());
        true
    })?;
    paths.sort();
    Ok(OperationResult::FilesListed {
        paths,
        truncated: truncated || cut,
    })
}

/// Walks the files under `path` (a workspace directory) as a listing sees them, giving each
/// to `visit` as its workspace-relative path (with `/`) and its path on disk, until `visit`
/// says to stop. Whether the walk was cut short by its own ceilings.
pub(super) fn walk_files(
    ws: &Workspace,
    path: &str,
    glob: Option<&str>,
    mut visit: impl FnMut(&str, &Path) -> bool,
) -> Result<bool, OperationError> {
    let rel = ws.resolve_relative(path).map_err(OperationError::from)?;
    let dir = ws.root().join(&rel);
    match std::fs::symlink_metadata(&dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(OperationError::new(
                OperationErrorKind::NotFound,
                format!("`{path}` is not a directory"),
            ));
        }
        Err(_) => {
            return Err(OperationError::new(
                OperationErrorKind::NotFound,
                format!("there is no directory `{path}`"),
            ));
        }
    }
    let matcher = match glob {
        Some(glob) => Some(
            GlobBuilder::new(glob)
                .literal_separator(true)
                .build()
                .map_err(|e| {
                    OperationError::new(OperationErrorKind::Io, format!("glob `{glob}`: {e}"))
                })?
                .compile_matcher(),
        ),
        None => None,
    };
    let root = ws.root().to_path_buf();
    let ignores = Arc::new(Ignores::new(root.clone()));
    let visited = Arc::new(AtomicUsize::new(0));
    let cut = Arc::new(AtomicBool::new(false));
    let (seen, stop) = (Arc::clone(&visited), Arc::clone(&cut));
    let walker = ignore::WalkBuilder::new(&dir)
        .standard_filters(false)
        .hidden(true)
        .follow_links(false)
        .max_depth(Some(MAX_DEPTH))
        .filter_entry(move |entry| {
            if seen.fetch_add(1, Ordering::Relaxed) >= MAX_VISITED {
                stop.store(true, Ordering::Relaxed);
                return false;
            }
            let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
            !ignores.ignored(entry.path(), is_dir)
        })
        .build();
    for entry in walker {
        let Ok(entry) = entry else { continue };
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let Ok(inside) = entry.path().strip_prefix(&root) else {
            continue;
        };
        let shown = inside.to_string_lossy().replace('\\', "/");
        if stepwise_core::paths::is_in_policy_dir(&shown) {
            continue;
        }
        if matcher.as_ref().is_some_and(|m| !m.is_match(&shown)) {
            continue;
        }
        if !visit(&shown, inside) {
            break;
        }
    }
    Ok(cut.load(Ordering::Relaxed))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sandbox::temp_workspace;

    fn listed(ws: &Workspace, path: &str, glob: Option<&str>) -> Vec<String> {
        match list_files(ws, path, glob).unwrap() {
            OperationResult::FilesListed { paths, .. } => paths,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn files_are_listed_as_gitignore_leaves_them_and_never_outside() {
        let (dir, ws) = temp_workspace();
        let root = dir.path();
        for file in [
            "src/a.py",
            "src/b.txt",
            "target/out.bin",
            ".hidden",
            ".stepwise/policy.yaml",
        ] {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "x").unwrap();
        }
        std::fs::write(root.join(".gitignore"), "target/\n").unwrap();
        assert_eq!(listed(&ws, ".", None), ["src/a.py", "src/b.txt"]);
        assert_eq!(listed(&ws, "src", Some("**/*.py")), ["src/a.py"]);
        // `*` stays within a directory.
        assert!(listed(&ws, ".", Some("*.py")).is_empty());
        // A deeper .gitignore decides for its directory; one that is a link is not read.
        std::fs::write(root.join("src/.gitignore"), "*.txt\n").unwrap();
        assert_eq!(listed(&ws, "src", None), ["src/a.py"]);
        std::fs::remove_file(root.join("src/.gitignore")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", root.join("src/.gitignore")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", root.join("src/.ignore")).unwrap();
        assert_eq!(listed(&ws, "src", None), ["src/a.py", "src/b.txt"]);
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("link")).unwrap();
        assert_eq!(
            list_files(&ws, "link", None).unwrap_err().kind,
            OperationErrorKind::Sandbox
        );
        // A link inside a listed directory is not followed.
        assert!(!listed(&ws, ".", None).iter().any(|p| p.contains("secret")));
        assert_eq!(
            list_files(&ws, "src/a.py", None).unwrap_err().kind,
            OperationErrorKind::NotFound
        );
    }

    #[test]
    fn a_listing_keeps_at_most_its_ceiling_and_says_so() {
        let (dir, ws) = temp_workspace();
        for n in 0..MAX_LISTED + 5 {
            std::fs::write(dir.path().join(format!("f{n:05}")), "").unwrap();
        }
        match list_files(&ws, ".", None).unwrap() {
            OperationResult::FilesListed { paths, truncated } => {
                assert_eq!(paths.len(), MAX_LISTED);
                assert!(truncated);
            }
            other => panic!("{other:?}"),
        }
    }
}
