//! The built-in tools of `agent` steps: what the model is told of each (`specs`), how a call
//! becomes an operation the engine already performs (or an edit to propose, `edits`, or a
//! question for a person) under the same policy as a step of that kind, and what the model is
//! told back (`results`). All of it is a pure function of the call and the operations'
//! outcomes, so that a run's conversation is a function of its log.

mod edits;
mod mcp;
mod results;
mod specs;

use serde_json::Value;

use crate::llm::{ToolCall, ToolSpec};
use crate::operation::{CommandLine, CommandRequest, OperationRequest};
use crate::paths::normalize_workspace_path;

pub use edits::{AgentEdit, edit_proposal};
pub use mcp::{McpTool, offered_tools};
pub use results::{bounded, call_result, capped, edit_changed, written};
pub use specs::tool_spec;

/// The built-in tools, in the order they are offered; an agent step that names none gets
/// them all (what has an effect is still put through the policy, and asks by default).
pub const BUILT_IN_TOOLS: &[&str] = &[
    "read_file",
    "list_files",
    "search",
    "edit_file",
    "write_file",
    "run_command",
    "ask_person",
];

/// The tools an agent step with `memory: NAME` is given besides the others.
pub const MEMORY_TOOLS: &[&str] = &["remember", "recall"];
/// The longest key and text an agent may remember, and the longest recall query.
pub const MAX_MEMORY_KEY_CHARS: usize = 200;
pub const MAX_MEMORY_TEXT_BYTES: usize = 8 * 1024;
const MAX_RECALL_QUERY_BYTES: usize = 1024;

/// The longest question an agent may put to a person, and the longest search pattern.
const MAX_QUESTION_BYTES: usize = 16 * 1024;
const MAX_PATTERN_BYTES: usize = 1024;
/// How deeply a search pattern may nest groups and repetitions.
const MAX_PATTERN_NESTING: u32 = 32;

/// What a tool call asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolAction {
    /// An operation to perform as it is (a read, a listing, a search, a command).
    Operation(OperationRequest),
    /// An edit of one file: read first, then proposed against what was read.
    Edit { path: String, edit: AgentEdit },
    /// A question for a person, whose answer is the result.
    Ask { question: String },
}

/// How long an agent's command may run before its process group is killed.
pub const TOOL_COMMAND_TIMEOUT_MS: u64 = 5 * 60 * 1000;
/// Bytes of stdout and of stderr an agent's command keeps in the log (the model is shown at
/// most [`TOOL_RESULT_MAX_BYTES`] of them in all).
pub const TOOL_COMMAND_OUTPUT_BYTES: u64 = 256 * 1024;
/// The most arguments, and the longest argument, an agent's command may have.
const MAX_ARGS: usize = 256;
const MAX_ARG_BYTES: usize = 4096;

/// The most of a tool's result the model is given, in bytes; the rest is cut, with a note.
pub const TOOL_RESULT_MAX_BYTES: usize = 32 * 1024;

/// What a call asks for, or what the model is told instead when the call cannot be made as
/// given (an unknown or unoffered tool, missing or wrong arguments). A path is normalised
/// first, exactly as a step's path is, so that the policy judges (and the log records) the
/// path that will be used, however the model spelled it.
pub fn call_request(
    call: &ToolCall,
    offered: &[ToolSpec],
    mcp: &[McpTool],
    memory: Option<&str>,
) -> Result<ToolAction, String> {
    if let Some(tool) = mcp.iter().find(|tool| tool.spec.name == call.name) {
        return mcp::mcp_call_request(call, tool);
    }
    if let Some(problem) = &call.malformed {
        return Err(format!(
            "error: {problem}; send them again as one JSON object"
        ));
    }
    if !offered.iter().any(|t| t.name == call.name) {
        let names: Vec<&str> = offered.iter().map(|t| t.name.as_str()).collect();
        return Err(format!(
            "error: there is no tool `{}`; the tools are: {}",
            call.name,
            names.join(", ")
        ));
    }
    match call.name.as_str() {
        "read_file" => {
            let path = match call.arguments.get("path") {
                Some(Value::String(path)) if !path.trim().is_empty() => path,
                _ => return Err("error: `path` must be a non-empty string".into()),
            };
            let path = normalize_workspace_path(path).map_err(|e| format!("error: {e}"))?;
            // Optional: absent or null (as many models send what they leave out).
            for field in ["offset", "limit"] {
                if let Some(value) = call.arguments.get(field)
                    && !value.is_null()
                    && value.as_u64().is_none_or(|n| n < 1)
                {
                    return Err(format!(
                        "error: `{field}` must be a whole number, 1 or more"
                    ));
                }
            }
            Ok(ToolAction::Operation(OperationRequest::ReadFile {
                path,
                missing_ok: false,
            }))
        }
        "list_files" => {
            let path = directory_argument(&call.arguments, "path")?;
            let glob = glob_argument(&call.arguments)?;
            Ok(ToolAction::Operation(OperationRequest::ListFiles {
                path,
                glob,
            }))
        }
        "run_command" => {
            let argv: Vec<String> = match call.arguments.get("argv") {
                Some(Value::Array(items)) if !items.is_empty() && items.len() <= MAX_ARGS => items
                    .iter()
                    .map(|item| match item {
                        Value::String(arg) if arg.len() <= MAX_ARG_BYTES && !arg.contains('\0') => {
                            Ok(arg.clone())
                        }
                        _ => Err(format!(
                            "error: each of `argv` must be a string of at most {MAX_ARG_BYTES} bytes"
                        )),
                    })
                    .collect::<Result<_, _>>()?,
                _ => {
                    return Err(format!(
                        "error: `argv` must be a list of 1 to {MAX_ARGS} strings"
                    ));
                }
            };
            let cwd = directory_argument(&call.arguments, "cwd")?;
            Ok(ToolAction::Operation(OperationRequest::RunCommand(
                CommandRequest {
                    command: CommandLine::Argv(argv),
                    cwd,
                    env: Default::default(),
                    pass_env: Vec::new(),
                    timeout_ms: Some(TOOL_COMMAND_TIMEOUT_MS),
                    max_output_bytes: TOOL_COMMAND_OUTPUT_BYTES,
                    save_output: false,
                    stdin: None,
                },
            )))
        }
        "search" => {
            let pattern = match call.arguments.get("pattern") {
                Some(Value::String(p)) if !p.is_empty() && p.len() <= MAX_PATTERN_BYTES => p,
                _ => {
                    return Err(format!(
                        "error: `pattern` must be a regular expression of 1 to {MAX_PATTERN_BYTES} bytes"
                    ));
                }
            };
            regex_syntax::ParserBuilder::new()
                .nest_limit(MAX_PATTERN_NESTING)
                .build()
                .parse(pattern)
                .map_err(|e| format!("error: `pattern` is not a regular expression: {e}"))?;
            Ok(ToolAction::Operation(OperationRequest::SearchFiles {
                pattern: pattern.clone(),
                path: directory_argument(&call.arguments, "path")?,
                glob: glob_argument(&call.arguments)?,
                excluded: Vec::new(),
            }))
        }
        "edit_file" | "write_file" => {
            let (path, edit) = edits::edit_request(&call.name, &call.arguments)?;
            Ok(ToolAction::Edit { path, edit })
        }
        "remember" | "recall" => memory_request(call, memory),
        "ask_person" => match call.arguments.get("question") {
            Some(Value::String(q)) if !q.trim().is_empty() && q.len() <= MAX_QUESTION_BYTES => {
                Ok(ToolAction::Ask {
                    question: q.clone(),
                })
            }
            _ => Err(format!(
                "error: `question` must be a non-empty string of at most {} KiB",
                MAX_QUESTION_BYTES / 1024
            )),
        },
        other => Err(format!("error: there is no tool `{other}`")),
    }
}

/// A `remember` or `recall` call, on the step's memory.
fn memory_request(call: &ToolCall, memory: Option<&str>) -> Result<ToolAction, String> {
    let Some(memory) = memory else {
        return Err(format!("error: there is no tool `{}`", call.name));
    };
    let text_argument = |field: &str| match call.arguments.get(field) {
        Some(Value::String(text)) => Ok(text.clone()),
        _ => Err(format!("error: `{field}` must be a string")),
    };
    let request = if call.name == "remember" {
        let key = text_argument("key")?.trim().to_string();
        if key.is_empty()
            || key.chars().count() > MAX_MEMORY_KEY_CHARS
            || key.chars().any(char::is_control)
        {
            return Err(format!(
                "error: `key` must be 1 to {MAX_MEMORY_KEY_CHARS} characters on one line"
            ));
        }
        let text = text_argument("text")?;
        if text.trim().is_empty() || text.len() > MAX_MEMORY_TEXT_BYTES {
            return Err(format!(
                "error: `text` must be 1 byte to {} KiB",
                MAX_MEMORY_TEXT_BYTES / 1024
            ));
        }
        OperationRequest::Remember {
            memory: memory.to_string(),
            key,
            text,
        }
    } else {
        let query = text_argument("query")?;
        if query.len() > MAX_RECALL_QUERY_BYTES {
            return Err(format!(
                "error: `query` must be at most {MAX_RECALL_QUERY_BYTES} bytes"
            ));
        }
        OperationRequest::Recall {
            memory: memory.to_string(),
            query,
        }
    };
    Ok(ToolAction::Operation(request))
}

/// A directory argument (`path`, `cwd`): the workspace's root when left out.
fn directory_argument(arguments: &Value, field: &str) -> Result<String, String> {
    match arguments.get(field) {
        None | Some(Value::Null) => Ok(".".to_string()),
        Some(Value::String(path)) if path.trim().is_empty() || path == "." => Ok(".".into()),
        Some(Value::String(path)) => {
            normalize_workspace_path(path).map_err(|e| format!("error: `{field}`: {e}"))
        }
        Some(_) => Err(format!("error: `{field}` must be a string")),
    }
}

/// The `glob` argument, checked to be one.
fn glob_argument(arguments: &Value) -> Result<Option<String>, String> {
    match arguments.get("glob") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(glob)) => {
            globset::GlobBuilder::new(glob)
                .literal_separator(true)
                .build()
                .map_err(|e| format!("error: `glob` is not a glob: {e}"))?;
            Ok(Some(glob.clone()))
        }
        Some(_) => Err("error: `glob` must be a string".into()),
    }
}

#[cfg(test)]
mod tests;
