//! Reading policy files: the user's (in the config directory, for every workspace) and the
//! workspace's own (`.stepwise/policy.yaml`). Besides `rules`, a policy file may say which
//! files workspace checkpoints leave out (`checkpoint: {ignore: [globs], max_file_bytes: N}`):
//! there and not in a workflow, since leaving files out of checkpoints hides what is done to
//! them; and, as a workflow may, who may answer questions (`approvers`, `self_approval`).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use stepwise_core::approvers::{Approvers, ApproversDef};
use stepwise_core::checkpoint::CheckpointSpec;
use stepwise_core::policy::{RuleSpec, rules_from_def};
use stepwise_core::workflow::def::{PolicyDef, RuleDef};

use crate::config_file::{Links, Unreadable, read_text};
use crate::error::EngineError;

/// How the user's policy file is named in the rules it holds (`RuleSpec::source`).
pub(crate) const USER_POLICY_ORIGIN: &str = "user policy";

/// Where a workspace keeps its policy.
pub(crate) const WORKSPACE_POLICY: &str = ".stepwise/policy.yaml";

/// The user's policy file, and whether it was named explicitly (then it must exist; only the
/// default location may be absent).
#[derive(Debug, Clone)]
pub(crate) struct UserPolicy {
    pub(crate) path: PathBuf,
    pub(crate) named: bool,
}

/// A policy file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFileDef {
    #[serde(default)]
    rules: Vec<RuleDef>,
    #[serde(default)]
    checkpoint: Option<CheckpointDef>,
    #[serde(default)]
    approvers: Option<ApproversDef>,
    #[serde(default)]
    self_approval: Option<bool>,
}

/// A policy file's `checkpoint` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointDef {
    #[serde(default)]
    ignore: Vec<String>,
    #[serde(default)]
    max_file_bytes: Option<u64>,
}

/// What the policy files say for a workspace.
#[derive(Debug, Default)]
pub(crate) struct PolicyFiles {
    pub(crate) rules: Vec<RuleSpec>,
    pub(crate) checkpoint: CheckpointSpec,
    /// Who may answer the questions of runs in the workspace, as either file says.
    pub(crate) approvers: Approvers,
}

/// The rules in force for a workspace: the user's first, then the workspace's; and what
/// checkpoints leave out: what either file names (the workspace's `max_file_bytes` over the
/// user's). A missing file says nothing (unless it was named explicitly); a broken one is an
/// error, never silently ignored.
pub(crate) fn load_policy(
    user_policy: Option<&UserPolicy>,
    workspace: &Path,
) -> Result<PolicyFiles, EngineError> {
    let mut files = PolicyFiles::default();
    if let Some(user) = user_policy {
        read_file(
            &user.path,
            USER_POLICY_ORIGIN,
            user.named,
            Links::Follow,
            &mut files,
        )?;
    }
    read_file(
        &workspace.join(WORKSPACE_POLICY),
        "workspace policy",
        false,
        Links::Refuse,
        &mut files,
    )?;
    Ok(files)
}

/// The most `checkpoint.max_file_bytes` may say: larger files are hashed, never kept.
const MAX_CHECKPOINT_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// The most a policy file may be: real ones are a few KiB.
const MAX_POLICY_BYTES: u64 = 1024 * 1024;

fn read_file(
    path: &Path,
    origin: &str,
    must_exist: bool,
    links: Links,
    files: &mut PolicyFiles,
) -> Result<(), EngineError> {
    let policy_error = |message: String| EngineError::Policy {
        path: PathBuf::from(path),
        message,
    };
    let text = match read_text(path, MAX_POLICY_BYTES, links) {
        Ok(text) => text,
        Err(Unreadable::Missing) if !must_exist => return Ok(()),
        Err(Unreadable::Missing) => {
            return Err(policy_error(
                "does not exist; a policy file that is named explicitly must exist, so that a mistyped name cannot silently drop its rules".into(),
            ));
        }
        Err(problem) => return Err(policy_error(problem.to_string())),
    };
    let def: PolicyFileDef =
        stepwise_core::yaml::from_str(&text).map_err(|e| policy_error(e.to_string()))?;
    let rules = PolicyDef { rules: def.rules };
    let source = format!("{origin} {}", path.display());
    files
        .rules
        .extend(rules_from_def(&rules, &source, false).map_err(|e| policy_error(e.to_string()))?);
    let approvers = Approvers::from_def(def.approvers.as_ref(), def.self_approval, &source)
        .map_err(|e| policy_error(e.to_string()))?;
    files.approvers = files.approvers.and(&approvers);
    if let Some(checkpoint) = def.checkpoint {
        crate::checkpoint::ignore_set(&checkpoint.ignore).map_err(policy_error)?;
        files.checkpoint.ignore.extend(checkpoint.ignore);
        // Either file may lower the ceiling, neither raise it past the other's or the most a
        // blob may be (a workspace's policy comes with a clone of it).
        if let Some(max) = checkpoint.max_file_bytes {
            files.checkpoint.max_file_bytes = files
                .checkpoint
                .max_file_bytes
                .min(max)
                .min(MAX_CHECKPOINT_FILE_BYTES);
        }
    }
    Ok(())
}
