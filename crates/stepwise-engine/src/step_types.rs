//! Finding the custom step types a workflow may use: the manifests in a workspace's
//! `.stepwise/steps/` and in the user's `<config dir>/stepwise/steps/` (the workspace's win
//! a name both have). Each is read bounded in size; one that cannot be read or checked is
//! kept with why, so that a workflow using it says so, and `stepwise steps` lists it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use stepwise_core::custom_step::{MAX_MANIFEST_BYTES, StepTypes, parse_manifest};

use crate::config_file::{Links, read_text};

/// Where in a workspace its step manifests are.
pub const WORKSPACE_STEPS_DIR: &str = ".stepwise/steps";

/// The most manifest files read from one directory.
const MAX_MANIFESTS: usize = 256;

/// The user's step manifests' directory: `<config dir>/stepwise/steps`.
pub fn user_steps_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "stepwise").map(|dirs| dirs.config_dir().join("steps"))
}

/// The custom step types of `workspace` (when given) and of the user.
pub fn load_step_types(workspace: Option<&Path>) -> StepTypes {
    let mut types = StepTypes::none();
    if let Some(workspace) = workspace {
        // A workspace's own files are read only as plain files: a project cannot point a
        // manifest at a file elsewhere.
        read_dir(
            &workspace.join(WORKSPACE_STEPS_DIR),
            Links::Refuse,
            &mut types,
        );
    }
    if let Some(dir) = user_steps_dir() {
        read_dir(&dir, Links::Follow, &mut types);
    }
    types
}

fn read_dir(dir: &Path, links: Links, types: &mut StepTypes) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
        .collect();
    files.sort();
    for path in files.into_iter().take(MAX_MANIFESTS) {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let absolute = std::path::absolute(&path).unwrap_or(path);
        let label = absolute.display().to_string();
        let manifest = match read_text(&absolute, MAX_MANIFEST_BYTES, links) {
            Ok(source) => parse_manifest(&label, &source)
                .map(Arc::new)
                .map_err(|e| format!("{label}:{}: {}", e.line, e.message)),
            Err(problem) => Err(format!("{label} {problem}")),
        };
        types.add(name, manifest);
    }
}
