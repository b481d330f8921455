//! Rules as written (a policy file's or a workflow's `rules`), checked and turned into the
//! `RuleSpec`s a `Policy` is compiled from, each named by where it was written.

use thiserror::Error;

use super::{CompiledRule, Effect, GateKind, RuleSpec};
use crate::workflow::def::{PolicyDef, RuleDef};

/// A rule that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PolicyError {
    #[error("{origin}: a rule needs exactly one of `allow`, `ask` or `deny`")]
    EffectCount { origin: String },
    #[error(
        "{origin}: unknown operation `{kind}`; use edit_file, run_command, read_file, agent_command, mcp_call or *"
    )]
    UnknownKind { origin: String, kind: String },
    #[error("{origin}: invalid pattern `{pattern}`: {message}")]
    Pattern {
        origin: String,
        pattern: String,
        message: String,
    },
    #[error(
        "{origin}: a workflow can only tighten policy; `allow` rules belong in .stepwise/policy.yaml"
    )]
    WorkflowAllow { origin: String },
    #[error("{origin}: `unchecked_shell` belongs on an `allow` rule for run_command (or *)")]
    UncheckedShell { origin: String },
    #[error(
        "{origin}: an `allow: agent_command` rule must name the commands it allows (`command:`): an agent's model chooses what it runs"
    )]
    AgentCommandUnnamed { origin: String },
    #[error(
        "{origin}: `tool:` (globs over MCP tools, `SERVER.tool`) and `arguments:` belong on an mcp_call rule, and `path:` does not"
    )]
    ToolField { origin: String },
}

/// Turns written rules into recorded ones. `origin` names the file, e.g. `workspace policy
/// .stepwise/policy.yaml`. With `tighten_only`, `allow` rules are refused (workflows).
pub fn rules_from_def(
    def: &PolicyDef,
    origin: &str,
    tighten_only: bool,
) -> Result<Vec<RuleSpec>, PolicyError> {
    def.rules
        .iter()
        .enumerate()
        .map(|(i, rule)| rule_from_def(rule, &format!("{origin}, rule {}", i + 1), tighten_only))
        .collect()
}

fn rule_from_def(
    rule: &RuleDef,
    source: &str,
    tighten_only: bool,
) -> Result<RuleSpec, PolicyError> {
    let chosen: Vec<(Effect, &String)> = [
        (Effect::Allow, rule.allow.as_ref()),
        (Effect::Ask, rule.ask.as_ref()),
        (Effect::Deny, rule.deny.as_ref()),
    ]
    .into_iter()
    .filter_map(|(effect, kind)| kind.map(|k| (effect, k)))
    .collect();
    let [(effect, kind)] = chosen.as_slice() else {
        return Err(PolicyError::EffectCount {
            origin: source.to_string(),
        });
    };
    if tighten_only && *effect == Effect::Allow {
        return Err(PolicyError::WorkflowAllow {
            origin: source.to_string(),
        });
    }
    let kind = match kind.as_str() {
        "*" => None,
        "read_file" => Some(GateKind::ReadFile),
        "edit_file" => Some(GateKind::EditFile),
        "run_command" => Some(GateKind::RunCommand),
        "agent_command" => Some(GateKind::AgentCommand),
        "mcp_call" => Some(GateKind::McpCall),
        other => {
            return Err(PolicyError::UnknownKind {
                origin: source.to_string(),
                kind: other.to_string(),
            });
        }
    };
    if rule.unchecked_shell
        && (*effect != Effect::Allow || kind.is_some_and(|k| k != GateKind::RunCommand))
    {
        return Err(PolicyError::UncheckedShell {
            origin: source.to_string(),
        });
    }
    if *effect == Effect::Allow
        && kind == Some(GateKind::AgentCommand)
        && rule.command.as_ref().is_none_or(|c| c.to_vec().is_empty())
    {
        return Err(PolicyError::AgentCommandUnnamed {
            origin: source.to_string(),
        });
    }
    // An MCP rule's globs are over tool names, kept where a file rule keeps its paths.
    let is_mcp = kind == Some(GateKind::McpCall);
    let misplaced = if is_mcp {
        rule.path.is_some()
    } else {
        rule.tool.is_some() || rule.arguments.is_some()
    };
    if misplaced {
        return Err(PolicyError::ToolField {
            origin: source.to_string(),
        });
    }
    let globs = if is_mcp { &rule.tool } else { &rule.path };
    let spec = RuleSpec {
        unchecked_shell: rule.unchecked_shell,
        effect: *effect,
        kind,
        paths: globs.as_ref().map(|p| p.to_vec()).unwrap_or_default(),
        commands: rule
            .command
            .as_ref()
            .map(|c| c.to_vec())
            .unwrap_or_default(),
        env: rule.env.as_ref().map(|e| e.to_vec()).unwrap_or_default(),
        pass_env: rule
            .pass_env
            .as_ref()
            .map(|e| e.to_vec())
            .unwrap_or_default(),
        arguments: rule.arguments.clone().unwrap_or_default(),
        source: source.to_string(),
    };
    CompiledRule::compile(&spec)?;
    Ok(spec)
}
