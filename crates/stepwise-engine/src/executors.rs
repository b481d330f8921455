//! The table of executors: the one place an operation kind is mapped to what performs it, for
//! dispatch and for recovery. Built once per engine; the driver knows no kind.

use stepwise_core::operation::OperationRequest;

use crate::exec::Executor;
use crate::exec::kinds::{ListFiles, ReadBatch, ReadFile, RunCommand, SearchFiles, WriteFile};
use crate::llm::LlmCall;
use crate::mcp::{McpCall, McpListTools, McpServers};
use crate::memory::{Recall, Remember};
use crate::signals::WaitSignal;
use crate::subrun::RunWorkflow;

/// The executor of every operation kind.
pub(crate) struct Executors {
    read: ReadFile,
    list: ListFiles,
    search: SearchFiles,
    batch: ReadBatch,
    write: WriteFile,
    command: RunCommand,
    llm: LlmCall,
    mcp_list: McpListTools,
    mcp_call: McpCall,
    child_run: RunWorkflow,
    remember: Remember,
    recall: Recall,
    wait_signal: WaitSignal,
}

impl Executors {
    /// `settings`: the user's settings file (MCP servers are read from it when started).
    pub(crate) fn new(settings: Option<std::path::PathBuf>, settings_named: bool) -> Executors {
        let mcp = McpServers::new(settings, settings_named);
        Executors {
            mcp_list: McpListTools(std::sync::Arc::clone(&mcp)),
            mcp_call: McpCall(mcp),
            read: ReadFile,
            list: ListFiles,
            search: SearchFiles,
            batch: ReadBatch,
            write: WriteFile,
            command: RunCommand,
            llm: LlmCall::new(),
            child_run: RunWorkflow,
            remember: Remember,
            recall: Recall,
            wait_signal: WaitSignal,
        }
    }

    /// Lets go of what the executors keep for `run`, which has finished (its MCP servers).
    pub(crate) fn run_finished(&self, run: &stepwise_core::ids::RunId) {
        self.mcp_call.0.stop_run(run);
    }

    /// The one place an operation kind is mapped to what performs it.
    pub(crate) fn for_request(&self, request: &OperationRequest) -> &dyn Executor {
        match request {
            OperationRequest::ReadFile { .. } => &self.read,
            OperationRequest::WriteFile { .. } => &self.write,
            OperationRequest::RunCommand(_) => &self.command,
            OperationRequest::LlmCall(_) => &self.llm,
            OperationRequest::ListFiles { .. } => &self.list,
            OperationRequest::SearchFiles { .. } => &self.search,
            OperationRequest::ReadBatch { .. } => &self.batch,
            OperationRequest::McpListTools { .. } => &self.mcp_list,
            OperationRequest::McpCall { .. } => &self.mcp_call,
            OperationRequest::RunWorkflow { .. } => &self.child_run,
            OperationRequest::Remember { .. } => &self.remember,
            OperationRequest::Recall { .. } => &self.recall,
            OperationRequest::WaitSignal { .. } => &self.wait_signal,
        }
    }
}
