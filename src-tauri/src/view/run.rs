//! What the Run view is shown, shaped so that a run of tens of thousands of steps opens fast
//! and follows cheaply: first its header and every step as a small bar of the timeline; then
//! only what is on screen (a page of the steps table, the chosen step in full, a page of the
//! raw log); and while it runs, the steps each batch of new events changed.

use serde::Serialize;
use serde_json::Value;
use stepwise_core::checkpoint::FileChange;
use stepwise_core::event::DecisionMode;
use stepwise_core::ids::{RunId, StepId};
use stepwise_core::llm::Budget;
use stepwise_core::run::ConversationTurn;
use stepwise_core::run::{CostLine, Segment, SegmentKind, StepStatus, StepTiming};
use ts_rs::TS;

use super::{ApprovalItem, EventView, RunListItem};

/// What changes as a run goes on: the header, what waits, the counts.
#[derive(Debug, Clone, Serialize, TS)]
pub struct RunHead {
    pub run: RunListItem,
    /// Why the run failed, in words: its failed steps and their errors.
    pub note: Option<String>,
    pub pending: Vec<ApprovalItem>,
    /// Steps whose operation was cut off by a crash, waiting for a person to resolve them.
    pub unknown: Vec<StepId>,
    pub budget: Option<Budget>,
    /// What its model calls cost so far.
    pub cost: CostLine,
    #[ts(type = "number")]
    pub last_seq: u64,
    #[ts(type = "number")]
    pub decisions: u64,
    #[ts(type = "number")]
    pub steps: u64,
}

/// One step on the timeline, small because a run may have tens of thousands: its id, its
/// status and its segments (`[id, status, segments]`), in workflow order.
#[derive(Debug, Clone, Serialize, TS)]
pub struct StepBar(pub StepId, pub StepStatus, pub Vec<BarSegment>);

/// A segment of a bar: `[kind, start, end]`, in milliseconds since the run started (`end` is
/// null while it lasts). Tuples and offsets keep a 10,000-step overview near half a megabyte.
#[derive(Debug, Clone, Serialize, TS)]
pub struct BarSegment(
    pub SegmentKind,
    #[ts(type = "number")] pub i64,
    #[ts(type = "number | null")] pub Option<i64>,
);

impl BarSegment {
    pub fn of(segment: &Segment, t0: i64) -> BarSegment {
        BarSegment(
            segment.kind,
            segment.start_ms - t0,
            segment.end_ms.map(|end| end - t0),
        )
    }
}

/// A run as the Run view first shows it: the header and every step's bar.
#[derive(Debug, Clone, Serialize, TS)]
pub struct RunOverview {
    pub head: RunHead,
    pub inputs: Value,
    pub started_by: String,
    /// The machine it was started on, where its workspace is (absent in runs recorded before
    /// machines were).
    pub host: Option<String>,
    /// It belongs to another machine than the app's: a process there drives it; the app
    /// follows it and sends it decisions.
    pub elsewhere: bool,
    pub bars: Vec<StepBar>,
    /// The compensations among the steps, each with the step it undoes: the timeline marks
    /// them apart.
    pub compensations: Vec<(StepId, StepId)>,
}

/// One row of the steps table.
#[derive(Debug, Clone, Serialize, TS)]
pub struct StepRow {
    /// Its place in the workflow (and in `RunOverview::bars`).
    pub index: u32,
    pub id: StepId,
    /// Its type (`edit_file`, `prompt`, …).
    pub kind: String,
    pub status: StepStatus,
    pub attempt: u32,
    pub timing: StepTiming,
    pub segments: Vec<Segment>,
    /// Model calls' tokens and cost.
    pub cost: CostLine,
    /// A `workflow` step: the child run it started last.
    pub child_run: Option<RunId>,
    /// A compensation (a step that undoes another, run because the run failed or was
    /// cancelled): the step it undoes.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub compensates: Option<StepId>,
}

/// The rows of the steps table a list shows, from `offset`, of `total` that match its filter.
#[derive(Debug, Clone, Serialize, TS)]
pub struct StepPage {
    pub offset: u32,
    pub total: u32,
    pub rows: Vec<StepRow>,
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
    /// Cut off by a crash: nobody knows what it did until a person resolves it.
    pub outcome_unknown: bool,
    /// How a person resolved an unknown outcome (`retry`, `skip`, `mark_done`), and who.
    pub resolved: Option<String>,
    #[ts(type = "number")]
    pub started_at_ms: i64,
    #[ts(type = "number | null")]
    pub ended_at_ms: Option<i64>,
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

/// One step in full, for the step panel.
#[derive(Debug, Clone, Serialize, TS)]
pub struct StepDetail {
    pub row: StepRow,
    pub needs: Vec<StepId>,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub reason: Option<String>,
    pub operations: Vec<OperationView>,
    pub decisions: Vec<DecisionView>,
    /// An agent step's conversation, turn by turn (empty for other steps).
    pub conversation: Vec<ConversationTurn>,
    /// What its operations changed in the workspace's files, in order, each with its diff
    /// when it is text.
    pub file_changes: Vec<FileChangeView>,
}

/// One change a step's operation made to a workspace file.
#[derive(Debug, Clone, Serialize, TS)]
pub struct FileChangeView {
    pub change: FileChange,
    /// A unified diff, when both versions are text small enough to compare.
    pub diff: Option<String>,
}

/// A step a batch of events changed: its row (with its segments, which make its bar).
#[derive(Debug, Clone, Serialize, TS)]
pub struct ChangedStep {
    pub row: StepRow,
}

/// What a batch of new events changed, for the Run view to apply to what it shows.
#[derive(Debug, Clone, Serialize, TS)]
pub struct RunUpdate {
    pub head: RunHead,
    pub changed: Vec<ChangedStep>,
    /// The run's steps changed in number (an approved plan's steps joined): read it again.
    pub reshaped: bool,
    /// When the batch's first event was recorded: how long the update took to show is measured
    /// from it (the longest any of its events waited).
    #[ts(type = "number")]
    pub first_at_ms: i64,
}

/// What `follow_run` sends: what new events changed, or text a step is producing.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RunFeedItem {
    Update {
        update: Box<RunUpdate>,
    },
    /// Text a model is writing, or a command is printing, for a step (not recorded; the
    /// final reply or output is).
    Progress {
        step: StepId,
        text: String,
    },
}

/// A page of the raw log: the events matching the filter after the seq asked for, and how far
/// the log was read to find them (the next page starts there).
#[derive(Debug, Clone, Serialize, TS)]
pub struct EventPage {
    pub events: Vec<EventView>,
    #[ts(type = "number")]
    pub read_to: u64,
    /// The log's end was reached.
    pub end: bool,
}
