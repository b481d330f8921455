//! What the UI is shown, shaped for it: runs, a run's steps with their segments on the
//! timeline, operations and decisions, the approvals inbox, workflows and the cost overview.
//! Each type's TypeScript twin is generated from it (`ui/src/generated/`), never written by hand.

mod run;

pub use run::{event_view, run_detail, run_list_item};

use serde::Serialize;
use serde_json::Value;
use stepwise_core::event::{DecisionMode, Proposal};
use stepwise_core::ids::{RunId, StepId};
use stepwise_core::llm::Budget;
use stepwise_core::run::{CostLine, CostReport, StepStatus, StepTiming};
use ts_rs::TS;

/// A run as the list shows it.
#[derive(Debug, Clone, Serialize, TS)]
pub struct RunListItem {
    pub run_id: RunId,
    pub workflow: String,
    pub workflow_path: String,
    pub workspace: String,
    /// `running`, `awaiting_approval`, `paused`, `succeeded`, `failed`, `cancelled`, or `interrupted` (its
    /// driver died; it waits for resume).
    pub status: String,
    /// What started it (`cli`, `app`) and who.
    pub trigger: String,
    #[ts(type = "number")]
    pub started_at_ms: i64,
    #[ts(type = "number")]
    pub updated_at_ms: i64,
    #[ts(type = "number")]
    pub cost_micro_usd: u64,
    /// The process driving it (`pid 4242`), if one is.
    pub held_by: Option<String>,
}

/// A part of a step's life on the timeline.
#[derive(Debug, Clone, Serialize, TS)]
pub struct Segment {
    /// `executing` (an operation running, or the step deciding) or `waiting` (for a person).
    pub kind: String,
    #[ts(type = "number")]
    pub start_ms: i64,
    /// `None` while it lasts.
    #[ts(type = "number | null")]
    pub end_ms: Option<i64>,
}

/// One operation of a step: exactly what was asked and what came back.
#[derive(Debug, Clone, Serialize, TS)]
pub struct OperationView {
    #[ts(type = "number")]
    pub seq: u64,
    pub request: Value,
    /// The recorded result (`None` while it runs, or when it failed).
    pub result: Option<Value>,
    pub error: Option<Value>,
    #[ts(type = "number")]
    pub started_at_ms: i64,
    #[ts(type = "number | null")]
    pub ended_at_ms: Option<i64>,
}

/// One step of a run.
#[derive(Debug, Clone, Serialize, TS)]
pub struct StepView {
    pub id: StepId,
    /// Its type (`edit_file`, `prompt`, …).
    pub kind: String,
    pub status: StepStatus,
    pub attempt: u32,
    pub needs: Vec<StepId>,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub reason: Option<String>,
    pub timing: StepTiming,
    pub segments: Vec<Segment>,
    pub operations: Vec<OperationView>,
    /// Model calls' tokens and cost.
    pub cost: CostLine,
}

/// A person's (or a rule's) decision on a proposal.
#[derive(Debug, Clone, Serialize, TS)]
pub struct DecisionView {
    #[ts(type = "number")]
    pub seq: u64,
    #[ts(type = "number")]
    pub at_ms: i64,
    pub step: StepId,
    pub approved: bool,
    pub by: String,
    /// Manual, or the rule that decided (approvals only).
    pub mode: Option<DecisionMode>,
    pub proposal_hash: Option<String>,
    /// The hash of exactly what was approved (the edited proposal when it was edited).
    pub approved_hash: Option<String>,
    pub edited: bool,
    pub comment: Option<String>,
    /// Why it was rejected.
    pub reason: Option<String>,
}

/// A run in full.
#[derive(Debug, Clone, Serialize, TS)]
pub struct RunDetail {
    pub run: RunListItem,
    pub inputs: Value,
    pub started_by: String,
    pub steps: Vec<StepView>,
    pub decisions: Vec<DecisionView>,
    pub pending: Vec<ApprovalItem>,
    pub budget: Option<Budget>,
    pub cost: CostReport,
    #[ts(type = "number")]
    pub last_seq: u64,
    /// Why the run failed or what it waits for, in words.
    pub note: Option<String>,
}

/// One event of the raw log.
#[derive(Debug, Clone, Serialize, TS)]
pub struct EventView {
    #[ts(type = "number")]
    pub seq: u64,
    #[ts(type = "number")]
    pub at_ms: i64,
    /// `StepStarted`, `ApprovalRequested`, …
    pub kind: String,
    pub step: Option<StepId>,
    pub data: Value,
}

/// A question waiting for a person.
#[derive(Debug, Clone, Serialize, TS)]
pub struct ApprovalItem {
    pub run_id: RunId,
    pub workflow: String,
    pub workspace: String,
    pub step: StepId,
    pub attempt: u32,
    pub proposal: Proposal,
    pub proposal_hash: String,
    /// Why it waits (the rule or default that asks).
    pub reason: String,
    #[ts(type = "number")]
    pub requested_seq: u64,
    #[ts(type = "number")]
    pub requested_at_ms: i64,
}

/// A workflow file and whether it checks.
#[derive(Debug, Clone, Serialize, TS)]
pub struct WorkflowInfo {
    pub path: String,
    /// `workspace` (its `workflows/` folder) or `bundled` (the examples that come with the app).
    pub source: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub steps: Option<u32>,
    pub inputs: Vec<WorkflowInput>,
    /// Every problem, with line and step.
    pub errors: Vec<WorkflowProblem>,
}

/// An input a run of the workflow takes.
#[derive(Debug, Clone, Serialize, TS)]
pub struct WorkflowInput {
    pub name: String,
    /// `string`, `integer`, `number`, `boolean`, `list`, `object`.
    pub kind: String,
    pub default: Option<Value>,
    pub description: Option<String>,
}

/// One validation error of a workflow.
#[derive(Debug, Clone, Serialize, TS)]
pub struct WorkflowProblem {
    pub line: Option<u32>,
    pub column: Option<u32>,
    pub step: Option<String>,
    pub message: String,
}

/// A file or folder of the workspace.
#[derive(Debug, Clone, Serialize, TS)]
pub struct FileNode {
    /// Relative to the workspace, `/`-separated.
    pub path: String,
    pub name: String,
    pub dir: bool,
    #[ts(type = "number")]
    pub size: u64,
    /// Runs touched it (read or wrote it).
    pub touched: bool,
    /// An edit of it waits for approval.
    pub pending_edit: bool,
    pub children: Vec<FileNode>,
}

/// The workspace view of one run's workspace.
#[derive(Debug, Clone, Serialize, TS)]
pub struct WorkspaceView {
    pub root: String,
    pub run_id: Option<RunId>,
    pub tree: Vec<FileNode>,
    /// Entries left out (the tree stops at a few thousand).
    #[ts(type = "number")]
    pub truncated: u64,
}

/// Cost across runs.
#[derive(Debug, Clone, Serialize, TS)]
pub struct CostOverview {
    pub total: CostLine,
    pub by_run: Vec<RunCost>,
    pub by_model: Vec<NamedCost>,
    pub by_day: Vec<NamedCost>,
    /// Per step, of the run asked about (or the newest run with model calls).
    pub run_id: Option<RunId>,
    pub by_step: Vec<NamedCost>,
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct RunCost {
    pub run_id: RunId,
    pub workflow: String,
    #[ts(type = "number")]
    pub started_at_ms: i64,
    pub cost: CostLine,
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct NamedCost {
    pub name: String,
    pub cost: CostLine,
}

/// What the app runs on, for the status bar and empty states.
#[derive(Debug, Clone, Serialize, TS)]
pub struct AppInfo {
    pub db_path: String,
    pub user: String,
    /// The workspace new runs use by default (the demo workspace on first start).
    pub default_workspace: String,
    pub version: String,
}

/// A replay's verdict.
#[derive(Debug, Clone, Serialize, TS)]
pub struct ReplayVerdict {
    pub matches: bool,
    /// What it was replayed against.
    pub against: String,
    #[ts(type = "number")]
    pub events: u64,
    #[ts(type = "number")]
    pub decisions: u64,
    /// The first divergence: its seq, and what the core decided against what the log holds.
    #[ts(type = "number | null")]
    pub diverged_at: Option<u64>,
    pub expected: Option<Value>,
    pub recorded: Option<Value>,
    pub message: String,
}

/// A live signal: something changed; the UI reloads what it shows of it.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LiveSignal {
    /// A run was written to (a new run, a new event).
    Run { run_id: RunId },
    /// The approvals inbox changed.
    Approvals {},
    /// A new question waits (for a notification).
    Asked { run_id: RunId, step: StepId },
    /// Files of a watched workspace changed.
    Workspace { root: String },
}

/// A run's event or a running model call's streamed text, as `follow_run` sends them.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RunFeedItem {
    Event {
        event: EventView,
    },
    /// Text a model is writing, or a command is printing, for a step (not recorded; the
    /// final reply or output is).
    Progress {
        step: StepId,
        text: String,
    },
}

/// Writes the TypeScript twin of every type the UI receives (and what they use) to `dir`.
pub fn export_all(dir: &std::path::Path) -> Result<(), ts_rs::ExportError> {
    RunListItem::export_all_to(dir)?;
    RunDetail::export_all_to(dir)?;
    EventView::export_all_to(dir)?;
    ApprovalItem::export_all_to(dir)?;
    WorkflowInfo::export_all_to(dir)?;
    WorkspaceView::export_all_to(dir)?;
    CostOverview::export_all_to(dir)?;
    AppInfo::export_all_to(dir)?;
    ReplayVerdict::export_all_to(dir)?;
    LiveSignal::export_all_to(dir)?;
    RunFeedItem::export_all_to(dir)?;
    crate::error::AppError::export_all_to(dir)?;
    Ok(())
}
