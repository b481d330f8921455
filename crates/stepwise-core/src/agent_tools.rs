//! The built-in tools of `agent` steps: what the model is told of each (`ToolSpec`), how a call
//! becomes an operation the engine already performs under the same policy as a step of that
//! kind, and what the model is told back. All of it is a pure function of the call and the
//! operation's outcome, so that a run's conversation is a function of its log.

use serde_json::{Value, json};

use crate::llm::{ToolCall, ToolSpec};
use crate::operation::{
    CommandLine, CommandOutcome, CommandRequest, OperationError, OperationErrorKind,
    OperationRequest, OperationResult,
};
use crate::paths::normalize_workspace_path;
use crate::policy::{Effect, GateKind, Policy, Subject};

/// The tools agent steps can call now, in the order they are offered.
pub const AVAILABLE_TOOLS: &[&str] = &["read_file", "list_files", "run_command"];

/// The tools an agent step gets when it names none: those that change nothing. A tool with an
/// effect is offered only when the workflow lists it, and a tool added later never joins this
/// list (a run replays with the tools its first call offered).
pub const DEFAULT_TOOLS: &[&str] = &["read_file", "list_files"];

/// Tools agent steps will get, named so that a workflow asking for one is told it is not
/// available yet rather than that it does not exist.
pub const PLANNED_TOOLS: &[&str] = &["search", "edit_file", "write_file", "ask_person"];

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

/// What the model is told of a built-in tool; `None` for a name that is not one.
pub fn tool_spec(name: &str) -> Option<ToolSpec> {
    match name {
        "read_file" => Some(ToolSpec {
            name: "read_file".into(),
            description: "Read a UTF-8 text file of the workspace, by its path relative to the \
                workspace. Returns its content, or the lines from `offset` (1 is the first), at \
                most `limit` of them. Long results are cut, with a note saying so."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "The file's path, relative to the workspace."},
                    "offset": {"type": "integer", "minimum": 1, "description": "The first line to return (1 is the first)."},
                    "limit": {"type": "integer", "minimum": 1, "description": "The most lines to return."}
                },
                "required": ["path"]
            }),
        }),
        "list_files" => Some(ToolSpec {
            name: "list_files".into(),
            description: "List the files of the workspace, or of one of its directories, as \
                `.gitignore` files leave them (hidden files left out), with paths relative to \
                the workspace; with `glob` (e.g. `**/*.py`; `*` stays within a directory), only those whose path from the workspace's root matches it. \
                At most 1000 paths, with a note when there were more."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "A directory of the workspace (default: all of it)."},
                    "glob": {"type": "string", "description": "A glob the paths must match, e.g. `src/**/*.rs`."}
                }
            }),
        }),
        "run_command" => Some(ToolSpec {
            name: "run_command".into(),
            description: "Run a program in the workspace, without a shell: `argv` is the program \
                and its arguments, `cwd` a directory of the workspace (default: its root). Only \
                commands the workspace's policy allows are run; others are refused, with why. \
                Returns the exit code and what it printed (cut at 32 KiB, with a note). It is \
                killed after 5 minutes."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "argv": {"type": "array", "items": {"type": "string"}, "minItems": 1, "description": "The program and its arguments, e.g. [\"python3\", \"-m\", \"unittest\"]."},
                    "cwd": {"type": "string", "description": "The directory to run in, relative to the workspace."}
                },
                "required": ["argv"]
            }),
        }),
        _ => None,
    }
}

/// The operation a call asks for, or what the model is told instead when the call cannot be
/// made as given (an unknown or unoffered tool, missing or wrong arguments). A path is
/// normalised first, exactly as a step's path is, so that the policy judges (and the log
/// records) the path that will be read, however the model spelled it.
pub fn call_request(call: &ToolCall, offered: &[ToolSpec]) -> Result<OperationRequest, String> {
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
            for field in ["offset", "limit"] {
                if let Some(value) = call.arguments.get(field)
                    && value.as_u64().is_none_or(|n| n < 1)
                {
                    return Err(format!(
                        "error: `{field}` must be a whole number, 1 or more"
                    ));
                }
            }
            Ok(OperationRequest::ReadFile {
                path,
                missing_ok: false,
            })
        }
        "list_files" => {
            let path = match call.arguments.get("path") {
                None | Some(Value::Null) => ".".to_string(),
                Some(Value::String(path)) if path.trim().is_empty() || path == "." => ".".into(),
                Some(Value::String(path)) => {
                    normalize_workspace_path(path).map_err(|e| format!("error: {e}"))?
                }
                Some(_) => return Err("error: `path` must be a string".into()),
            };
            let glob = match call.arguments.get("glob") {
                None | Some(Value::Null) => None,
                Some(Value::String(glob)) => {
                    globset::GlobBuilder::new(glob)
                        .literal_separator(true)
                        .build()
                        .map_err(|e| format!("error: `glob` is not a glob: {e}"))?;
                    Some(glob.clone())
                }
                Some(_) => return Err("error: `glob` must be a string".into()),
            };
            Ok(OperationRequest::ListFiles { path, glob })
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
            let cwd = match call.arguments.get("cwd") {
                None | Some(Value::Null) => ".".to_string(),
                Some(Value::String(cwd)) if cwd.trim().is_empty() || cwd == "." => ".".into(),
                Some(Value::String(cwd)) => {
                    normalize_workspace_path(cwd).map_err(|e| format!("error: `cwd`: {e}"))?
                }
                Some(_) => return Err("error: `cwd` must be a string".into()),
            };
            Ok(OperationRequest::RunCommand(CommandRequest {
                command: CommandLine::Argv(argv),
                cwd,
                env: Default::default(),
                pass_env: Vec::new(),
                timeout_ms: Some(TOOL_COMMAND_TIMEOUT_MS),
                max_output_bytes: TOOL_COMMAND_OUTPUT_BYTES,
                save_output: false,
            }))
        }
        other => Err(format!("error: tool `{other}` cannot be called yet")),
    }
}

/// What the model is told a call returned. Errors are told in the tool's own words, naming the
/// path as the call gave it: never the engine's, which may name places on this machine outside
/// the workspace (a link's target), for a provider to read.
pub fn call_result(
    call: &ToolCall,
    outcome: &Result<OperationResult, OperationError>,
    policy: &Policy,
) -> String {
    match outcome {
        // What the agent may not read it is not shown either.
        Ok(OperationResult::FilesListed { paths, truncated }) => {
            let shown: Vec<&str> = paths
                .iter()
                .map(String::as_str)
                .filter(|path| {
                    policy
                        .evaluate(Subject::file(GateKind::ReadFile, path))
                        .effect
                        == Effect::Allow
                })
                .collect();
            let mut text = if shown.is_empty() {
                "(no files)".to_string()
            } else {
                shown.join("\n")
            };
            if *truncated {
                text.push_str(
                    "\n[more files than a listing shows: narrow it with `path` or `glob`]",
                );
            }
            capped(&text)
        }
        Ok(OperationResult::FileRead {
            exists: true,
            content,
            ..
        }) => {
            let line = |field: &str| call.arguments.get(field).and_then(Value::as_u64);
            capped(&lines(content, line("offset"), line("limit")))
        }
        Ok(OperationResult::FileRead { exists: false, .. }) => {
            "error: there is no such file".into()
        }
        Ok(OperationResult::CommandFinished(outcome)) => capped(&command_text(outcome)),
        Ok(_) => "error: the tool's operation returned something else than it asked for".into(),
        Err(error) => {
            if call.name == "run_command" {
                let cwd = call
                    .arguments
                    .get("cwd")
                    .and_then(Value::as_str)
                    .unwrap_or(".");
                return match error.kind {
                    OperationErrorKind::Sandbox | OperationErrorKind::NotFound => {
                        format!("error: `{cwd}` is not a directory of the workspace")
                    }
                    OperationErrorKind::Spawn => "error: the program could not be started".into(),
                    OperationErrorKind::Cancelled => "error: the run was cancelled".into(),
                    _ => "error: the command could not be run".into(),
                };
            }
            let path = call
                .arguments
                .get("path")
                .and_then(Value::as_str)
                .unwrap_or(".");
            match error.kind {
                OperationErrorKind::Sandbox => {
                    format!("error: `{path}` leads outside the workspace")
                }
                OperationErrorKind::NotFound if call.name == "list_files" => {
                    format!("error: there is no directory `{path}`")
                }
                OperationErrorKind::NotFound => format!("error: there is no file `{path}`"),
                OperationErrorKind::NotText => format!("error: `{path}` is not UTF-8 text"),
                OperationErrorKind::Cancelled => "error: the run was cancelled".into(),

                _ if call.name == "list_files" => {
                    format!("error: `{path}` could not be listed")
                }
                _ => format!("error: `{path}` could not be read"),
            }
        }
    }
}

/// What a command did, as the model is told it: how it ended, then what it printed.
fn command_text(outcome: &CommandOutcome) -> String {
    let ended = if outcome.timed_out {
        "it was killed when its time ran out".to_string()
    } else if let Some(code) = outcome.exit_code {
        format!("exit code {code}")
    } else {
        format!("killed by signal {}", outcome.signal.unwrap_or(0))
    };
    let stream = |name: &str, text: &str, cut: bool| {
        let note = if cut { " (cut: it printed more)" } else { "" };
        format!("\n{name}{note}:\n{text}")
    };
    format!(
        "{ended}{}{}",
        stream("stdout", &outcome.stdout, outcome.stdout_truncated()),
        stream("stderr", &outcome.stderr, outcome.stderr_truncated())
    )
}

/// The lines of `text` from `offset` (1-based), at most `limit` of them.
fn lines(text: &str, offset: Option<u64>, limit: Option<u64>) -> String {
    if offset.is_none() && limit.is_none() {
        return text.to_string();
    }
    let skip = usize::try_from(offset.unwrap_or(1).saturating_sub(1)).unwrap_or(usize::MAX);
    let take = limit.map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
    text.split_inclusive('\n').skip(skip).take(take).collect()
}

/// At most [`TOOL_RESULT_MAX_BYTES`] of `text` (cut at a character), with a note when cut.
fn capped(text: &str) -> String {
    if text.len() <= TOOL_RESULT_MAX_BYTES {
        return text.to_string();
    }
    let mut end = TOOL_RESULT_MAX_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}\n[cut: this is the first {end} of {} bytes; read on with `offset` and `limit`]",
        &text[..end],
        text.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operation::OperationErrorKind;

    fn none() -> Policy {
        Policy::compile(&[]).unwrap()
    }

    fn call(name: &str, arguments: Value) -> ToolCall {
        ToolCall {
            id: "c1".into(),
            name: name.into(),
            arguments,
            signature: None,
            malformed: None,
        }
    }

    #[test]
    fn a_read_becomes_a_read_operation_and_wrong_calls_are_told_what_is_wrong() {
        let offered = vec![tool_spec("read_file").unwrap()];
        assert_eq!(
            call_request(&call("read_file", json!({"path": "a.txt"})), &offered),
            Ok(OperationRequest::ReadFile {
                path: "a.txt".into(),
                missing_ok: false
            })
        );
        let told = |c| call_request(&c, &offered).unwrap_err();
        assert!(told(call("read_file", json!({}))).contains("`path`"));
        // However it is spelled, the path read is the one the policy judges.
        for spelled in [
            "./secrets/key.txt",
            "secrets//key.txt",
            "secrets/./key.txt",
            "secrets\\key.txt",
        ] {
            assert_eq!(
                call_request(&call("read_file", json!({"path": spelled})), &offered),
                Ok(OperationRequest::ReadFile {
                    path: "secrets/key.txt".into(),
                    missing_ok: false
                }),
                "{spelled}"
            );
        }
        assert!(told(call("read_file", json!({"path": "../x"}))).contains("`..`"));
        assert!(told(call("read_file", json!({"path": "/etc/passwd"}))).contains("absolute"));
        assert!(told(call("read_file", json!({"path": "a", "offset": 0}))).contains("`offset`"));
        assert!(told(call("rm_rf", json!({}))).contains("there is no tool `rm_rf`"));
        let mut cut_off = call("read_file", json!({}));
        cut_off.malformed = Some("the arguments are not JSON (EOF); were they cut off?".into());
        assert!(told(cut_off).contains("were they cut off?; send them again"));
        // A built-in tool the step did not offer is not callable either.
        assert!(call_request(&call("read_file", json!({"path": "a"})), &[]).is_err());
    }

    #[test]
    fn a_listing_shows_only_what_the_agent_may_read_and_says_when_it_is_cut() {
        let offered = vec![tool_spec("list_files").unwrap()];
        assert_eq!(
            call_request(&call("list_files", json!({})), &offered),
            Ok(OperationRequest::ListFiles {
                path: ".".into(),
                glob: None
            })
        );
        assert_eq!(
            call_request(
                &call("list_files", json!({"path": "./src/", "glob": "**/*.rs"})),
                &offered
            ),
            Ok(OperationRequest::ListFiles {
                path: "src".into(),
                glob: Some("**/*.rs".into())
            })
        );
        assert!(call_request(&call("list_files", json!({"glob": "a{"})), &offered).is_err());
        let deny = crate::policy::RuleSpec {
            effect: Effect::Deny,
            kind: Some(GateKind::ReadFile),
            paths: vec!["secrets/**".into()],
            commands: vec![],
            env: vec![],
            pass_env: vec![],
            unchecked_shell: false,
            source: "test".into(),
        };
        let policy = Policy::compile(&[deny]).unwrap();
        let listed = Ok(OperationResult::FilesListed {
            paths: vec!["a.txt".into(), "secrets/key.txt".into()],
            truncated: true,
        });
        let told = call_result(&call("list_files", json!({})), &listed, &policy);
        assert!(told.starts_with("a.txt\n[more files"), "{told}");
        assert!(!told.contains("secrets"), "{told}");
    }

    #[test]
    fn results_are_the_lines_asked_for_cut_with_a_note_and_errors_say_so() {
        let read = |content: &str| {
            Ok(OperationResult::FileRead {
                exists: true,
                content: content.into(),
                hash: None,
            })
        };
        let whole = call("read_file", json!({"path": "a"}));
        assert_eq!(
            call_result(&whole, &read("1\n2\n3\n"), &none()),
            "1\n2\n3\n"
        );
        let middle = call("read_file", json!({"path": "a", "offset": 2, "limit": 1}));
        assert_eq!(call_result(&middle, &read("1\n2\n3\n"), &none()), "2\n");
        let big = "é".repeat(TOOL_RESULT_MAX_BYTES);
        let cut = call_result(&whole, &read(&big), &none());
        assert!(cut.len() < TOOL_RESULT_MAX_BYTES + 200);
        assert!(
            cut.contains("[cut: this is the first"),
            "{}",
            &cut[cut.len() - 100..]
        );
        let failed = Err(OperationError::new(
            OperationErrorKind::NotFound,
            "no file `a`",
        ));
        assert_eq!(
            call_result(&whole, &failed, &none()),
            "error: there is no file `a`"
        );
        // The engine's words may name the host's paths: the model is told the tool's own.
        let outside = Err(OperationError::new(
            OperationErrorKind::Sandbox,
            "`a` is a link to /home/ann/.ssh/id_rsa, outside the workspace",
        ));
        assert_eq!(
            call_result(&whole, &outside, &none()),
            "error: `a` leads outside the workspace"
        );
    }
}
