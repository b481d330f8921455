//! MCP servers for agent steps: defined in the user's settings (`mcp_servers:`), started for a
//! run when one of its agents first needs one (under a supervisor, as commands are: nothing
//! survives the engine), spoken to with the official Rust SDK (`rmcp`) over the server's stdin
//! and stdout, and let go when idle or when the run finishes. The `mcp_list_tools` and `mcp_call` executors are here;
//! `server.rs` is one running server.
//!
//! Everything a server sends is bounded before it is recorded: the tools it lists (how many,
//! their names, descriptions and schemas), what a call returns, and how long anything takes;
//! its output ends at the first line that is not a JSON message (`lines.rs`).
//! A server that does not start, crashes or answers garbage is an error of kind `Mcp` naming
//! the server and what went wrong, which the model is told (never where it runs: the details
//! go to the engine's log). A call that is cancelled or times out takes its server down with
//! it (its supervisor kills the tree), so that nothing of it goes on; the next call starts it
//! again. Servers run in `/`, not in the workspace, so that a project's own files (an
//! `.npmrc`, a `node_modules/.bin`, a `uv.toml`) cannot choose the program that gets the
//! user's settings' variables: an argument `{workspace}` is the workspace's path.

pub(crate) mod def;
mod lines;
mod server;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, Weak};
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
    /// Servers start one at a time: two steps asking for one server get the same.
    starting: tokio::sync::Mutex<()>,
}

impl McpServers {
    pub(crate) fn new(settings: Option<PathBuf>, named: bool) -> Arc<McpServers> {
        Arc::new(McpServers {
            settings: settings.map(|path| UserSettings { path, named }),
            running: Mutex::new(HashMap::new()),
            starting: tokio::sync::Mutex::new(()),
        })
    }

    fn running(&self, key: &(RunId, String)) -> Option<Arc<Server>> {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .filter(|server| server.alive())
            .cloned()
    }

    /// Server `name` of `ctx`'s run, started if it is not running.
    async fn server(
        self: &Arc<Self>,
        ctx: &OpContext,
        name: &str,
    ) -> Result<Arc<Server>, OperationError> {
        let key = (ctx.run_id.clone(), name.to_string());
        if let Some(server) = self.running(&key) {
            return Ok(server);
        }
        let _starting = self.starting.lock().await;
        if let Some(server) = self.running(&key) {
            return Ok(server);
        }
        let settings = self.settings.clone();
        let root = ctx.workspace.root().to_path_buf();
        let wanted = name.to_string();
        let run_id = ctx.run_id.clone();
        let def = tokio::task::spawn_blocking(move || match Settings::load(settings.as_ref(), &root) {
            Ok(settings) => Ok(settings.mcp_server(&wanted).cloned()),
            Err(e) => {
                tracing::warn!(run_id = %run_id, server = %wanted, "the settings for an MCP server cannot be read: {e}");
                Err(())
            }
        })
        .await;
        let def = match def {
            Ok(Ok(Some(def))) => def,
            Ok(Ok(None)) => {
                return Err(mcp_error(format!(
                    "MCP server `{name}` is not defined in the user's settings (`mcp_servers:`)"
                )));
            }
            _ => {
                return Err(mcp_error(format!(
                    "MCP server `{name}` was not started: the settings could not be read (the engine's log says why)"
                )));
            }
        };
        // Held by the server's supervisor while anything of it runs, as a command's is: a
        // recovering engine waits for it to be gone before asking a person about a lost call.
        let lock = ctx.commands_lock.make().map_err(|e| {
            tracing::warn!(run_id = %ctx.run_id, server = name, "the run's commands lock: {e}");
            mcp_error(format!(
                "MCP server `{name}` was not started: the run's lock file could not be made"
            ))
        })?;
        let server = Arc::new(Server::start(name, &def, &ctx.workspace, lock).await?);
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, Arc::clone(&server));
        Ok(server)
    }

    /// Lets go of every server of `run`, which has finished: none is left running until its
    /// idle stop (each one's tree is killed once nothing uses it).
    pub(crate) fn stop_run(&self, run: &RunId) {
        let mut stopped = Vec::new();
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(of, _), server| {
                let keep = of != run;
                if !keep {
                    stopped.push(Arc::clone(server));
                }
                keep
            });
        // Dropped here, outside the lock.
        drop(stopped);
    }

    /// Takes `server` of `run` out of service (its tree is killed once its last user lets
    /// go): after a call cancelled or timed out, nothing of it may go on.
    fn discard(&self, run: &RunId, name: &str, server: &Arc<Server>) {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (run.clone(), name.to_string());
        if running
            .get(&key)
            .is_some_and(|now| Arc::ptr_eq(now, server))
        {
            running.remove(&key);
        }
    }

    /// Runs `work` with server `name` of `ctx`'s run, started if need be; the server is
    /// stopped after [`IDLE`] without use, and at once if `work` is cancelled or fails to
    /// answer in time (`Err` of kind `Cancelled`, or `Mcp` for a timeout).
    async fn with_server<T, F, W>(
        self: &Arc<Self>,
        ctx: &OpContext,
        name: &str,
        work: W,
    ) -> Result<T, OperationError>
    where
        W: FnOnce(Arc<Server>) -> F,
        F: Future<Output = Result<T, OperationError>>,
    {
        let mut cancel = ctx.cancel.clone();
        let cancelled = || {
            OperationError::new(
                OperationErrorKind::Cancelled,
                format!("the use of MCP server `{name}` was cancelled"),
            )
        };
        let server = tokio::select! {
            server = self.server(ctx, name) => server?,
            _ = cancel.wait_for(|cancelled| *cancelled) => return Err(cancelled()),
        };
        let in_use = server.begin_use();
        let done = tokio::select! {
            done = work(Arc::clone(&server)) => done,
            _ = cancel.wait_for(|cancelled| *cancelled) => Err(cancelled()),
        };
        drop(in_use);
        let gone_wrong = matches!(&done, Err(e) if e.kind == OperationErrorKind::Cancelled || e.kind == OperationErrorKind::Mcp);
        if gone_wrong {
            self.discard(&ctx.run_id, name, &server);
        } else {
            self.stop_when_idle(ctx.run_id.clone(), name.to_string(), &server);
        }
        done
    }

    /// Stops `server` of `run` if it is still unused [`IDLE`] from now.
    fn stop_when_idle(self: &Arc<Self>, run: RunId, name: String, server: &Arc<Server>) {
        let uses = server.uses();
        let servers = Arc::downgrade(self);
        let server: Weak<Server> = Arc::downgrade(server);
        tokio::spawn(async move {
            tokio::time::sleep(IDLE).await;
            let (Some(servers), Some(server)) = (servers.upgrade(), server.upgrade()) else {
                return;
            };
            if server.uses() == uses && !server.in_use() {
                servers.discard(&run, &name, &server);
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
            let tools = servers
                .with_server(
                    &ctx,
                    &name,
                    |server| async move { server.list_tools().await },
                )
                .await?;
            Ok(OperationResult::McpToolsListed { tools })
        })
    }

    fn after_crash(&self) -> AfterCrash {
        AfterCrash::Repeat
    }
}

/// Calls a server's tool: what it does is the server's, so after a crash a person says, once
/// nothing of the server that took the call can still run.
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
            let call = servers.with_server(&ctx, &name, |server| async move {
                server.call(&tool, arguments).await
            });
            crate::checkpoint::around(ctx.checkpoint.as_ref(), "the MCP call", call).await
        })
    }

    fn after_crash(&self) -> AfterCrash {
        AfterCrash::AskPerson
    }

    fn recover(&self, ctx: OpContext, _request: OperationRequest) -> BoxFuture<'static, Recovery> {
        // The server held the run's commands lock while it ran, and died with the engine.
        Box::pin(crate::exec::kinds::unknown_once_gone(
            ctx,
            "an MCP server's call",
        ))
    }
}
