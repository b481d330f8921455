//! Reading policy files: the user's (in the config directory, for every workspace) and the
//! workspace's own (`.stepwise/policy.yaml`).

use std::path::{Path, PathBuf};

use stepwise_core::policy::{RuleSpec, rules_from_def};
use stepwise_core::workflow::def::PolicyDef;

use crate::config_file::{Links, Unreadable, read_text};
use crate::error::EngineError;

/// Where a workspace keeps its policy.
pub(crate) const WORKSPACE_POLICY: &str = ".stepwise/policy.yaml";

/// The user's policy file, and whether it was named explicitly (then it must exist; only the
/// default location may be absent).
#[derive(Debug, Clone)]
pub(crate) struct UserPolicy {
    pub(crate) path: PathBuf,
    pub(crate) named: bool,
}

/// The rules in force for a workspace: the user's first, then the workspace's. A missing file
/// has no rules (unless it was named explicitly); a broken one is an error, never silently
/// ignored.
pub(crate) fn load_policy(
    user_policy: Option<&UserPolicy>,
    workspace: &Path,
) -> Result<Vec<RuleSpec>, EngineError> {
    let mut rules = Vec::new();
    if let Some(user) = user_policy {
        rules.extend(read_rules(
            &user.path,
            "user policy",
            user.named,
            Links::Follow,
        )?);
    }
    rules.extend(read_rules(
        &workspace.join(WORKSPACE_POLICY),
        "workspace policy",
        false,
        Links::Refuse,
    )?);
    Ok(rules)
}

/// The most a policy file may be: real ones are a few KiB.
const MAX_POLICY_BYTES: u64 = 1024 * 1024;

fn read_rules(
    path: &Path,
    origin: &str,
    must_exist: bool,
    links: Links,
) -> Result<Vec<RuleSpec>, EngineError> {
    let policy_error = |message: String| EngineError::Policy {
        path: PathBuf::from(path),
        message,
    };
    let text = match read_text(path, MAX_POLICY_BYTES, links) {
        Ok(text) => text,
        Err(Unreadable::Missing) if !must_exist => return Ok(Vec::new()),
        Err(Unreadable::Missing) => {
            return Err(policy_error(
                "does not exist; a policy file that is named explicitly must exist, so that a mistyped name cannot silently drop its rules".into(),
            ));
        }
        Err(problem) => return Err(policy_error(problem.to_string())),
    };
    let def: PolicyDef =
        stepwise_core::yaml::from_str(&text).map_err(|e| policy_error(e.to_string()))?;
    rules_from_def(&def, &format!("{origin} {}", path.display()), false)
        .map_err(|e| policy_error(e.to_string()))
}
