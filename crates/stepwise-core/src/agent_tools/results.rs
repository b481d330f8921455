//! What the model is told a tool call returned: in the tool's own words, capped, never the
//! engine's (which may name places on this machine outside the workspace, for a provider to
//! read), and never what the policy keeps from the agent.

use serde_json::Value;

use crate::event::HunkReview;
use crate::llm::ToolCall;
use crate::operation::{
    CommandOutcome, OperationError, OperationErrorKind, OperationResult, SearchMatch,
};
use crate::policy::{Effect, GateKind, Policy, Subject};

use super::TOOL_RESULT_MAX_BYTES;

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
            let text = lines(content, line("offset"), line("limit"));
            if text.len() > TOOL_RESULT_MAX_BYTES {
                let cut = capped(&text);
                let cut = cut.strip_suffix(']').unwrap_or(&cut);
                return format!("{cut}; read on with `offset` and `limit`, in lines]");
            }
            text
        }
        Ok(OperationResult::FileRead { exists: false, .. }) => {
            "error: there is no such file".into()
        }
        Ok(OperationResult::FilesSearched { matches, truncated }) => {
            capped(&search_text(matches, *truncated, policy))
        }
        Ok(OperationResult::CommandFinished(outcome)) => capped(&command_text(outcome)),
        Ok(OperationResult::McpCalled {
            content, is_error, ..
        }) => {
            let content = if content.is_empty() {
                "(no content)"
            } else {
                content
            };
            if *is_error {
                capped(&format!("error: {content}"))
            } else {
                capped(content)
            }
        }
        Ok(OperationResult::Remembered { replaced }) => {
            if *replaced {
                "remembered (it replaced what the key held)".into()
            } else {
                "remembered".into()
            }
        }
        Ok(OperationResult::Recalled { entries }) => {
            if entries.is_empty() {
                return "nothing remembered matches".into();
            }
            let shown: Vec<String> = entries
                .iter()
                .map(|entry| format!("[{}] {}", entry.key, entry.text))
                .collect();
            capped(&shown.join("\n"))
        }
        Ok(_) => "error: the tool's operation returned something else than it asked for".into(),
        Err(error) => {
            // The engine's words of an MCP server: what it did, never where it runs. A memory's
            // words name nothing of this machine either.
            if matches!(error.kind, OperationErrorKind::Mcp)
                || matches!(call.name.as_str(), "remember" | "recall")
            {
                return capped(&format!("error: {}", error.message));
            }
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
                OperationErrorKind::Conflict => format!(
                    "error: `{path}` changed since it was read; nothing was written (read it again)"
                ),
                OperationErrorKind::Sandbox => {
                    format!("error: `{path}` leads outside the workspace")
                }
                OperationErrorKind::NotFound if call.name == "list_files" => {
                    format!("error: there is no directory `{path}`")
                }
                OperationErrorKind::NotFound => format!("error: there is no file `{path}`"),
                OperationErrorKind::NotText => format!("error: `{path}` is not UTF-8 text"),
                OperationErrorKind::Cancelled => "error: the run was cancelled".into(),

                _ if call.name == "list_files" || call.name == "search" => {
                    format!("error: `{path}` could not be searched")
                }
                _ if call.name == "edit_file" || call.name == "write_file" => {
                    format!("error: `{path}` could not be written")
                }
                _ => format!("error: `{path}` could not be read"),
            }
        }
    }
}

/// What the model is told of an edit that was written: that it was, or, where a person
/// changed it before approving, what they did (`changed`, from [`edit_changed`]).
pub fn written(path: &str, changed: Option<&str>) -> String {
    match changed {
        Some(told) => capped(told),
        _ => format!("`{path}` was written as proposed"),
    }
}

/// How a person changed an edit before approving it: applied only some of its hunks
/// (`hunks`), or wrote other content; `diff` is the change that was applied.
pub fn edit_changed(path: &str, diff: &str, hunks: Option<&HunkReview>) -> String {
    match hunks {
        Some(review) => format!(
            "a person reviewed your edit hunk by hunk: {}; `{path}` was written with this change:\n{diff}",
            review.told()
        ),
        None => format!(
            "a person changed your edit before approving it; `{path}` was written with this change instead:\n{diff}"
        ),
    }
}

/// The lines a search found, as `path:line: text`, leaving out files the agent may not read.
fn search_text(matches: &[SearchMatch], truncated: bool, policy: &Policy) -> String {
    let mut text = String::new();
    for found in matches {
        let readable = policy
            .evaluate(Subject::file(GateKind::ReadFile, &found.path))
            .effect
            == Effect::Allow;
        if readable {
            text.push_str(&format!("{}:{}: {}\n", found.path, found.line, found.text));
        }
    }
    if text.is_empty() {
        text.push_str("(no matches)\n");
    }
    if truncated {
        text.push_str(
            "[more matches than a search shows: narrow it with `path`, `glob` or the pattern]",
        );
    }
    text
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
    // What it did to the workspace's files comes first: a cut of long output keeps it.
    let files = if outcome.changes.is_empty() {
        String::new()
    } else {
        format!(
            "\nfiles: {}",
            crate::checkpoint::describe_at_most(&outcome.changes, 20)
        )
    };
    format!(
        "{ended}{files}{}{}",
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

/// How far past the cap a text may be and still have been cut by [`capped`] (its note).
const CAP_NOTE_ROOM: usize = 1024;

/// `told` within the cap of tool results: cut by [`capped`] when it is longer, but kept as it
/// is when [`capped`] has cut it already (its note makes it a little longer than the cap).
pub fn bounded(told: String) -> String {
    if told.len() > TOOL_RESULT_MAX_BYTES + CAP_NOTE_ROOM {
        capped(&told)
    } else {
        told
    }
}

/// At most [`TOOL_RESULT_MAX_BYTES`] of `text` (cut at a character), with a note when cut.
pub fn capped(text: &str) -> String {
    if text.len() <= TOOL_RESULT_MAX_BYTES {
        return text.to_string();
    }
    let mut end = TOOL_RESULT_MAX_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}\n[cut: this is the first {end} of {} bytes]",
        &text[..end],
        text.len()
    )
}
