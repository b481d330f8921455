//! A fork into another directory: the directory receives the parent's workspace as it was
//! when the step started — the files its checkpoints look at as they are now, with every
//! change the run made since put back from the kept contents — and its `.stepwise` policy and
//! settings files. Every path is checked as a workspace path, and every write goes through a
//! handle on the new directory, so nothing recorded can lead a write outside it.

use std::fs;
use std::io;
use std::path::Path;

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use stepwise_core::checkpoint::CheckpointSpec;
use stepwise_core::paths::normalize_workspace_path;

use crate::checkpoint::checkpointed_paths;
use crate::error::EngineError;
use crate::sandbox::Workspace;

/// The workspace's own files a fork into another directory takes along.
const SETTINGS_FILES: [&str; 2] = [".stepwise/policy.yaml", ".stepwise/settings.yaml"];

/// A directory a fork may copy into: new, or empty, and not inside the workspace copied
/// (whose later checkpoints would see the copy).
pub(super) fn check_target(from: &Workspace, to: &Path) -> Result<(), EngineError> {
    let refuse = |message: String| Err(EngineError::Fork(message));
    let resolved = to
        .ancestors()
        .find_map(|dir| dir.canonicalize().ok().map(|real| (dir, real)));
    if let Some((dir, real)) = resolved {
        let inside = to.strip_prefix(dir).map(|rest| real.join(rest));
        if inside.is_ok_and(|path| path.starts_with(from.root())) {
            return refuse(format!(
                "{} is inside the run's workspace: fork into a directory outside it",
                to.display()
            ));
        }
    }
    match fs::read_dir(to).map(|mut entries| entries.next().is_some()) {
        Ok(true) => refuse(format!(
            "{} is not empty: a fork goes into a new or empty directory",
            to.display()
        )),
        Ok(false) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => refuse(format!("{} cannot be read: {e}", to.display())),
    }
}

/// Copies `from`'s files into `to` (checked with [`check_target`]), then puts each of `then`
/// (a path and what it held then; `None`: it did not exist) as it was. On failure what was
/// copied is removed again. Returns how many files `to` holds.
pub(super) fn copy_checkpoint(
    from: &Workspace,
    to: &Path,
    spec: &CheckpointSpec,
    then: &[(String, Option<Vec<u8>>)],
) -> Result<usize, EngineError> {
    check_target(from, to)?;
    let existed = to.exists();
    let copied = copy_into(from, to, spec, then);
    if copied.is_err() {
        // Only what this copy made: the directory was new, or empty.
        let _ = fs::remove_dir_all(to);
        if existed {
            let _ = fs::create_dir(to);
        }
    }
    copied
}

fn copy_into(
    from: &Workspace,
    to: &Path,
    spec: &CheckpointSpec,
    then: &[(String, Option<Vec<u8>>)],
) -> Result<usize, EngineError> {
    let failed = |what: &str, path: &str, e: io::Error| {
        EngineError::Fork(format!("{what} `{path}` in {}: {e}", to.display()))
    };
    fs::create_dir_all(to).map_err(|e| failed("making", "", e))?;
    let target =
        Dir::open_ambient_dir(to, ambient_authority()).map_err(|e| failed("opening", "", e))?;
    let mut paths = checkpointed_paths(from, spec).map_err(EngineError::Fork)?;
    paths.extend(
        SETTINGS_FILES
            .iter()
            .filter(|p| from.dir().is_file(p))
            .map(|p| p.to_string()),
    );
    let mut copied = 0;
    for rel in &paths {
        let rel = checked(rel)?;
        if then.iter().any(|(path, _)| *path == rel) {
            continue;
        }
        // Through the workspace's handle: a link swapped in cannot lead the copy outside it.
        let Ok(mut source) = from.dir().open(&rel) else {
            // Gone since it was listed, or not readable: not part of the copy.
            continue;
        };
        make_parent(&target, &rel).map_err(|e| failed("making the folder of", &rel, e))?;
        let mut out = target
            .create(&rel)
            .map_err(|e| failed("writing", &rel, e))?;
        io::copy(&mut source, &mut out).map_err(|e| failed("copying", &rel, e))?;
        // A script stays executable in the copy.
        if let Ok(meta) = source.metadata() {
            out.set_permissions(meta.permissions())
                .map_err(|e| failed("setting the mode of", &rel, e))?;
        }
        copied += 1;
    }
    for (rel, content) in then {
        let rel = checked(rel)?;
        // A file that did not exist then is simply not copied.
        let Some(bytes) = content else { continue };
        make_parent(&target, &rel).map_err(|e| failed("making the folder of", &rel, e))?;
        target
            .write(&rel, bytes)
            .map_err(|e| failed("writing", &rel, e))?;
        copied += 1;
    }
    Ok(copied)
}

/// A recorded path as a workspace path (relative, no `..`), or why not.
fn checked(rel: &str) -> Result<String, EngineError> {
    normalize_workspace_path(rel)
        .map_err(|e| EngineError::Fork(format!("`{rel}` is not a workspace path: {e}")))
}

fn make_parent(dir: &Dir, rel: &str) -> io::Result<()> {
    match Path::new(rel).parent() {
        Some(parent) if !parent.as_os_str().is_empty() => dir.create_dir_all(parent),
        _ => Ok(()),
    }
}
