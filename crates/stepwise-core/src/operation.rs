//! Operations: the side effects a step asks the engine to perform, and their recorded results.
//!
//! A request is recorded (`OperationStarted`) before the engine performs it and the result
//! (`OperationSucceeded` / `OperationFailed`) before anything depends on it, so both must hold
//! everything needed to answer the operation again during replay without touching the world.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::checkpoint::FileChange;
pub use crate::llm::{LlmReply, LlmRequest};

/// What a step asks the engine to do. Paths are workspace-relative and already checked to be
/// free of `..` and absolute forms; the engine checks again (symlinks) when it performs them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OperationRequest {
    /// Read a UTF-8 text file. With `missing_ok`, a missing file is a result, not an error
    /// (an edit that creates a file snapshots "nothing" first).
    ReadFile {
        path: String,
        #[serde(default, skip_serializing_if = "is_false")]
        missing_ok: bool,
    },
    /// Replace a file's content, but only if it still has `base_hash`
    /// (`None`: only if it does not exist yet). Parent directories are created.
    WriteFile {
        path: String,
        base_hash: Option<String>,
        content: String,
        content_hash: String,
    },
    /// Run a child process in its own process group inside the workspace.
    RunCommand(CommandRequest),
    /// Ask a model. No effect on the world: after a crash it is simply asked again.
    LlmCall(std::sync::Arc<LlmRequest>),
    /// List the files under a directory of the workspace (`.` for all of it), as `.gitignore`
    /// files leave them, hidden ones apart; with `glob`, those matching it. No effect on the
    /// world: after a crash it is simply listed again.
    ListFiles {
        path: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        glob: Option<String>,
    },
    /// Search the text files under a directory of the workspace (`.` for all of it) for lines
    /// matching a regular expression, walking as `ListFiles` does; with `glob`, only files
    /// matching it, and never files matching one of `excluded` (the paths its step may not read
    /// without asking, so that what they hold is neither read nor recorded). No effect on the
    /// world: after a crash it is simply searched again.
    SearchFiles {
        pattern: String,
        path: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        glob: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        excluded: Vec<String>,
    },
    /// Several reads of one agent turn (`ReadFile`, `ListFiles`, `SearchFiles` only), performed
    /// side by side, each answered on its own. No effect on the world: after a crash they are
    /// simply performed again.
    ReadBatch { requests: Vec<OperationRequest> },
    /// List the tools of an MCP server of the user's settings, starting it for the run if it
    /// is not running yet. No effect the engine answers for: after a crash it is listed again.
    McpListTools { server: String },
    /// Call a tool of an MCP server of the user's settings with these arguments (a JSON
    /// object). What the tool does is the server's: after a crash, a person says.
    McpCall {
        server: String,
        tool: String,
        arguments: serde_json::Value,
    },
    /// Run a workflow file the run recorded (`workflow`, by `path` as its step wrote it) as a
    /// child run with these inputs, at this depth, and wait for its end. The child's id comes
    /// from the parent's and this operation's, so performing it again after a crash finds the
    /// child already started and waits for it again.
    RunWorkflow {
        workflow: String,
        inputs: serde_json::Value,
        depth: u32,
    },
    /// An agent remembers `text` under `key` in the shared memory `memory` (replacing what the
    /// key held). Doing it twice leaves the same: after a crash it is simply done again.
    Remember {
        memory: String,
        key: String,
        text: String,
    },
    /// An agent recalls the entries of `memory` that best match `query`. No effect on the
    /// world: after a crash it is simply asked again (what it answered then is what the run
    /// recorded, so replay never asks).
    Recall { memory: String, query: String },
    /// Wait for a signal named `name` and take it (one wait per signal); after `timeout_ms`,
    /// fail. Performed again after a crash, it finds the signal it took, if it took one.
    WaitSignal {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
}

impl OperationRequest {
    /// The operation kind as policy rules and people name it.
    pub fn kind_name(&self) -> &'static str {
        match self {
            OperationRequest::ReadFile { .. } => "read_file",
            OperationRequest::WriteFile { .. } => "write_file",
            OperationRequest::RunCommand(_) => "run_command",
            OperationRequest::LlmCall(_) => "llm_call",
            OperationRequest::ListFiles { .. } => "list_files",
            OperationRequest::SearchFiles { .. } => "search",
            OperationRequest::ReadBatch { .. } => "read_batch",
            OperationRequest::McpListTools { .. } => "mcp_list_tools",
            OperationRequest::McpCall { .. } => "mcp_call",
            OperationRequest::RunWorkflow { .. } => "run_workflow",
            OperationRequest::Remember { .. } => "remember",
            OperationRequest::Recall { .. } => "recall",
            OperationRequest::WaitSignal { .. } => "wait_signal",
        }
    }

    /// Whether the operation may change the workspace's files (checkpoints are taken around
    /// it).
    pub fn may_change_files(&self) -> bool {
        matches!(
            self,
            OperationRequest::WriteFile { .. }
                | OperationRequest::RunCommand(_)
                | OperationRequest::McpCall { .. }
        )
    }
}

impl OperationResult {
    /// What the operation changed in the workspace's files, as its result records.
    pub fn file_changes(&self) -> &[FileChange] {
        match self {
            OperationResult::CommandFinished(outcome) => &outcome.changes,
            OperationResult::McpCalled { changes, .. } => changes,
            OperationResult::FileWritten { changes, .. } => changes,
            _ => &[],
        }
    }
}

/// A command as it will run: either an argv list executed directly, or a shell string run
/// through `sh -c`.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandLine {
    Argv(Vec<String>),
    Shell(String),
}

impl CommandLine {
    /// The command as one line of text, for display and for matching policy patterns.
    pub fn display(&self) -> String {
        match self {
            CommandLine::Argv(argv) => argv
                .iter()
                .map(|a| quote_arg(a))
                .collect::<Vec<_>>()
                .join(" "),
            CommandLine::Shell(s) => s.clone(),
        }
    }
}

fn quote_arg(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// Everything needed to run one command.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRequest {
    pub command: CommandLine,
    /// Workspace-relative working directory (`.` for the workspace root).
    pub cwd: String,
    /// Variables set explicitly by the workflow (their values are part of the record).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Names of variables passed through from the engine's own environment. Only the names
    /// are recorded: their values may be secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pass_env: Vec<String>,
    /// Kill the whole process group after this many milliseconds.
    #[cfg_attr(feature = "ts", ts(type = "number | null"))]
    pub timeout_ms: Option<u64>,
    /// Keep at most this many bytes of stdout and of stderr; the rest is counted, not kept.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub max_output_bytes: u64,
    /// Also stream all of stdout and stderr to files in the workspace's `.stepwise/output/`
    /// (where, the outcome says).
    #[serde(default, skip_serializing_if = "is_false")]
    pub save_output: bool,
    /// Text written to the command's stdin, then closed (a custom step's inputs, as JSON);
    /// without it, stdin is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
}

/// The recorded outcome of an operation that ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OperationResult {
    /// The file's content as read (for a missing file with `missing_ok`: `exists: false`).
    FileRead {
        exists: bool,
        content: String,
        /// `sha256:<hex>` of the content; `None` when the file does not exist.
        hash: Option<String>,
    },
    /// The file now holds the requested content.
    FileWritten {
        before_hash: Option<String>,
        after_hash: String,
        /// The write was found already applied when resuming after a crash.
        #[serde(default, skip_serializing_if = "is_false")]
        recovered: bool,
        /// The file's change, with both versions (see `checkpoint`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        changes: Vec<FileChange>,
    },
    /// The command ran to an end (exit, signal or timeout).
    CommandFinished(CommandOutcome),
    /// The model replied.
    LlmReplied(Box<LlmReply>),
    /// The files found, workspace-relative, sorted; `truncated` when there were more than a
    /// listing keeps.
    FilesListed {
        paths: Vec<String>,
        #[serde(default, skip_serializing_if = "is_false")]
        truncated: bool,
    },
    /// The matching lines found, by path then line; `truncated` when there were more than a
    /// search keeps (or it stopped looking).
    FilesSearched {
        matches: Vec<SearchMatch>,
        #[serde(default, skip_serializing_if = "is_false")]
        truncated: bool,
    },
    /// What each read of a `ReadBatch` returned, in its order.
    ReadsDone { outcomes: Vec<ReadOutcome> },
    /// The tools an MCP server lists.
    McpToolsListed { tools: Vec<McpToolInfo> },
    /// What an MCP tool returned, as text; `is_error` when the server said the call failed.
    McpCalled {
        content: String,
        #[serde(default, skip_serializing_if = "is_false")]
        is_error: bool,
        /// What the call changed in the workspace's files.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        changes: Vec<FileChange>,
    },
    /// A child run (`RunWorkflow`) succeeded: its id and its workflow's `outputs`.
    WorkflowFinished {
        run_id: String,
        output: serde_json::Value,
    },
    /// Remembered; whether the key held something before.
    Remembered { replaced: bool },
    /// What a recall found, best first.
    Recalled { entries: Vec<RecalledEntry> },
    /// The signal a wait took.
    SignalReceived {
        signal_id: i64,
        name: String,
        payload: serde_json::Value,
        idempotency_key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        correlation_id: Option<String>,
    },
}

/// One entry a recall found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecalledEntry {
    pub key: String,
    pub text: String,
}

/// What one read of a batch returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ReadOutcome {
    Succeeded { result: Box<OperationResult> },
    Failed { error: OperationError },
}

impl ReadOutcome {
    pub fn into_result(self) -> Result<OperationResult, OperationError> {
        match self {
            ReadOutcome::Succeeded { result } => Ok(*result),
            ReadOutcome::Failed { error } => Err(error),
        }
    }
}

/// One tool an MCP server lists: its name, what it says of it, and its arguments' JSON Schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct McpToolInfo {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub input_schema: serde_json::Value,
}

/// One line a search found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchMatch {
    /// Workspace-relative, with `/`.
    pub path: String,
    /// 1 is the first line.
    pub line: u64,
    /// The line, without its end, cut when long.
    pub text: String,
}

/// How a command ended and what it printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandOutcome {
    /// The exit code; `None` when it was ended by a signal.
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
    /// Total bytes the command wrote to each stream, kept or not.
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    pub duration_ms: u64,
    /// Where the whole output was saved, when the request asked for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved_output: Option<SavedOutput>,
    /// What the command changed in the workspace's files (see `checkpoint`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<FileChange>,
}

/// The files a command's whole output was streamed to (workspace-relative).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedOutput {
    pub stdout_file: String,
    pub stderr_file: String,
    /// Why the files are incomplete, when writing them failed part-way (a full disk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl CommandOutcome {
    pub fn stdout_truncated(&self) -> bool {
        self.stdout_bytes > self.stdout.len() as u64
    }
    pub fn stderr_truncated(&self) -> bool {
        self.stderr_bytes > self.stderr.len() as u64
    }
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }
}

/// Why an operation could not be performed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationError {
    pub kind: OperationErrorKind,
    pub message: String,
    /// What the operation changed in the workspace's files before it failed (a command
    /// cancelled mid-way, an MCP call whose server died; see `checkpoint`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<FileChange>,
}

impl OperationError {
    pub fn new(kind: OperationErrorKind, message: impl Into<String>) -> Self {
        OperationError {
            kind,
            message: message.into(),
            changes: Vec::new(),
        }
    }
}

/// The class of an operation failure; it decides whether a retry can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationErrorKind {
    /// The path leaves the workspace (`..`, absolute, or a symlink pointing outside).
    Sandbox,
    /// The file does not exist.
    NotFound,
    /// The file is not UTF-8 text.
    NotText,
    /// The file changed since the proposal was made; nothing was written.
    Conflict,
    /// The program could not be started.
    Spawn,
    /// The run was cancelled while the operation was running.
    Cancelled,
    /// Any other I/O failure.
    Io,
    /// A model provider could not be reached, or kept failing (timeouts, 429 and 5xx after
    /// its own retries).
    Provider,
    /// An MCP server could not be started, stopped answering, or answered something that is
    /// not MCP. Its message names the server and what went wrong, never where it runs.
    Mcp,
    /// A model provider refused the request: a bad or missing key, an unknown model, a bad
    /// request. Asking again the same way would not help.
    ProviderRefused,
    /// A `workflow` step's child run failed or was cancelled, or could not start.
    ChildRun,
    /// What the operation waited for did not come in time (a signal).
    Timeout,
}

impl OperationErrorKind {
    /// Whether trying the same operation again might succeed.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            OperationErrorKind::Io
                | OperationErrorKind::Spawn
                | OperationErrorKind::Provider
                | OperationErrorKind::Mcp
                | OperationErrorKind::ChildRun
                | OperationErrorKind::Timeout
        )
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}
