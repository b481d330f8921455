//! One running MCP server: started under a supervisor with pipes for its stdin and stdout, an
//! `rmcp` client over them, and every answer bounded before it becomes a result. Dropping it
//! ends the client and has the supervisor kill the server's whole tree.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, ContentBlock, Implementation,
    PaginatedRequestParams,
};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::{ServiceError, ServiceExt};
use serde_json::Value;
use stepwise_core::json_depth::deeper_than;
use stepwise_core::operation::{McpToolInfo, OperationError, OperationResult};
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;

use super::{McpServerDef, mcp_error};
use crate::exec::{Supervised, start_server};
use crate::sandbox::Workspace;

/// How long a server may take to start and answer `initialize` (`npx` may fetch a package).
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long listing its tools may take, and one call.
const LIST_TIMEOUT: Duration = Duration::from_secs(30);
const CALL_TIMEOUT: Duration = Duration::from_secs(300);
/// The longest message a server may send (one line of JSON-RPC).
const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// The most pages of tools read, and tools kept.
const MAX_PAGES: usize = 16;
const MAX_TOOLS: usize = 128;
/// The longest tool name and description kept, and the largest schema (as JSON).
const MAX_NAME_BYTES: usize = 128;
const MAX_DESCRIPTION_BYTES: usize = 2 * 1024;
const MAX_SCHEMA_BYTES: usize = 16 * 1024;
/// How deeply a listed tool's schema may nest (a call's arguments are bounded where the
/// call is decided: `stepwise_core::agent_tools`).
const MAX_DEPTH: usize = 32;
/// The most of a call's content kept in the log (the model is shown less).
const MAX_CONTENT_BYTES: usize = 256 * 1024;

/// A server running for a run.
pub(super) struct Server {
    name: String,
    client: RunningService<RoleClient, ClientConfig>,
    /// Held so that the server's tree lives as long as this, and dies with it.
    _supervised: Mutex<Supervised>,
    /// Bumped on every use, so that an idle stop can tell it was used since.
    used: AtomicU64,
    /// Uses going on now: a server is never stopped for idleness while in use.
    busy: AtomicUsize,
}

/// A use of a server, going on until dropped.
pub(super) struct InUse<'a>(&'a Server);

impl Drop for InUse<'_> {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Server {
    /// Starts server `name` (in `/`, `{workspace}` in its arguments the workspace's path, the
    /// run's commands `lock` held while it runs) and initializes an MCP session with it.
    pub(super) async fn start(
        name: &str,
        def: &McpServerDef,
        ws: &Workspace,
        lock: PathBuf,
    ) -> Result<Server, OperationError> {
        let root = ws.root().to_string_lossy().into_owned();
        let argv: Vec<String> = def
            .command
            .iter()
            .map(|arg| arg.replace("{workspace}", &root))
            .collect();
        let (env, pass_env) = (def.env.clone(), def.pass_env.clone());
        let started = tokio::task::spawn_blocking(move || {
            start_server(Path::new("/"), &argv, &env, &pass_env, &lock)
        })
        .await;
        let mut supervised = match started {
            Ok(Ok(supervised)) => supervised,
            Ok(Err(e)) => {
                // Its words name the program's path on this machine: the log's, not the model's.
                tracing::warn!(
                    server = name,
                    "an MCP server could not be started: {}",
                    e.message
                );
                return Err(mcp_error(format!(
                    "MCP server `{name}` could not be started (its program could not be run)"
                )));
            }
            Err(_) => {
                return Err(mcp_error(format!(
                    "MCP server `{name}` could not be started"
                )));
            }
        };
        let (Some(stdout), Some(stdin), Some(stderr)) = (
            supervised.stdout.take(),
            supervised.stdin.take(),
            supervised.stderr.take(),
        ) else {
            return Err(mcp_error(format!(
                "MCP server `{name}` could not be given its pipes"
            )));
        };
        let pipes = |e: std::io::Error| mcp_error(format!("MCP server `{name}`'s pipes: {e}"));
        let read = pipe::Receiver::from_owned_fd(stdout).map_err(pipes)?;
        let write = pipe::Sender::from_owned_fd(stdin).map_err(pipes)?;
        let stderr = pipe::Receiver::from_owned_fd(stderr).map_err(pipes)?;
        tokio::spawn(drain(name.to_string(), stderr));
        let read = super::lines::CheckedLines::new(read, MAX_MESSAGE_BYTES);
        let transport =
            AsyncRwTransport::new_client(read, write).with_max_line_length(MAX_MESSAGE_BYTES);
        let config = ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("stepwise", env!("CARGO_PKG_VERSION")),
        );
        let client = match tokio::time::timeout(START_TIMEOUT, config.serve(transport)).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => {
                let said = cut(&e.to_string(), MAX_DESCRIPTION_BYTES);
                tracing::warn!(
                    server = name,
                    "an MCP server did not start a session: {said}"
                );
                return Err(mcp_error(format!(
                    "MCP server `{name}` did not start a session (it exited, or answered something that is not MCP)"
                )));
            }
            Err(_) => {
                return Err(mcp_error(format!(
                    "MCP server `{name}` did not answer within {} s",
                    START_TIMEOUT.as_secs()
                )));
            }
        };
        tracing::debug!(server = name, "MCP server started");
        Ok(Server {
            name: name.to_string(),
            client,
            _supervised: Mutex::new(supervised),
            used: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
        })
    }

    /// Whether its session still stands (a server that exited closes its output: rmcp's
    /// service goes on, its transport does not).
    pub(super) fn alive(&self) -> bool {
        !self.client.is_closed() && !self.client.peer().is_transport_closed()
    }

    /// A use of it, until the returned guard is dropped.
    pub(super) fn begin_use(&self) -> InUse<'_> {
        self.used.fetch_add(1, Ordering::Relaxed);
        self.busy.fetch_add(1, Ordering::Relaxed);
        InUse(self)
    }

    /// How many uses it has had: an idle stop compares it with what it was.
    pub(super) fn uses(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    pub(super) fn in_use(&self) -> bool {
        self.busy.load(Ordering::Relaxed) > 0
    }

    /// The tools it lists, bounded: at most [`MAX_TOOLS`], each name, description and schema
    /// within its limits (a tool whose name is not sensible is left out).
    pub(super) async fn list_tools(&self) -> Result<Vec<McpToolInfo>, OperationError> {
        let name = &self.name;
        let mut tools = Vec::new();
        let mut cursor = None;
        for _ in 0..MAX_PAGES {
            let params = PaginatedRequestParams::default().with_cursor(cursor);
            let page = tokio::time::timeout(LIST_TIMEOUT, self.client.list_tools(Some(params)))
                .await
                .map_err(|_| {
                    mcp_error(format!(
                        "MCP server `{name}` did not list its tools within {} s",
                        LIST_TIMEOUT.as_secs()
                    ))
                })?
                .map_err(|e| self.failed(&e))?;
            for tool in page.tools {
                if tools.len() == MAX_TOOLS {
                    break;
                }
                let tool_name = tool.name.to_string();
                let sensible = !tool_name.is_empty()
                    && tool_name.len() <= MAX_NAME_BYTES
                    && !tool_name.chars().any(char::is_control);
                if !sensible {
                    continue;
                }
                let schema = Value::Object((*tool.input_schema).clone());
                let schema = if deeper_than(&schema, MAX_DEPTH)
                    || schema.to_string().len() > MAX_SCHEMA_BYTES
                {
                    serde_json::json!({"type": "object"})
                } else {
                    schema
                };
                tools.push(McpToolInfo {
                    name: tool_name,
                    description: cut(
                        tool.description.as_deref().unwrap_or(""),
                        MAX_DESCRIPTION_BYTES,
                    ),
                    input_schema: schema,
                });
            }
            cursor = page.next_cursor;
            if cursor.is_none() || tools.len() == MAX_TOOLS {
                break;
            }
        }
        Ok(tools)
    }

    /// Calls `tool` with `arguments` (a JSON object): what it returned, as text, or the
    /// server's failure.
    pub(super) async fn call(
        &self,
        tool: &str,
        arguments: Value,
    ) -> Result<OperationResult, OperationError> {
        let name = &self.name;
        let Value::Object(arguments) = arguments else {
            return Err(mcp_error("the arguments are not a JSON object".into()));
        };
        let params = CallToolRequestParams::new(tool.to_string()).with_arguments(arguments);
        let result = match tokio::time::timeout(CALL_TIMEOUT, self.client.call_tool(params)).await {
            Err(_) => {
                return Err(mcp_error(format!(
                    "MCP server `{name}` did not answer the call of `{tool}` within {} s",
                    CALL_TIMEOUT.as_secs()
                )));
            }
            // The server refused the call in JSON-RPC: its words, as the tool's error.
            Ok(Err(ServiceError::McpError(error))) => {
                return Ok(OperationResult::McpCalled {
                    content: cut(&error.message, MAX_CONTENT_BYTES),
                    is_error: true,
                    changes: Vec::new(),
                });
            }
            Ok(Err(e)) => return Err(self.failed(&e)),
            Ok(Ok(result)) => result,
        };
        let mut parts: Vec<String> = result.content.iter().map(block_text).collect();
        if parts.is_empty()
            && let Some(structured) = &result.structured_content
        {
            parts.push(structured.to_string());
        }
        Ok(OperationResult::McpCalled {
            content: cut(&parts.join("\n"), MAX_CONTENT_BYTES),
            is_error: result.is_error.unwrap_or(false),
            changes: Vec::new(),
        })
    }

    /// What the server's failure is, in words naming it (never where it runs).
    fn failed(&self, error: &ServiceError) -> OperationError {
        let name = &self.name;
        match error {
            ServiceError::TransportClosed | ServiceError::TransportSend(_) => mcp_error(format!(
                "MCP server `{name}` stopped (it exited, or closed its output)"
            )),
            ServiceError::McpError(e) => mcp_error(format!(
                "MCP server `{name}` refused: {}",
                cut(&e.message, MAX_DESCRIPTION_BYTES)
            )),
            _ => mcp_error(format!(
                "MCP server `{name}` answered something that is not what was asked"
            )),
        }
    }
}

/// One block of a tool's content as text; what is not text is named, not inlined.
fn block_text(block: &ContentBlock) -> String {
    match block {
        ContentBlock::Text(text) => text.text.clone(),
        ContentBlock::Image(image) => format!("[image, {}]", image.mime_type),
        ContentBlock::Audio(audio) => format!("[audio, {}]", audio.mime_type),
        ContentBlock::Resource(resource) => resource.get_text(),
        ContentBlock::ResourceLink(link) => format!("[resource {}]", link.uri),
        _ => "[content of a kind this engine does not show]".into(),
    }
}

/// At most `max` bytes of `text`, cut at a character, with a note when cut.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n[cut: {} bytes in all]", &text[..end], text.len())
}

/// Reads what the server writes on stderr (so that it never blocks on a full pipe), logging
/// its first lines at debug level.
async fn drain(name: String, mut stderr: pipe::Receiver) {
    let mut buffer = vec![0u8; 8192];
    let mut logged = 0;
    while let Ok(n) = stderr.read(&mut buffer).await {
        if n == 0 {
            break;
        }
        if logged < 4096 {
            logged += n;
            let text = String::from_utf8_lossy(&buffer[..n]);
            tracing::debug!(server = %name, "MCP server stderr: {}", text.trim_end());
        }
    }
}
