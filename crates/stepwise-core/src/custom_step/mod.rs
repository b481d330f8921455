//! Step types added without rebuilding: a manifest (`.stepwise/steps/NAME.yaml` in a
//! workspace, or `stepwise/steps/` in the user's config dir) declares a step type whose work
//! is done by an executable speaking JSON. A workflow uses it as `type: NAME` with `with:`
//! inputs; each use is one command operation, under the same policy and approvals as a
//! `run_command` step (`protocol` says what the executable is given and must answer).
//!
//! The manifests a run uses are recorded in its `RunStarted` (text and hash), so that resume
//! and replay use the definitions the run saw.

mod manifest;
mod protocol;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use manifest::{
    Approval, BUILTIN_TYPE_NAMES, DEFAULT_TIMEOUT_MS, MAX_MANIFEST_BYTES, ManifestDef,
    StepManifest, manifest_json_schema, parse_manifest,
};
pub use protocol::{
    REPLY_MAX_BYTES, STDIN_MAX_BYTES, input_errors, literal_input_errors, reply_output,
    stdin_request,
};

/// A manifest as a run records it: where it was read, its text and its hash.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedStepType {
    /// The manifest file (absolute).
    pub path: String,
    /// `sha256:` of its text.
    pub hash: String,
    pub source: String,
}

/// The custom step types a workflow may use, by name: a workspace's and a user's manifests,
/// or those a run recorded. Manifests that could not be read are kept with why, so that a
/// workflow using one is told what is wrong with it.
#[derive(Debug, Clone, Default)]
pub struct StepTypes {
    by_name: BTreeMap<String, Result<Arc<StepManifest>, String>>,
}

impl StepTypes {
    /// No custom step types.
    pub fn none() -> StepTypes {
        StepTypes::default()
    }

    /// Adds a manifest; one already there by the same name is kept (the first place searched
    /// wins: the workspace's before the user's).
    pub fn add(&mut self, name: String, manifest: Result<Arc<StepManifest>, String>) {
        self.by_name.entry(name).or_insert(manifest);
    }

    /// Makes `name` unusable for `why`, whatever was added for it.
    pub fn refuse(&mut self, name: String, why: String) {
        self.by_name.insert(name, Err(why));
    }

    /// The manifest of `name`: `None` when there is none, `Some(Err)` when it cannot be used.
    pub fn get(&self, name: &str) -> Option<Result<&Arc<StepManifest>, &str>> {
        self.by_name
            .get(name)
            .map(|m| m.as_ref().map_err(String::as_str))
    }

    /// Every step type, by name, with its manifest or why it cannot be used.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Result<&Arc<StepManifest>, &str>)> {
        self.by_name
            .iter()
            .map(|(name, m)| (name.as_str(), m.as_ref().map_err(String::as_str)))
    }

    /// The step types a run recorded, read again as they were (with today's checks of a
    /// manifest: one that no longer passes them makes the steps using it unloadable, named
    /// with why).
    pub fn from_recorded(recorded: &[RecordedStepType]) -> StepTypes {
        let mut types = StepTypes::none();
        for entry in recorded {
            match parse_manifest(&entry.path, &entry.source) {
                Ok(manifest) => types.add(manifest.name.clone(), Ok(Arc::new(manifest))),
                Err(error) => {
                    let name = manifest::name_from_path(&entry.path);
                    types.add(name, Err(error.to_string()));
                }
            }
        }
        types
    }
}
