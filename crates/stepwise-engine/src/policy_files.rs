//! Reading policy files: the user's (in the config directory, for every workspace) and the
//! workspace's own (`.stepwise/policy.yaml`).

use std::path::{Path, PathBuf};

use stepwise_core::policy::{RuleSpec, rules_from_def};
use stepwise_core::workflow::def::PolicyDef;

use crate::error::EngineError;

/// Where a workspace keeps its policy.
pub const WORKSPACE_POLICY: &str = ".stepwise/policy.yaml";

/// The rules in force for a workspace: the user's first, then the workspace's. A missing file
/// has no rules; a broken one is an error, never silently ignored.
pub fn load_policy(
    user_policy: Option<&Path>,
    workspace: &Path,
) -> Result<Vec<RuleSpec>, EngineError> {
    let mut rules = Vec::new();
    if let Some(path) = user_policy {
        rules.extend(read_rules(path, "user policy")?);
    }
    rules.extend(read_rules(
        &workspace.join(WORKSPACE_POLICY),
        "workspace policy",
    )?);
    Ok(rules)
}

fn read_rules(path: &Path, origin: &str) -> Result<Vec<RuleSpec>, EngineError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(EngineError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let policy_error = |message: String| EngineError::Policy {
        path: PathBuf::from(path),
        message,
    };
    let def: PolicyDef =
        serde_saphyr::from_str_with_options(&text, stepwise_core::workflow::yaml_options())
            .map_err(|e| policy_error(e.without_snippet().to_string()))?;
    rules_from_def(&def, &format!("{origin} {}", path.display()), false)
        .map_err(|e| policy_error(e.to_string()))
}
