//! Reading a workflow file from disk: bounded in size, UTF-8, and every failure a
//! [`ValidationError`] that names the file (there is no line to point at).

use std::path::Path;
use std::sync::Arc;

use stepwise_core::custom_step::StepTypes;
use stepwise_core::workflow::{ValidationError, Workflow, WorkflowErrors, parse_workflow_with};

use crate::config_file::{Links, Unreadable, read_text};
use crate::error::EngineError;

/// The largest workflow file Stepwise reads. Real workflows are a few KiB; this only keeps a
/// mistaken path (a log, a disk image) from being read into memory.
pub const MAX_WORKFLOW_BYTES: u64 = 16 * 1024 * 1024;

/// Reads and checks a workflow file, its custom steps from `step_types`: the compiled
/// workflow and its source. A file that cannot be read is a validation error like any other
/// (the caller named a file that is not a workflow).
pub(crate) fn load(
    path: &Path,
    step_types: &StepTypes,
) -> Result<(Arc<Workflow>, String), EngineError> {
    let label = path.display().to_string();
    let source = read(path).map_err(|error| EngineError::Workflow(WorkflowErrors(vec![error])))?;
    let workflow =
        parse_workflow_with(&label, &source, step_types).map_err(EngineError::Workflow)?;
    Ok((Arc::new(workflow), source))
}

/// Reads a workflow file as a run would start it in `workspace`: its custom step types from
/// the workspace's and the user's manifests, and the workflow files its `workflow` steps run
/// (found beside it, or in the workspace's `workflows/`), every problem of each.
pub(crate) fn load_in(
    path: &Path,
    workspace: Option<&Path>,
) -> Result<crate::start::ReadWorkflow, EngineError> {
    let step_types = crate::step_types::load_step_types(workspace);
    let (workflow, source) = load(path, &step_types)?;
    let gathered = crate::subrun::gather(&workflow, path, workspace, &step_types)
        .map_err(|errors| EngineError::Workflow(WorkflowErrors(errors)))?;
    Ok((workflow, source, gathered))
}

/// Checks a workflow file as a run would start it in `workspace` (as `load_in` reads it):
/// every problem of the file, and of the files it runs.
pub fn check(path: &Path, workspace: Option<&Path>) -> Result<Arc<Workflow>, Vec<ValidationError>> {
    match load_in(path, workspace) {
        Ok((workflow, _, _)) => Ok(workflow),
        Err(EngineError::Workflow(errors)) => Err(errors.0),
        Err(other) => Err(vec![ValidationError {
            file: path.display().to_string(),
            line: 0,
            column: 0,
            step: None,
            message: other.to_string(),
        }]),
    }
}

/// The text of a workflow file, or why it cannot be one.
pub fn read(path: &Path) -> Result<String, ValidationError> {
    let problem = |message: String| ValidationError {
        file: path.display().to_string(),
        line: 0,
        column: 0,
        step: None,
        message,
    };
    match read_text(path, MAX_WORKFLOW_BYTES, Links::Follow) {
        Ok(text) => Ok(text),
        Err(Unreadable::Directory) => Err(problem("is a directory, not a workflow file".into())),
        Err(Unreadable::TooLarge { .. }) => Err(problem(format!(
            "is larger than {} MiB, the most a workflow file may be",
            MAX_WORKFLOW_BYTES / (1024 * 1024)
        ))),
        Err(Unreadable::Missing) => {
            Err(problem("cannot be read: No such file or directory".into()))
        }
        Err(other) => Err(problem(other.to_string())),
    }
}

/// The workflow files of a folder (`.yaml` and `.yml`), in name order; none when it cannot be
/// read.
pub fn workflow_files(folder: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut files: Vec<std::path::PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}
