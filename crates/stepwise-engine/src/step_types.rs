//! Finding the custom step types a workflow may use: the manifests in a workspace's
//! `.stepwise/steps/` and in the user's `<config dir>/stepwise/steps/` (the workspace's win
//! a name both have). Each is read bounded in size; one that cannot be read or checked is
//! kept with why, so that a workflow using it says so, and `stepwise steps` lists it.

use std::collections::BTreeSet;
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
        // A workspace's own files are read only as plain files in real directories: a project
        // cannot point a manifest, or its steps directory, at files elsewhere.
        let dir = workspace.join(WORKSPACE_STEPS_DIR);
        let linked = [workspace.join(".stepwise"), dir.clone()]
            .iter()
            .any(|d| std::fs::symlink_metadata(d).is_ok_and(|m| m.file_type().is_symlink()));
        let refused = linked.then(|| {
            format!(
                "{} (or the .stepwise it is in) is a symbolic link; a workspace's step manifests must be in a real directory",
                dir.display()
            )
        });
        read_dir(&dir, Links::Refuse, refused.as_deref(), &mut types);
    }
    if let Some(dir) = user_steps_dir() {
        read_dir(&dir, Links::Follow, None, &mut types);
    }
    types
}

/// Reads the manifests of `dir` into `types`; with `refused`, only their names, each refused
/// for that reason.
fn read_dir(dir: &Path, links: Links, refused: Option<&str>, types: &mut StepTypes) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    // Bounded while listing: a directory of a million files is not collected whole.
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
        .take(MAX_MANIFESTS * 4)
        .collect();
    files.sort();
    let mut seen = BTreeSet::new();
    for (i, path) in files.into_iter().enumerate() {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !seen.insert(name.clone()) {
            types.refuse(
                name.clone(),
                format!(
                    "{} declares `{name}` twice (as .yaml and .yml); keep one",
                    dir.display()
                ),
            );
            continue;
        }
        if let Some(why) = refused {
            types.add(name, Err(why.to_string()));
            continue;
        }
        if i >= MAX_MANIFESTS {
            types.add(
                name,
                Err(format!(
                    "not read: {} holds more than {MAX_MANIFESTS} manifests",
                    dir.display()
                )),
            );
            continue;
        }
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
