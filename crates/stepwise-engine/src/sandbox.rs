//! The workspace sandbox: the one directory operations may read, write and run commands in.
//!
//! Paths are checked twice. `stepwise_core::paths` refuses `..` and absolute paths without
//! touching the disk; [`Workspace::resolve`] then follows every symlink on the way and refuses
//! a path that a link carries outside the root. The check gives a clear message, but it is
//! only a snapshot: a link could be swapped in right after it. So executors also do their IO
//! through [`Workspace::dir`], a `cap-std` handle whose lookups cannot leave the root at all.

use std::io;
use std::path::{Component, Path, PathBuf};

use stepwise_core::operation::{OperationError, OperationErrorKind};
use stepwise_core::paths::{PathError, normalize_workspace_path};
use thiserror::Error;

/// How many symlinks one resolution may follow, as Linux does (`MAXSYMLINKS`), so that a link
/// cycle ends in an error instead of a hang.
const MAX_SYMLINK_FOLLOWS: u32 = 40;

/// An opened workspace directory.
#[derive(Debug)]
pub struct Workspace {
    root: PathBuf,
    dir: cap_std::fs::Dir,
}

/// Why a path cannot be used inside the workspace.
#[derive(Debug, Error)]
pub enum SandboxError {
    /// A path is not one a workspace may hold (`..`, absolute).
    #[error(transparent)]
    Path(#[from] PathError),
    /// A path leads out of the workspace through a symbolic link.
    #[error("path `{path}` leads outside the workspace through a symlink to `{}`", target.display())]
    Escape {
        /// The path, in the workspace.
        path: String,
        /// Where the link leads.
        target: PathBuf,
    },
    /// The workspace is not a directory.
    #[error("`{}` is not a directory", .0.display())]
    NotADirectory(PathBuf),
    /// A file or directory of the workspace could not be reached.
    #[error("could not access `{path}`: {source}")]
    Io {
        /// The path.
        path: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl From<SandboxError> for OperationError {
    fn from(err: SandboxError) -> Self {
        let kind = match err {
            SandboxError::Io { .. } => OperationErrorKind::Io,
            SandboxError::Path(_)
            | SandboxError::Escape { .. }
            | SandboxError::NotADirectory(_) => OperationErrorKind::Sandbox,
        };
        OperationError::new(kind, err.to_string())
    }
}

impl Workspace {
    /// Opens an existing directory as a workspace (error if missing or not a dir).
    pub fn open(root: &Path) -> Result<Workspace, SandboxError> {
        let io_err = |source| SandboxError::Io {
            path: root.display().to_string(),
            source,
        };
        // Canonical so that `resolve` can compare link targets with a plain prefix check.
        let root = std::fs::canonicalize(root).map_err(io_err)?;
        let meta = std::fs::metadata(&root).map_err(io_err)?;
        if !meta.is_dir() {
            return Err(SandboxError::NotADirectory(root));
        }
        let dir = cap_std::fs::Dir::open_ambient_dir(&root, cap_std::ambient_authority())
            .map_err(io_err)?;
        Ok(Workspace { root, dir })
    }

    /// The workspace root as a canonical absolute path.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A capability handle on the root: IO through it cannot leave the workspace, whatever
    /// symlinks appear later.
    pub fn dir(&self) -> &cap_std::fs::Dir {
        &self.dir
    }

    /// Resolves a workspace-relative path to an absolute path inside the root, following the
    /// symlinks of every existing component.
    ///
    /// Refuses with [`SandboxError::Escape`] when any component (directory or final file) is
    /// a symlink whose target lies outside the root. Components that do not exist yet are
    /// allowed, for files about to be created.
    pub fn resolve(&self, rel: &str) -> Result<PathBuf, SandboxError> {
        let rel = normalize_workspace_path(rel)?;
        let mut follows = 0;
        self.walk(self.root.clone(), Path::new(&rel), &rel, &mut follows, true)
    }

    /// Walks `rel` from `start`, replacing each symlink by its resolved target.
    ///
    /// With `check` (the top level, walking the caller's path) every link target is checked
    /// against the root. Nested walks resolve a link's own target anywhere on the disk, so that
    /// the check sees where the link finally lands rather than a hop on the way.
    fn walk(
        &self,
        start: PathBuf,
        rel: &Path,
        rel_display: &str,
        follows: &mut u32,
        check: bool,
    ) -> Result<PathBuf, SandboxError> {
        let io_err = |source| SandboxError::Io {
            path: rel_display.to_string(),
            source,
        };
        let mut current = start;
        for component in rel.components() {
            match component {
                Component::Prefix(_) | Component::RootDir => {
                    // Only link targets can be absolute; the caller's path was normalised.
                    current = PathBuf::from(component.as_os_str());
                }
                Component::CurDir => {}
                Component::ParentDir => {
                    // `current` is already free of links, so going up is purely lexical.
                    current.pop();
                }
                Component::Normal(name) => {
                    let candidate = current.join(name);
                    match std::fs::symlink_metadata(&candidate) {
                        Ok(meta) if meta.file_type().is_symlink() => {
                            *follows += 1;
                            if *follows > MAX_SYMLINK_FOLLOWS {
                                return Err(io_err(io::Error::other(
                                    "too many levels of symbolic links",
                                )));
                            }
                            let link = std::fs::read_link(&candidate).map_err(io_err)?;
                            // A relative target is relative to the directory holding the link.
                            let target =
                                self.walk(current.clone(), &link, rel_display, follows, false)?;
                            if check && !target.starts_with(&self.root) {
                                return Err(SandboxError::Escape {
                                    path: rel_display.to_string(),
                                    target,
                                });
                            }
                            current = target;
                        }
                        Ok(_) => current = candidate,
                        // The rest of the path is about to be created; nothing to follow.
                        Err(e) if e.kind() == io::ErrorKind::NotFound => current = candidate,
                        Err(e) => return Err(io_err(e)),
                    }
                }
            }
        }
        Ok(current)
    }

    /// The resolved path of `rel` relative to the root, free of symlinks (as of the check).
    ///
    /// Executors do their `cap-std` IO on this rather than on the caller's path: `cap-std`
    /// refuses every absolute link even when it points back inside, and writing through the
    /// resolved path keeps an inside link in place instead of replacing it with a file.
    pub(crate) fn resolve_relative(&self, rel: &str) -> Result<PathBuf, SandboxError> {
        let resolved = self.resolve(rel)?;
        match resolved.strip_prefix(&self.root) {
            Ok(inner) if inner.as_os_str().is_empty() => Ok(PathBuf::from(".")),
            Ok(inner) => Ok(inner.to_path_buf()),
            // `resolve` only returns paths under the root; keep the refusal anyway.
            Err(_) => Err(SandboxError::Escape {
                path: rel.to_string(),
                target: resolved,
            }),
        }
    }
}

/// A workspace in a fresh temp directory, for tests (the directory goes with the guard).
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn temp_workspace() -> (tempfile::TempDir, Workspace) {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::open(dir.path()).unwrap();
    (dir, ws)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn setup() -> (tempfile::TempDir, tempfile::TempDir, Workspace) {
        let ws_dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.txt"), "secret").unwrap();
        let ws = Workspace::open(ws_dir.path()).unwrap();
        (ws_dir, outside, ws)
    }

    #[test]
    fn open_refuses_missing_and_non_directories() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Workspace::open(&dir.path().join("missing")),
            Err(SandboxError::Io { .. })
        ));
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        assert!(matches!(
            Workspace::open(&file),
            Err(SandboxError::NotADirectory(_))
        ));
    }

    #[test]
    fn resolves_plain_and_new_paths_under_the_root() {
        let (_d, _o, ws) = setup();
        std::fs::create_dir(ws.root().join("src")).unwrap();
        assert_eq!(ws.resolve("src").unwrap(), ws.root().join("src"));
        assert_eq!(
            ws.resolve("./src//new/a.py").unwrap(),
            ws.root().join("src/new/a.py")
        );
        assert_eq!(ws.resolve(".").unwrap(), ws.root());
    }

    #[test]
    fn refuses_parent_dir_and_absolute_paths() {
        let (_d, _o, ws) = setup();
        assert!(matches!(
            ws.resolve("../x"),
            Err(SandboxError::Path(PathError::ParentDir(_)))
        ));
        assert!(matches!(
            ws.resolve("/etc/passwd"),
            Err(SandboxError::Path(PathError::Absolute(_)))
        ));
        let err = OperationError::from(ws.resolve("a/../../x").unwrap_err());
        assert_eq!(err.kind, OperationErrorKind::Sandbox);
    }

    #[test]
    fn refuses_a_symlinked_file_pointing_outside() {
        let (_d, outside, ws) = setup();
        symlink(
            outside.path().join("secret.txt"),
            ws.root().join("link.txt"),
        )
        .unwrap();
        let err = ws.resolve("link.txt").unwrap_err();
        let target = std::fs::canonicalize(outside.path().join("secret.txt")).unwrap();
        match &err {
            SandboxError::Escape { path, target: t } => {
                assert_eq!(path, "link.txt");
                assert_eq!(t, &target);
            }
            other => panic!("expected an escape, got {other:?}"),
        }
        assert_eq!(
            err.to_string(),
            format!(
                "path `link.txt` leads outside the workspace through a symlink to `{}`",
                target.display()
            )
        );
    }

    #[test]
    fn refuses_a_dangling_symlink_pointing_outside() {
        let (_d, outside, ws) = setup();
        symlink(
            outside.path().join("not-yet.txt"),
            ws.root().join("new.txt"),
        )
        .unwrap();
        assert!(matches!(
            ws.resolve("new.txt"),
            Err(SandboxError::Escape { .. })
        ));
    }

    #[test]
    fn refuses_a_symlinked_directory_pointing_outside_and_paths_through_it() {
        let (_d, outside, ws) = setup();
        symlink(outside.path(), ws.root().join("out")).unwrap();
        assert!(matches!(
            ws.resolve("out"),
            Err(SandboxError::Escape { .. })
        ));
        assert!(matches!(
            ws.resolve("out/secret.txt"),
            Err(SandboxError::Escape { .. })
        ));
        assert!(matches!(
            ws.resolve("out/new/file"),
            Err(SandboxError::Escape { .. })
        ));
    }

    #[test]
    fn refuses_a_relative_symlink_climbing_out() {
        let (_d, _o, ws) = setup();
        std::fs::create_dir(ws.root().join("sub")).unwrap();
        symlink("../..", ws.root().join("sub/up")).unwrap();
        assert!(matches!(
            ws.resolve("sub/up/x"),
            Err(SandboxError::Escape { .. })
        ));
    }

    #[test]
    fn follows_symlinks_that_stay_inside() {
        let (_d, _o, ws) = setup();
        std::fs::create_dir_all(ws.root().join("real/dir")).unwrap();
        std::fs::write(ws.root().join("real/dir/f.txt"), "x").unwrap();
        symlink("real/dir", ws.root().join("alias")).unwrap();
        symlink(ws.root().join("real/dir/f.txt"), ws.root().join("abs-link")).unwrap();
        symlink("../../real", ws.root().join("real/dir/back")).unwrap();
        assert_eq!(
            ws.resolve("alias/f.txt").unwrap(),
            ws.root().join("real/dir/f.txt")
        );
        assert_eq!(
            ws.resolve("abs-link").unwrap(),
            ws.root().join("real/dir/f.txt")
        );
        assert_eq!(
            ws.resolve("alias/back/dir").unwrap(),
            ws.root().join("real/dir")
        );
        assert_eq!(
            ws.resolve_relative("alias/f.txt").unwrap(),
            PathBuf::from("real/dir/f.txt")
        );
    }

    #[test]
    fn a_symlink_cycle_is_an_error_not_a_hang() {
        let (_d, _o, ws) = setup();
        symlink("b", ws.root().join("a")).unwrap();
        symlink("a", ws.root().join("b")).unwrap();
        assert!(matches!(ws.resolve("a/x"), Err(SandboxError::Io { .. })));
    }
}
