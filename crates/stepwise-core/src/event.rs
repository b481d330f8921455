//! Events: immutable, past-tense facts in a run's log.
//!
//! Two kinds are told apart, and replay depends on it:
//! - **inputs** come from the world or from people: a run was started, an operation returned,
//!   a person approved, a retry timer fired, someone asked to pause or cancel;
//! - **decisions** are what the core concludes from the inputs so far: a step started or was
//!   skipped, an operation was requested, an approval was asked for, a step or the run ended.
//!
//! The engine appends every input followed by exactly the decisions the core takes from it, so
//! replay can re-derive every decision and compare.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::checkpoint::{CheckpointSpec, FileChange, FileVersion};
use crate::ids::{EventSeq, RunId, StepId};
use crate::llm::{Budget, CostEstimate, LlmRequest, ModelSpec};
use crate::operation::{CommandRequest, OperationError, OperationRequest, OperationResult};
use crate::policy::RuleSpec;

/// The schema version every event is written with today. Older versions are upcast on read.
pub const EVENT_SCHEMA_VERSION: u32 = 1;

/// A fact in a run's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    // ---- inputs ----
    RunStarted(RunStarted),
    /// `op` is the seq of the `OperationStarted` event it answers.
    OperationSucceeded {
        op: EventSeq,
        result: OperationResult,
    },
    OperationFailed {
        op: EventSeq,
        error: OperationError,
    },
    /// After a crash: the command started but its result was never recorded. A person decides.
    OperationOutcomeUnknown {
        op: EventSeq,
    },
    OperationResolved {
        op: EventSeq,
        resolution: Resolution,
        by: String,
    },
    /// A person's approval (`mode: manual`), or, as a decision, a policy rule's (`mode: rule`).
    ApprovalGranted(ApprovalGranted),
    ApprovalRejected {
        step: StepId,
        attempt: u32,
        proposal_hash: String,
        by: String,
        /// The machine the person decided on (absent in decisions recorded before machines
        /// were, and in a rule's).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host: Option<String>,
        reason: String,
    },
    RetryDue {
        step: StepId,
        attempt: u32,
    },
    /// The run (`step` absent) or a step has been going for longer than its
    /// `alert.slower_than`: a person was told. Recorded once per run or step; changes nothing
    /// of what the run does.
    AlertRaised {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<StepId>,
        slower_than_ms: u64,
        elapsed_ms: u64,
    },
    /// The file a pending edit would change is no longer as it was when the edit was proposed
    /// (it changed, appeared or vanished), so the proposal can no longer be approved. The step
    /// proposes anew against the file as it is now.
    ProposalVoided {
        step: StepId,
        attempt: u32,
        proposal_hash: String,
        path: String,
        /// The file's hash when this was noticed; `None`: it does not exist.
        found_hash: Option<String>,
    },
    RunPauseRequested {
        by: String,
    },
    RunResumeRequested {
        by: String,
    },
    RunCancelRequested {
        by: String,
    },
    /// The engine could not go on with the run (its log could not be written, the workspace
    /// is gone, the run's state refused an input): the run ends failed, and `message` says why
    /// in the engine's words. Nothing is decided after it.
    RunAborted {
        message: String,
    },
    /// `stepwise continue --all`: every step waiting at a breakpoint starts, and the run
    /// pauses before no step from now on.
    BreakpointsCleared {
        by: String,
    },
    /// A person approved putting the workspace's files back as they were when a step started
    /// (`stepwise rewind`). Recorded before any file is touched; [`Event::RewindFinished`]
    /// follows with what was done. Changes nothing in the run's steps, so a run of any status
    /// can be rewound.
    RewindApproved(RewindApproved),
    /// What a rewind did to the files: each change it made (recorded as an operation's are, so
    /// that a later rewind sees them) and the files it could not put back.
    RewindFinished {
        restored: Vec<FileChange>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        failed: Vec<RewindFailure>,
    },

    // ---- decisions ----
    StepStarted {
        step: StepId,
        attempt: u32,
    },
    StepSkipped {
        step: StepId,
        reason: String,
    },
    ApprovalRequested {
        step: StepId,
        attempt: u32,
        proposal: Proposal,
        proposal_hash: String,
        /// Why a person must decide: the policy rule, or the default for the kind.
        reason: String,
    },
    OperationStarted {
        step: StepId,
        attempt: u32,
        request: OperationRequest,
    },
    StepRetryScheduled {
        step: StepId,
        /// The attempt that will run next.
        attempt: u32,
        delay_ms: u64,
        error: String,
    },
    StepSucceeded {
        step: StepId,
        attempt: u32,
        output: Value,
    },
    /// A step with `for_each` runs once per item: its iterations (`step[0]`, `step[1]`, …) join
    /// the run, and the step ends when they have.
    StepExpanded {
        step: StepId,
        items: Vec<Value>,
    },
    /// A round of a step that repeats ended with `output`, and the step runs again (round
    /// `round + 1`): `until` was not true yet and rounds are left.
    StepRoundEnded {
        step: StepId,
        round: u32,
        output: Value,
    },
    StepFailed {
        step: StepId,
        attempt: u32,
        error: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<Value>,
    },
    StepRejected {
        step: StepId,
        by: String,
        reason: String,
    },
    StepCancelled {
        step: StepId,
    },
    /// The run failed or was cancelled after steps with a `compensate` succeeded: their
    /// compensations join the run, to run one after the other in this order (the step that
    /// succeeded last first).
    CompensationStarted {
        /// The steps undone, in the order their compensations run.
        steps: Vec<StepId>,
    },
    RunSucceeded {},
    RunFailed {
        /// Steps that failed or were rejected, in workflow order.
        steps: Vec<StepId>,
    },
    RunCancelled {},
}

/// A rewind as a person approved it.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewindApproved {
    /// The step whose start the files go back to.
    pub to: StepId,
    /// The seq of that start.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub at: EventSeq,
    /// The files put back (conflicts the person included among them).
    pub restores: Vec<FileRestore>,
    /// Files changed since by something else, left alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_alone: Vec<String>,
    /// The hash of the proposal approved (what `stepwise rewind` showed).
    pub proposal_hash: String,
    pub by: String,
}

/// One file a rewind puts back.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRestore {
    pub path: String,
    /// What it held when the step started (`None`: it did not exist, and is deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<FileVersion>,
    /// Its hash on disk when the rewind was proposed (`None`: absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub found: Option<String>,
    /// Something other than the run changed it since (it is put back only because the person
    /// included it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub conflict: bool,
}

/// A file a rewind could not put back, and why.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewindFailure {
    pub path: String,
    pub message: String,
}

/// What a person chose for an operation whose outcome is unknown.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// Run the operation again.
    Retry,
    /// Give up on the step; it counts as skipped.
    Skip,
    /// The operation did happen; the step succeeds.
    MarkDone,
}

/// How the run was started; the first event of every run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStarted {
    pub run_id: RunId,
    pub workflow_name: String,
    pub workflow_path: String,
    pub workflow_hash: String,
    /// The workflow file's text, kept so a run can be replayed against what it ran.
    pub workflow_source: String,
    pub workspace: String,
    pub inputs: Value,
    /// What started the run: `cli`, `app`, …
    pub trigger: String,
    pub started_by: String,
    /// The machine it was started on, where its workspace is: only a process there drives
    /// it. Absent in runs recorded before machines were (any process may drive those).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub max_parallel: usize,
    /// User and workspace rules in force when the run started (the workflow's own are in the
    /// workflow).
    pub policy: Vec<RuleSpec>,
    /// Who may answer the run's questions, as the policy files said when it started (the
    /// workflow's own `approvers` are in the workflow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvers: Option<Box<crate::approvers::Approvers>>,
    /// The models the workflow names, as the settings defined them when the run started (never
    /// a key: only the name of the variable it comes from).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, ModelSpec>,
    /// What the run may spend on models (the workflow's `budget`, or `--budget-usd`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
    /// Which workspace files checkpoints look at, from the policy files.
    #[serde(default, skip_serializing_if = "is_default_checkpoint")]
    pub checkpoint: CheckpointSpec,
    /// Where the run waits for a person before a step starts, as it was started (the
    /// workflow's own `breakpoints` come with the workflow).
    #[serde(default, skip_serializing_if = "StepPauses::is_none")]
    pub pauses: StepPauses,
    /// A fork (`stepwise fork`): the run it was forked from, and the events of that run it
    /// starts with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fork: Option<Box<ForkOrigin>>,
    /// The workflow files its `workflow` steps run, by `path` as written, as they were when
    /// the run started.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub subworkflows: BTreeMap<String, crate::subrun::SubWorkflow>,
    /// The custom step types its workflow files use, as their manifests were when it started
    /// (a child run has its parent's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step_types: Vec<crate::custom_step::RecordedStepType>,
    /// A child run (a parent's `workflow` step): the run and step that started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<crate::subrun::ParentLink>,
    /// A run a trigger started (a watcher): the signal that records the firing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Box<crate::cause::RunCause>>,
}

/// Where a forked run comes from: its log starts with `reused` events of `parent` (seq 2
/// on: those before step `from` first started, then the results of operations still under
/// way then), decided as the parent decided them; from there on it goes its own way.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForkOrigin {
    pub parent: RunId,
    pub from: StepId,
    /// The seq of `from`'s first start in the parent.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub at: EventSeq,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub reused: u64,
}

fn is_default_checkpoint(spec: &CheckpointSpec) -> bool {
    *spec == CheckpointSpec::default()
}

/// Where a run waits for a person before a step starts (`stepwise run --step`, `--break`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepPauses {
    /// Before every step.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub every_step: bool,
    /// Before these steps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub breakpoints: Vec<StepId>,
}

impl StepPauses {
    /// No pause at all.
    pub fn is_none(&self) -> bool {
        !self.every_step && self.breakpoints.is_empty()
    }
}

/// An approval, manual or by rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalGranted {
    pub step: StepId,
    pub attempt: u32,
    /// The hash of the proposal that was asked about.
    pub proposal_hash: String,
    /// The hash of what was approved: the proposal itself, or the edited one.
    pub approved_hash: String,
    /// Set when the person edited the proposal; this is what runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited: Option<Proposal>,
    pub by: String,
    /// The machine the person decided on (absent for a rule's decision, and in decisions
    /// recorded before machines were).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub mode: DecisionMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Set when the person reviewed an edit hunk by hunk: `edited` holds the content with
    /// only the accepted hunks applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hunks: Option<HunkReview>,
}

/// Which hunks of an edit a person applied and which they rejected, and why.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HunkReview {
    /// Hunk numbers (from 1, as the proposal's diff shows them), in order.
    pub applied: Vec<u32>,
    pub rejected: Vec<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Who decided.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DecisionMode {
    Manual,
    Rule { rule: String },
}

/// Exactly what a person is asked to approve.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Proposal {
    /// Replace `path` (which has `base_hash` now; `None`: does not exist) with `content`.
    EditFile {
        path: String,
        base_hash: Option<String>,
        content: String,
        /// Unified diff from the current content to `content`.
        diff: String,
    },
    RunCommand(CommandRequest),
    ReadFile {
        path: String,
    },
    /// A manual gate: approve to continue.
    Gate {
        message: String,
    },
    /// A pause before a step starts (step-through, or a breakpoint): approving it ("continue")
    /// starts the step; rejecting it rejects the step.
    Breakpoint {
        message: String,
    },
    /// A plan a model made (a `plan` step). Approving it adds its steps to the run, after the
    /// plan step; each then passes through the normal gates.
    Plan {
        /// What the model was asked.
        goal: String,
        /// The planned steps, in the workflow format.
        steps: Value,
        /// What the policy would ask of each planned step, as far as it can tell now.
        verdicts: Vec<PlannedStep>,
    },
    /// A question an agent puts to a person (its `ask_person` tool). It is approved with an
    /// answer: the approved proposal is the question with `answer` set, and that answer is what
    /// the agent is told.
    Question {
        question: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        answer: Option<String>,
    },
    /// A tool of an MCP server an agent asks to call, with its arguments.
    McpCall {
        server: String,
        tool: String,
        arguments: Value,
    },
    /// A model call, asked about because it would cross the run's budget (or the workflow
    /// requires approval of the step). Approving it raises the budget by `raise`, enough for
    /// this call, and makes the call.
    LlmCall {
        request: std::sync::Arc<LlmRequest>,
        estimate: CostEstimate,
        /// What remained of the budget when it was asked (`None`: no limit of that kind).
        remaining: Budget,
        /// What approving adds to the budget.
        raise: Budget,
    },
}

/// One step of a plan, as a person is shown it before approving the plan.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedStep {
    pub id: StepId,
    /// Its type (`run_command`, …).
    pub kind: String,
    /// What the policy would do with it: runs without asking, asks a person, is refused, or
    /// is decided when it runs (its values come from earlier steps).
    pub approval: String,
}

impl Proposal {
    /// The hash that names this exact proposal.
    pub fn hash(&self) -> Result<String, serde_json::Error> {
        crate::hash::json_hash(self)
    }

    /// The kind as people read it.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Proposal::EditFile { .. } => "edit_file",
            Proposal::RunCommand(_) => "run_command",
            Proposal::ReadFile { .. } => "read_file",
            Proposal::Gate { .. } => "approval",
            Proposal::Breakpoint { .. } => "breakpoint",
            Proposal::Question { .. } => "question",
            Proposal::McpCall { .. } => "mcp_call",
            Proposal::LlmCall { .. } => "llm_call",
            Proposal::Plan { .. } => "plan",
        }
    }
}

impl Event {
    /// The event's type name as stored.
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::RunStarted(_) => "RunStarted",
            Event::OperationSucceeded { .. } => "OperationSucceeded",
            Event::OperationFailed { .. } => "OperationFailed",
            Event::OperationOutcomeUnknown { .. } => "OperationOutcomeUnknown",
            Event::OperationResolved { .. } => "OperationResolved",
            Event::ApprovalGranted(_) => "ApprovalGranted",
            Event::ApprovalRejected { .. } => "ApprovalRejected",
            Event::RetryDue { .. } => "RetryDue",
            Event::AlertRaised { .. } => "AlertRaised",
            Event::ProposalVoided { .. } => "ProposalVoided",
            Event::RunPauseRequested { .. } => "RunPauseRequested",
            Event::RunResumeRequested { .. } => "RunResumeRequested",
            Event::RunCancelRequested { .. } => "RunCancelRequested",
            Event::RunAborted { .. } => "RunAborted",
            Event::RewindApproved(_) => "RewindApproved",
            Event::BreakpointsCleared { .. } => "BreakpointsCleared",
            Event::RewindFinished { .. } => "RewindFinished",
            Event::StepStarted { .. } => "StepStarted",
            Event::StepSkipped { .. } => "StepSkipped",
            Event::ApprovalRequested { .. } => "ApprovalRequested",
            Event::OperationStarted { .. } => "OperationStarted",
            Event::StepRetryScheduled { .. } => "StepRetryScheduled",
            Event::StepSucceeded { .. } => "StepSucceeded",
            Event::StepRoundEnded { .. } => "StepRoundEnded",
            Event::StepExpanded { .. } => "StepExpanded",
            Event::StepFailed { .. } => "StepFailed",
            Event::StepRejected { .. } => "StepRejected",
            Event::StepCancelled { .. } => "StepCancelled",
            Event::CompensationStarted { .. } => "CompensationStarted",
            Event::RunSucceeded {} => "RunSucceeded",
            Event::RunFailed { .. } => "RunFailed",
            Event::RunCancelled {} => "RunCancelled",
        }
    }

    /// Whether the core decides this event (as opposed to it coming from outside).
    pub fn is_decision(&self) -> bool {
        match self {
            Event::ApprovalGranted(g) => matches!(g.mode, DecisionMode::Rule { .. }),
            Event::StepStarted { .. }
            | Event::StepSkipped { .. }
            | Event::ApprovalRequested { .. }
            | Event::OperationStarted { .. }
            | Event::StepRetryScheduled { .. }
            | Event::StepSucceeded { .. }
            | Event::StepRoundEnded { .. }
            | Event::StepExpanded { .. }
            | Event::StepFailed { .. }
            | Event::StepRejected { .. }
            | Event::StepCancelled { .. }
            | Event::CompensationStarted { .. }
            | Event::RunSucceeded {}
            | Event::RunFailed { .. }
            | Event::RunCancelled {} => true,
            _ => false,
        }
    }

    /// The step an event is about, if any; used as the correlation id.
    pub fn step(&self) -> Option<&StepId> {
        match self {
            Event::ApprovalGranted(g) => Some(&g.step),
            Event::AlertRaised { step, .. } => step.as_ref(),
            Event::ApprovalRejected { step, .. }
            | Event::RetryDue { step, .. }
            | Event::ProposalVoided { step, .. }
            | Event::StepStarted { step, .. }
            | Event::StepSkipped { step, .. }
            | Event::ApprovalRequested { step, .. }
            | Event::OperationStarted { step, .. }
            | Event::StepRetryScheduled { step, .. }
            | Event::StepSucceeded { step, .. }
            | Event::StepRoundEnded { step, .. }
            | Event::StepExpanded { step, .. }
            | Event::StepFailed { step, .. }
            | Event::StepRejected { step, .. }
            | Event::StepCancelled { step } => Some(step),
            _ => None,
        }
    }

    /// The payload stored for the event (its type name is stored beside it). A failure to
    /// serialise is an error: an event is never stored as a `null` it did not say.
    pub fn to_payload(&self) -> Result<Value, serde_json::Error> {
        let value = serde_json::to_value(self)?;
        // Never written if it could not be read back (serde_json reads 128 levels).
        if crate::json_depth::deeper_than(&value, crate::json_depth::MAX_PAYLOAD_DEPTH) {
            return Err(serde::ser::Error::custom(format!(
                "the event nests deeper than {} levels, more than can be read back",
                crate::json_depth::MAX_PAYLOAD_DEPTH
            )));
        }
        match value {
            Value::Object(mut map) => Ok(map
                .remove("data")
                .unwrap_or(Value::Object(serde_json::Map::new()))),
            other => Err(serde::ser::Error::custom(format!(
                "event serialised to {other} instead of a tagged object"
            ))),
        }
    }

    /// Rebuilds an event from its stored type name, schema version and payload.
    pub fn from_payload(
        type_name: &str,
        schema_version: u32,
        payload: Value,
    ) -> Result<Event, EventDecodeError> {
        let payload = upcast(type_name, schema_version, payload)?;
        // An adjacently tagged enum reads a `[tag, content]` pair without buffering the
        // content, which a map would need when its keys come in the wrong order.
        let tagged = Value::Array(vec![Value::String(type_name.to_string()), payload]);
        serde_json::from_value(tagged).map_err(|e| EventDecodeError::Invalid {
            type_name: type_name.to_string(),
            message: e.to_string(),
        })
    }
}

/// A stored event that this version cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventDecodeError {
    #[error(
        "event `{type_name}` has schema version {version}, newer than this stepwise reads ({EVENT_SCHEMA_VERSION}); upgrade stepwise"
    )]
    TooNew { type_name: String, version: u32 },
    #[error("event `{type_name}` cannot be read: {message}")]
    Invalid { type_name: String, message: String },
}

/// Brings a payload written with an older schema version up to the current one. Version 1 is
/// the first; each future version adds one step here, so old logs stay readable forever.
fn upcast(type_name: &str, version: u32, payload: Value) -> Result<Value, EventDecodeError> {
    if version > EVENT_SCHEMA_VERSION {
        return Err(EventDecodeError::TooNew {
            type_name: type_name.to_string(),
            version,
        });
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips() {
        let event = Event::StepSkipped {
            step: "a".into(),
            reason: "when was false".into(),
        };
        let payload = event.to_payload().unwrap();
        assert_eq!(
            payload,
            serde_json::json!({"step": "a", "reason": "when was false"})
        );
        let back = Event::from_payload(event.type_name(), EVENT_SCHEMA_VERSION, payload).unwrap();
        assert_eq!(back, event);
        let empty = Event::RunSucceeded {};
        let back = Event::from_payload("RunSucceeded", 1, empty.to_payload().unwrap()).unwrap();
        assert_eq!(back, empty);
    }

    #[test]
    fn newer_schema_versions_are_refused_with_a_clear_error() {
        let err = Event::from_payload("RunSucceeded", 99, serde_json::json!({})).unwrap_err();
        assert!(err.to_string().contains("upgrade stepwise"));
    }
}
