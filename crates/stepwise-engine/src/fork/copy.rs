//! A fork into another directory: the directory receives the parent's workspace as it was
//! when the step started — the files its checkpoints look at as they are now, with every
//! change the run made since put back from the kept contents — and its `.stepwise` policy and
//! settings files.

use std::fs;
use std::io;
use std::path::Path;

use stepwise_core::checkpoint::CheckpointSpec;

use crate::checkpoint::checkpointed_paths;
use crate::error::EngineError;
use crate::sandbox::Workspace;

/// The workspace's own files a fork into another directory takes along.
const SETTINGS_FILES: [&str; 2] = [".stepwise/policy.yaml", ".stepwise/settings.yaml"];

/// Copies `from`'s files into `to` (which must not exist, or be empty), then puts each of
/// `then` (a path and what it held then; `None`: it did not exist) as it was. Returns how many
/// files `to` holds.
pub(super) fn copy_checkpoint(
    from: &Workspace,
    to: &Path,
    spec: &CheckpointSpec,
    then: &[(String, Option<Vec<u8>>)],
) -> Result<usize, EngineError> {
    let refuse = |message: String| Err(EngineError::Fork(message));
    match fs::read_dir(to) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return refuse(format!(
                    "{} is not empty: a fork goes into a new or empty directory",
                    to.display()
                ));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return refuse(format!("{} cannot be read: {e}", to.display())),
    }
    let failed = |what: &str, path: &str, e: io::Error| {
        EngineError::Fork(format!("{what} `{path}` in {}: {e}", to.display()))
    };
    fs::create_dir_all(to).map_err(|e| failed("making", "", e))?;
    let mut paths = checkpointed_paths(from, spec).map_err(EngineError::Fork)?;
    paths.extend(
        SETTINGS_FILES
            .iter()
            .filter(|p| from.dir().is_file(p))
            .map(|p| p.to_string()),
    );
    let mut copied = 0;
    for rel in &paths {
        if then.iter().any(|(path, _)| path == rel) {
            continue;
        }
        // Through the workspace's handle: a link swapped in cannot lead the copy outside it.
        let mut source = match from.dir().open(rel) {
            Ok(file) => file,
            // Gone since it was listed, or not readable: not part of the copy.
            Err(_) => continue,
        };
        let target = to.join(rel);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|e| failed("making the folder of", rel, e))?;
        }
        let mut out = fs::File::create(&target).map_err(|e| failed("writing", rel, e))?;
        io::copy(&mut source, &mut out).map_err(|e| failed("copying", rel, e))?;
        copied += 1;
    }
    for (rel, content) in then {
        // A file that did not exist then is simply not copied.
        let Some(bytes) = content else { continue };
        let target = to.join(rel);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|e| failed("making the folder of", rel, e))?;
        }
        fs::write(&target, bytes).map_err(|e| failed("writing", rel, e))?;
        copied += 1;
    }
    Ok(copied)
}
