//! Turning a step's templates into the exact request or proposal it makes.

use std::collections::BTreeMap;

use similar::TextDiff;

use crate::event::Proposal;
use crate::operation::{CommandLine, CommandRequest, OperationRequest};
use crate::paths::normalize_workspace_path;
use crate::template::{Scope, Template};
use crate::workflow::{Action, CommandTemplate, EditChange, Step};

/// Renders a path template and checks it stays inside the workspace.
pub(crate) fn render_path(path: &Template, scope: &Scope) -> Result<String, String> {
    let rendered = path
        .render_string(scope)
        .map_err(|e| format!("`path`: {e}"))?;
    normalize_workspace_path(&rendered).map_err(|e| format!("`path`: {e}"))
}

/// The command a `run_command` step would run, fully rendered.
pub(crate) fn command_request(step: &Step, scope: &Scope) -> Result<CommandRequest, String> {
    let Action::RunCommand {
        command,
        cwd,
        env,
        pass_env,
        max_output_bytes,
        save_output,
    } = &step.action
    else {
        return Err("not a run_command step".into());
    };
    let command = match command {
        CommandTemplate::Argv(parts) => CommandLine::Argv(
            parts
                .iter()
                .map(|p| p.render_string(scope))
                .collect::<Result<_, _>>()
                .map_err(|e| format!("`command`: {e}"))?,
        ),
        CommandTemplate::Shell(script) => CommandLine::Shell(
            script
                .render_string(scope)
                .map_err(|e| format!("`command`: {e}"))?,
        ),
    };
    let cwd = match cwd {
        Some(c) => render_path(c, scope).map_err(|e| e.replace("`path`", "`cwd`"))?,
        None => ".".to_string(),
    };
    let mut env_values = BTreeMap::new();
    for (name, value) in env {
        let rendered = value
            .render_string(scope)
            .map_err(|e| format!("`env.{name}`: {e}"))?;
        env_values.insert(name.clone(), rendered);
    }
    Ok(CommandRequest {
        command,
        cwd,
        env: env_values,
        pass_env: pass_env.clone(),
        timeout_ms: step.timeout_ms,
        max_output_bytes: *max_output_bytes,
        save_output: *save_output,
        stdin: None,
    })
}

/// The edit an `edit_file` step proposes given the file as it is now, or `None` when the file
/// already holds the wanted content.
pub(crate) fn edit_proposal(
    step: &Step,
    scope: &Scope,
    exists: bool,
    current: &str,
    current_hash: Option<String>,
) -> Result<Option<Proposal>, String> {
    let Action::EditFile { path, change } = &step.action else {
        return Err("not an edit_file step".into());
    };
    let path = render_path(path, scope)?;
    let content = match change {
        EditChange::Content(template) => template
            .render_string(scope)
            .map_err(|e| format!("`content`: {e}"))?,
        EditChange::Replace { find, replace } => {
            if !exists {
                return Err(format!(
                    "`{path}` does not exist; `find`/`replace` needs an existing file"
                ));
            }
            let find = find
                .render_string(scope)
                .map_err(|e| format!("`find`: {e}"))?;
            let replace = replace
                .render_string(scope)
                .map_err(|e| format!("`replace`: {e}"))?;
            if find.is_empty() {
                return Err("`find` rendered to an empty string".into());
            }
            match current.matches(find.as_str()).count() {
                1 => current.replacen(find.as_str(), &replace, 1),
                0 => {
                    return Err(format!(
                        "the `find` text was not found in `{path}`; nothing was changed"
                    ));
                }
                n => {
                    return Err(format!(
                        "the `find` text occurs {n} times in `{path}`; it must occur exactly once (add surrounding lines to make it unique)"
                    ));
                }
            }
        }
    };
    if exists && content == current {
        return Ok(None);
    }
    Ok(Some(Proposal::EditFile {
        diff: unified_diff(&path, exists.then_some(current), &content),
        path,
        base_hash: current_hash,
        content,
    }))
}

/// A unified diff, `a/path` to `b/path` (`/dev/null` for a new file).
pub fn unified_diff(path: &str, before: Option<&str>, after: &str) -> String {
    let old_name = if before.is_some() {
        format!("a/{path}")
    } else {
        "/dev/null".to_string()
    };
    TextDiff::from_lines(before.unwrap_or(""), after)
        .unified_diff()
        .context_radius(3)
        .header(&old_name, &format!("b/{path}"))
        .to_string()
}

/// Builds the proposal a person edited: the same operation with new content or command,
/// checked to still be the same kind of thing at the same place.
/// `base_content` is the file as it was when the edit was proposed (`None`: it did not exist).
pub fn edited_proposal(
    original: &Proposal,
    base_content: Option<&str>,
    edited: EditedProposal,
) -> Result<Proposal, String> {
    match (original, edited) {
        (
            Proposal::EditFile {
                path, base_hash, ..
            },
            EditedProposal::Content(content),
        ) => Ok(Proposal::EditFile {
            diff: unified_diff(path, base_content, &content),
            path: path.clone(),
            base_hash: base_hash.clone(),
            content,
        }),
        (Proposal::Question { question, .. }, EditedProposal::Answer(answer)) => {
            Ok(Proposal::Question {
                question: question.clone(),
                answer: Some(answer),
            })
        }
        (Proposal::RunCommand(request), EditedProposal::Command(command)) => {
            let mut request = request.clone();
            request.command = command;
            Ok(Proposal::RunCommand(request))
        }
        (other, _) => Err(format!(
            "an {} proposal cannot be edited that way",
            other.kind_name()
        )),
    }
}

/// What a person may change in a proposal.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EditedProposal {
    /// New file content for an edit.
    Content(String),
    /// Another command for a command.
    Command(CommandLine),
    /// The answer to an agent's question.
    Answer(String),
    /// An edit with some of its hunks (numbered from 1 as its diff shows them) left out, and
    /// why.
    Hunks {
        rejected: Vec<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

/// The operation an approved proposal performs (`None` for a gate).
pub(crate) fn proposal_request(proposal: &Proposal) -> Option<OperationRequest> {
    match proposal {
        Proposal::EditFile {
            path,
            base_hash,
            content,
            ..
        } => Some(OperationRequest::WriteFile {
            path: path.clone(),
            base_hash: base_hash.clone(),
            content: content.clone(),
            content_hash: crate::hash::content_hash(content.as_bytes()),
        }),
        Proposal::RunCommand(request) => Some(OperationRequest::RunCommand(request.clone())),
        Proposal::ReadFile { path } => Some(OperationRequest::ReadFile {
            path: path.clone(),
            missing_ok: false,
        }),
        Proposal::Gate { .. } | Proposal::Breakpoint { .. } | Proposal::Question { .. } => None,
        Proposal::McpCall {
            server,
            tool,
            arguments,
        } => Some(OperationRequest::McpCall {
            server: server.clone(),
            tool: tool.clone(),
            arguments: arguments.clone(),
        }),
        Proposal::LlmCall { request, .. } => Some(OperationRequest::LlmCall(request.clone())),
        Proposal::Plan { .. } => None,
    }
}
