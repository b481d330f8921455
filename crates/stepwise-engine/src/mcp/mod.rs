//! MCP servers for agent steps: defined in the user's settings (`mcp_servers:`), started for a
//! run when one of its agents first needs one (under a supervisor, as commands are: nothing
//! survives the engine), spoken to with the official Rust SDK (`rmcp`) over the server's stdin
//! and stdout, and let go when idle. The `mcp_list_tools` and `mcp_call` executors are here;
//! `server.rs` is one running server.
//!
//! Everything a server sends is bounded before it is recorded: the tools it lists (how many,
//! their names, descriptions and schemas), what a call returns, and how long anything takes.
//! A server that does not start, crashes or answers garbage is an error of kind `Mcp` naming
//! the server and what went wrong, which the model is told.

pub(crate) mod def;
mod server;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use stepwise_core::ids::RunId;
use stepwise_core::operation::{
    OperationError, OperationErrorKind, OperationRequest, OperationResult,
};

use crate::exec::{AfterCrash, BoxFuture, Executor, OpContext, Outcome, Recovery};
use crate::settings::{Settings, UserSettings};
use def::McpServerDef;
use server::Server;

/// How long a server may sit unused before it is stopped.
const IDLE: Duration = Duration::from_secs(120);

/// The servers running for this engine's runs, by run and name.
pub(crate) struct McpServers {
    settings: Option<UserSettings>,
    running: Mutex<HashMap<(RunId, String), Arc<Server>>>,
}

impl McpServers {
    pub(crate) fn new(settings: Option<PathBuf>, named: bool) -> Arc<McpServers> {
        Arc::new(McpServers {
            settings: settings.map(|path| UserSettings { path, named }),
            running: Mutex::new(HashMap::new()),
        })
    }

    /// Server `name` of `ctx`'s run, started if it is not running.
    async fn server(
        self: &Arc<Self>,
        ctx: &OpContext,
        name: &str,
    ) -> Result<Arc<Server>, OperationError> {
        let key = (ctx.run_id.clone(), name.to_string());
        let running = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .filter(|server| server.alive())
            .cloned();
        if let Some(server) = running {
            return Ok(server);
        }
        let settings = self.settings.clone();
        let root = ctx.workspace.root().to_path_buf();
        let name_owned = name.to_string();
        let def = tokio::task::spawn_blocking(move || {
            let settings = Settings::load(settings.as_ref(), &root)
                .map_err(|e| mcp_error(format!("the settings cannot be read: {e}")))?;
            settings.mcp_server(&name_owned).cloned().ok_or_else(|| {
                mcp_error(format!(
                    "MCP server `{name_owned}` is not defined in your settings (`mcp_servers:`)"
                ))
            })
        })
        .await
        .map_err(|e| mcp_error(format!("the settings could not be read: {e}")))??;
        let server = Arc::new(Server::start(name, &def, &ctx.workspace).await?);
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, Arc::clone(&server));
        Ok(server)
    }

    /// Stops `server` of `run` once it has been idle for [`IDLE`].
    fn stop_when_idle(self: &Arc<Self>, run: RunId, name: String, server: &Arc<Server>) {
        let used = server.touch();
        let servers = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep(IDLE).await;
            let Some(servers) = servers.upgrade() else {
                return;
            };
            let mut running = servers
                .running
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if running
                .get(&(run.clone(), name.clone()))
                .is_some_and(|server| server.last_used() == used)
            {
                running.remove(&(run, name));
            }
        });
    }
}

fn mcp_error(message: String) -> OperationError {
    OperationError::new(OperationErrorKind::Mcp, message)
}

/// Lists a server's tools: nothing the engine answers for, so listed again after a crash.
pub(crate) struct McpListTools(pub(crate) Arc<McpServers>);

impl Executor for McpListTools {
    fn perform(&self, ctx: OpContext, request: OperationRequest) -> BoxFuture<'static, Outcome> {
        let servers = Arc::clone(&self.0);
        Box::pin(async move {
            let OperationRequest::McpListTools { server: name } = request else {
                return Err(mcp_error("internal error: not an mcp_list_tools".into()));
            };
            let server = servers.server(&ctx, &name).await?;
            let tools = server.list_tools().await;
            servers.stop_when_idle(ctx.run_id.clone(), name, &server);
            Ok(OperationResult::McpToolsListed { tools: tools? })
        })
    }

    fn after_crash(&self) -> AfterCrash {
        AfterCrash::Repeat
    }
}

/// Calls a server's tool: what it does is the server's, so after a crash a person says.
pub(crate) struct McpCall(pub(crate) Arc<McpServers>);

impl Executor for McpCall {
    fn perform(&self, ctx: OpContext, request: OperationRequest) -> BoxFuture<'static, Outcome> {
        let servers = Arc::clone(&self.0);
        Box::pin(async move {
            let OperationRequest::McpCall {
                server: name,
                tool,
                arguments,
            } = request
            else {
                return Err(mcp_error("internal error: not an mcp_call".into()));
            };
            let mut cancel = ctx.cancel.clone();
            let server = servers.server(&ctx, &name).await?;
            let called = tokio::select! {
                called = server.call(&tool, arguments) => called,
                _ = cancel.wait_for(|cancelled| *cancelled) => Err(OperationError::new(
                    OperationErrorKind::Cancelled,
                    format!("the call of `{name}.{tool}` was cancelled"),
                )),
            };
            servers.stop_when_idle(ctx.run_id.clone(), name, &server);
            called
        })
    }

    fn after_crash(&self) -> AfterCrash {
        AfterCrash::AskPerson
    }

    fn recover(&self, _ctx: OpContext, _request: OperationRequest) -> BoxFuture<'static, Recovery> {
        // The server died with the engine that started it (its supervisor saw to that).
        Box::pin(async { Recovery::Unknown })
    }
}
