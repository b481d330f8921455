//! Which workflow a request names, and in which workspace: a file (relative to the workspace)
//! or YAML sent inline, which is kept under its content's hash so that the run, like every
//! run, names the file it was started from.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use utoipa::ToSchema;

use super::ApiState;
use crate::error::ApiError;

/// A workflow: exactly one of `path` and `yaml`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSource {
    /// A workflow file; relative to the workspace.
    pub path: Option<String>,
    /// A workflow's YAML itself.
    pub yaml: Option<String>,
    /// The workspace directory (default: the server's); relative to the server's.
    pub workspace: Option<String>,
}

/// The workflow file and the workspace a request names.
pub(crate) struct Named {
    pub(crate) file: PathBuf,
    pub(crate) workspace: PathBuf,
    /// The YAML was sent inline (errors name it so, not by the file it is kept in).
    pub(crate) inline: bool,
    /// The file is only for a check: it goes when this does.
    temporary: bool,
}

impl Drop for Named {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_file(&self.file);
        }
    }
}

/// What becomes of YAML sent inline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Inline {
    /// Kept (a run names its file for ever).
    Keep,
    /// Only checked: written for the check, removed after.
    Check,
}

pub(crate) fn resolve(
    state: &ApiState,
    source: &WorkflowSource,
    inline: Inline,
) -> Result<Named, ApiError> {
    let workspace = match source.workspace.as_deref().map(str::trim) {
        None | Some("") => state.workspace.clone(),
        Some(given) => state.workspace.join(given),
    };
    if !workspace.is_dir() {
        return Err(ApiError::invalid(format!(
            "workspace `{}` is not a directory",
            workspace.display()
        )));
    }
    match (&source.path, &source.yaml) {
        (Some(path), None) if !path.trim().is_empty() => Ok(Named {
            file: workspace.join(path),
            workspace,
            inline: false,
            temporary: false,
        }),
        (None, Some(yaml)) => Ok(Named {
            file: write_inline(&state.inline_dir, yaml, inline)?,
            workspace,
            inline: true,
            temporary: inline == Inline::Check,
        }),
        (Some(_), Some(_)) => Err(ApiError::invalid(
            "give the workflow as `path` or as `yaml`, not both",
        )),
        _ => Err(ApiError::invalid(
            "name the workflow: `path` (a file in the workspace) or `yaml` (its text)",
        )),
    }
}

/// The file an inline workflow is in: kept as `<sha256>.yaml` in `dir`, written once, whole,
/// never through a link; or, only to be checked, a file of its own for this request.
fn write_inline(dir: &Path, yaml: &str, inline: Inline) -> Result<PathBuf, ApiError> {
    let stored = |e: std::io::Error| {
        ApiError::internal(format!(
            "keeping the inline workflow in {}: {e}",
            dir.display()
        ))
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(stored)?;
    let hash = stepwise_core::hash::content_hash(yaml.as_bytes());
    let digits = hash.rsplit(':').next().unwrap_or(&hash);
    let file = match inline {
        Inline::Keep => dir.join(format!("{digits}.yaml")),
        Inline::Check => dir.join(format!(".check-{}.yaml", uuid::Uuid::new_v4().simple())),
    };
    if file.symlink_metadata().is_ok_and(|m| m.is_file()) {
        return Ok(file);
    }
    let temporary = dir.join(format!(".{digits}-{}", uuid::Uuid::new_v4().simple()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&temporary)
        .and_then(|mut f| f.write_all(yaml.as_bytes()).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&temporary, &file));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written.map_err(stored)?;
    Ok(file)
}
