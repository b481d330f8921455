//! What the UI is shown, shaped for it: runs, a run's steps with their segments on the
//! timeline, operations and decisions, the approvals inbox, workflows and the cost overview.
//! Each type's TypeScript twin is generated from it (`ui/src/generated/`), never written by hand.

mod run;
mod settings;
mod time_travel;

pub use run::{
    BarSegment, ChangedStep, DecisionView, EventPage, FileChangeView, OperationView, RunFeedItem,
    RunHead, RunOverview, RunUpdate, StepBar, StepDetail, StepPage, StepRow,
};
pub use settings::{DatabaseCheckView, DatabaseSettingsView};
pub use time_travel::{ComparisonView, ForkResult, RewindView};

use serde::Serialize;
use serde_json::Value;
use stepwise_core::approvers::WhoMayAnswer;
use stepwise_core::event::Proposal;
use stepwise_core::ids::{RunId, StepId};
use stepwise_core::run::CostLine;
use stepwise_core::subrun::ParentLink;
use stepwise_engine::{LoggedEvent, RunRow, RunSummary};
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
    /// The run it was forked from, or (`is_child`) whose `workflow` step started it.
    pub parent: Option<RunId>,
    /// A child run: a step of `parent` runs it as a sub-workflow.
    pub is_child: bool,
    /// What started it, when a trigger did (`modify src/lib.rs`, `schedule 10:15`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub cause: Option<String>,
}

/// A page of the runs list, newest first: the rows a list shows, and counts for its filters.
#[derive(Debug, Clone, Serialize, TS)]
pub struct RunsPage {
    #[ts(type = "number")]
    pub offset: u64,
    /// How many runs match the filter in all.
    #[ts(type = "number")]
    pub total: u64,
    pub runs: Vec<RunListItem>,
    /// How many runs there are of each shown status (`interrupted` apart from `running`),
    /// whatever the filter.
    pub by_status: Vec<StatusCount>,
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct StatusCount {
    pub status: String,
    #[ts(type = "number")]
    pub count: u64,
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
    /// For a child run's question: the run and step that started it.
    pub parent: Option<ParentLink>,
    /// Who may answer it (`approvers`, `self_approval: false`).
    pub who_may_answer: WhoMayAnswer,
}

/// The approvals inbox, and the runs that could not be read to fill it.
#[derive(Debug, Clone, Serialize, TS)]
pub struct InboxView {
    /// Newest question first.
    pub items: Vec<ApprovalItem>,
    pub unreadable: Vec<UnreadableRun>,
}

/// A run whose questions cannot be shown: it could not be read.
#[derive(Debug, Clone, Serialize, TS)]
pub struct UnreadableRun {
    pub run_id: RunId,
    /// Why, in words.
    pub message: String,
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
    /// The machine the run's workspace is on, when it is not this one: the tree then holds the
    /// files the run recorded, not what is on disk here.
    pub elsewhere: Option<String>,
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
    /// This machine, as runs record it.
    pub host: String,
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
    /// The window fell behind and signals were lost: anything it shows (runs, cost,
    /// approvals, the workspace) may be stale, so it reloads everything.
    Lagged {},
    /// The driver of a run in this app stopped on an error: why, in the engine's words
    /// (recorded in the run too, where it ended the run).
    Failed { run_id: RunId, message: String },
}

/// A run as the list shows it, with the process driving it, if any.
pub fn run_list_item(row: &RunRow, held_by: Option<String>) -> RunListItem {
    let status = RunSummary::status_to_show(row, held_by.is_some()).to_string();
    RunListItem {
        run_id: row.run_id.clone(),
        workflow: row.workflow_name.clone(),
        workflow_path: row.workflow_path.clone(),
        workspace: row.workspace.clone(),
        status,
        trigger: row.trigger.clone(),
        started_at_ms: row.created_at_ms,
        updated_at_ms: row.updated_at_ms,
        cost_micro_usd: row.cost_micro_usd,
        held_by,
        parent: row.parent.clone(),
        is_child: row.is_child(),
        cause: row.cause.clone(),
    }
}

/// A memory agent steps share (`memory: NAME`), as the Workflows view lists it.
#[derive(Debug, Clone, Serialize, TS)]
pub struct MemoryView {
    pub name: String,
    #[ts(type = "number")]
    pub entries: u64,
    #[ts(type = "number")]
    pub updated_at_ms: i64,
}

/// One entry of a memory, with the run and step that last remembered it.
#[derive(Debug, Clone, Serialize, TS)]
pub struct MemoryEntryView {
    pub key: String,
    pub text: String,
    pub run_id: String,
    pub step: String,
    #[ts(type = "number")]
    pub updated_at_ms: i64,
}

/// One recorded event as the raw log shows it.
pub fn event_view(logged: &LoggedEvent) -> EventView {
    EventView {
        seq: logged.seq.get(),
        at_ms: logged.recorded_at_ms,
        kind: logged.event.type_name().to_string(),
        step: logged.event.step().cloned(),
        data: logged.event.to_payload().unwrap_or(Value::Null),
    }
}

/// A signal sent from the window (`Send signal`).
#[derive(Debug, Clone, Serialize, TS)]
pub struct SignalSentView {
    #[ts(type = "number")]
    pub signal_id: i64,
    /// `false`: a signal of that name and key was recorded before (this one is that one).
    pub recorded: bool,
    /// The run whose waiting step took it, if one did yet.
    pub taken_by: Option<RunId>,
}

/// Writes the TypeScript twin of every type the UI receives (and what they use) to `dir`.
pub fn export_all(dir: &std::path::Path) -> Result<(), ts_rs::ExportError> {
    RunListItem::export_all_to(dir)?;
    SignalSentView::export_all_to(dir)?;
    RunsPage::export_all_to(dir)?;
    RunOverview::export_all_to(dir)?;
    StepPage::export_all_to(dir)?;
    StepDetail::export_all_to(dir)?;
    DecisionView::export_all_to(dir)?;
    EventPage::export_all_to(dir)?;
    InboxView::export_all_to(dir)?;
    ApprovalItem::export_all_to(dir)?;
    WorkflowInfo::export_all_to(dir)?;
    WorkspaceView::export_all_to(dir)?;
    CostOverview::export_all_to(dir)?;
    AppInfo::export_all_to(dir)?;
    ReplayVerdict::export_all_to(dir)?;
    LiveSignal::export_all_to(dir)?;
    RunFeedItem::export_all_to(dir)?;
    RewindView::export_all_to(dir)?;
    ForkResult::export_all_to(dir)?;
    ComparisonView::export_all_to(dir)?;
    MemoryView::export_all_to(dir)?;
    MemoryEntryView::export_all_to(dir)?;
    DatabaseSettingsView::export_all_to(dir)?;
    DatabaseCheckView::export_all_to(dir)?;
    stepwise_core::workflow::StepType::export_all_to(dir)?;
    stepwise_core::event::Resolution::export_all_to(dir)?;
    crate::error::AppError::export_all_to(dir)?;
    Ok(())
}
