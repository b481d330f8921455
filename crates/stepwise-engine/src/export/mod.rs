//! A run's audit trail as one document a third party can read and check: the run, its
//! timeline, every decision (who, manual or which rule, when, the hash of what was approved),
//! each file change with its diff, each command with its output, each model call with its
//! tokens and cost, and the last link of the run's hash chain (`stepwise verify` prints the
//! same). `html.rs` writes it as one self-contained HTML file; `--json` is this, serialised.

mod html;

use serde::Serialize;
use serde_json::Value;
use stepwise_core::checkpoint::describe;
use stepwise_core::event::{DecisionMode, Event};
use stepwise_core::operation::{OperationRequest, OperationResult};
use stepwise_core::records::RunRow;
use stepwise_store::Verified;

use crate::engine::Engine;
use crate::error::EngineError;
use crate::file_changes::OperationChanges;

/// Names this document's shape, for whoever reads the JSON.
const FORMAT: &str = "stepwise-run-export/1";
/// The most of a command's output, or an event's summary, the document quotes.
const QUOTED_BYTES: usize = 16 * 1024;

/// A run's audit trail.
#[derive(Debug, Clone, Serialize)]
pub struct RunExport {
    /// The document's shape and its version.
    pub format: &'static str,
    /// The run's row: its id, workflow, workspace, status and times.
    pub run: RunRow,
    /// The workflow's text as the run recorded it.
    pub workflow_source: String,
    /// The run's inputs.
    pub inputs: Value,
    /// Who started it.
    pub started_by: String,
    /// The run's hash chain as checked when the document was written: its last link is what
    /// `stepwise verify` prints for an unaltered log.
    pub chain: Verified,
    /// Every event, in order.
    pub timeline: Vec<TimelineEntry>,
    /// Every approval and rejection.
    pub decisions: Vec<Decision>,
    /// What each operation changed in the workspace's files, with diffs.
    pub file_changes: Vec<OperationChanges>,
    /// Each command and how it ended.
    pub commands: Vec<CommandEntry>,
    /// Each model call, its tokens and cost.
    pub model_calls: Vec<ModelCall>,
}

/// One event, on one line.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineEntry {
    /// The event's seq.
    pub seq: u64,
    /// When it was recorded (ms since the epoch).
    pub recorded_at_ms: i64,
    /// The event's type.
    pub event_type: String,
    /// The step it is about, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// Its payload on one line, cut when long.
    pub summary: String,
}

/// A person's or a rule's decision.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// The event's seq.
    pub seq: u64,
    /// When it was recorded (ms since the epoch).
    pub recorded_at_ms: i64,
    /// The step.
    pub step: String,
    /// Approved, or rejected.
    pub approved: bool,
    /// Who: the person, or the user whose rule it was.
    pub by: String,
    /// `manual`, or `rule`.
    pub mode: &'static str,
    /// The rule, when a rule decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The hash of what was asked about.
    pub proposal_hash: String,
    /// The hash of what was approved (the edited proposal when a person edited it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_hash: Option<String>,
    /// A person edited what was proposed before approving it.
    pub edited: bool,
    /// The comment given with an approval, or the reason of a rejection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub words: Option<String>,
}

/// A command and how it ended.
#[derive(Debug, Clone, Serialize)]
pub struct CommandEntry {
    /// The event's seq.
    pub seq: u64,
    /// The step.
    pub step: String,
    /// The command line.
    pub command: String,
    /// Its exit code; `None` when a signal ended it.
    pub exit_code: Option<i32>,
    /// The signal that ended it.
    pub signal: Option<i32>,
    /// Killed when its time ran out.
    pub timed_out: bool,
    /// What it printed (cut at 16 KiB).
    pub stdout: String,
    /// What it printed on stderr (cut at 16 KiB).
    pub stderr: String,
    /// What it changed in the workspace's files, in words.
    pub files: String,
}

/// A model call and what it cost.
#[derive(Debug, Clone, Serialize)]
pub struct ModelCall {
    /// The event's seq.
    pub seq: u64,
    /// The step.
    pub step: String,
    /// The model's alias, and the model it meant.
    pub model: String,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Reply tokens.
    pub output_tokens: u64,
    /// What it cost, in micro-dollars.
    pub cost_micro_usd: u64,
    /// How long it took.
    pub latency_ms: u64,
    /// Answered by the simulated provider.
    pub simulated: bool,
}

impl Engine {
    /// A run's audit trail (by id or unique prefix).
    pub async fn export(&self, run: &str) -> Result<RunExport, EngineError> {
        let loaded = self.load_run(run).await?;
        let run_id = loaded.row.run_id.to_string();
        let (_, chain) = self.verify(&run_id).await?;
        let file_changes = self.file_changes(&loaded).await?;
        let started = loaded.state.started();
        let mut export = RunExport {
            format: FORMAT,
            workflow_source: started.workflow_source.clone(),
            inputs: started.inputs.clone(),
            started_by: started.started_by.clone(),
            run: loaded.row.clone(),
            chain,
            timeline: Vec::new(),
            decisions: Vec::new(),
            file_changes,
            commands: Vec::new(),
            model_calls: Vec::new(),
        };
        let mut requests: std::collections::BTreeMap<u64, (String, &OperationRequest)> =
            Default::default();
        for (stored, event) in &loaded.events {
            let seq = stored.seq.get();
            let at = stored.recorded_at_ms;
            export.timeline.push(TimelineEntry {
                seq,
                recorded_at_ms: at,
                event_type: stored.event_type.clone(),
                step: event.step().map(|s| s.to_string()),
                summary: cut(&stored.payload.to_string(), 300),
            });
            match event {
                Event::OperationStarted { step, request, .. } => {
                    requests.insert(seq, (step.to_string(), request));
                }
                Event::OperationSucceeded { op, result } => {
                    if let Some((step, request)) = requests.get(&op.get()) {
                        record_result(&mut export, seq, step, request, result);
                    }
                }
                Event::RewindApproved(rewind) => export.decisions.push(Decision {
                    seq,
                    recorded_at_ms: at,
                    step: rewind.to.to_string(),
                    approved: true,
                    by: rewind.by.clone(),
                    mode: "manual",
                    rule: None,
                    proposal_hash: rewind.proposal_hash.clone(),
                    approved_hash: Some(rewind.proposal_hash.clone()),
                    edited: false,
                    words: Some(rewind_words(rewind)),
                }),
                Event::ApprovalGranted(granted) => {
                    let (mode, rule) = match &granted.mode {
                        DecisionMode::Manual => ("manual", None),
                        DecisionMode::Rule { rule } => ("rule", Some(rule.clone())),
                    };
                    export.decisions.push(Decision {
                        seq,
                        recorded_at_ms: at,
                        step: granted.step.to_string(),
                        approved: true,
                        by: granted.by.clone(),
                        mode,
                        rule,
                        proposal_hash: granted.proposal_hash.clone(),
                        approved_hash: Some(granted.approved_hash.clone()),
                        edited: granted.edited.is_some(),
                        words: decision_words(granted),
                    });
                }
                Event::ApprovalRejected {
                    step,
                    proposal_hash,
                    by,
                    reason,
                    ..
                } => export.decisions.push(Decision {
                    seq,
                    recorded_at_ms: at,
                    step: step.to_string(),
                    approved: false,
                    by: by.clone(),
                    mode: "manual",
                    rule: None,
                    proposal_hash: proposal_hash.clone(),
                    approved_hash: None,
                    edited: false,
                    words: Some(reason.clone()),
                }),
                _ => {}
            }
        }
        Ok(export)
    }
}

/// A command's or a model call's result, into its section.
fn record_result(
    export: &mut RunExport,
    seq: u64,
    step: &str,
    request: &OperationRequest,
    result: &OperationResult,
) {
    match (request, result) {
        (OperationRequest::RunCommand(command), OperationResult::CommandFinished(outcome)) => {
            export.commands.push(CommandEntry {
                seq,
                step: step.to_string(),
                command: command.command.display(),
                exit_code: outcome.exit_code,
                signal: outcome.signal,
                timed_out: outcome.timed_out,
                stdout: cut(&outcome.stdout, QUOTED_BYTES),
                stderr: cut(&outcome.stderr, QUOTED_BYTES),
                files: describe(&outcome.changes),
            });
        }
        (OperationRequest::LlmCall(call), OperationResult::LlmReplied(reply)) => {
            export.model_calls.push(ModelCall {
                seq,
                step: step.to_string(),
                model: format!("{} ({})", call.model, call.spec.model),
                input_tokens: reply.usage.input_tokens,
                output_tokens: reply.usage.output_tokens,
                cost_micro_usd: reply.cost_micro_usd,
                latency_ms: reply.latency_ms,
                simulated: reply.simulated,
            });
        }
        _ => {}
    }
}

/// At most `max` bytes of `text`, cut at a character, saying so.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &text[..end], text.len())
}

/// What a person said with an approval, and which hunks of an edit they applied.
fn decision_words(granted: &stepwise_core::event::ApprovalGranted) -> Option<String> {
    let hunks = granted.hunks.as_ref().map(|review| review.told());
    match (hunks, &granted.comment) {
        (Some(hunks), Some(comment)) => Some(format!("{hunks}. {comment}")),
        (Some(hunks), None) => Some(hunks),
        (None, comment) => comment.clone(),
    }
}

/// A rewind as a decision reads: what was put back, and what left alone.
fn rewind_words(rewind: &stepwise_core::event::RewindApproved) -> String {
    let paths: Vec<&str> = rewind.restores.iter().map(|r| r.path.as_str()).collect();
    let mut words = format!(
        "rewind of the files to the start of `{}`: {}",
        rewind.to,
        paths.join(", ")
    );
    if !rewind.left_alone.is_empty() {
        words.push_str(&format!("; left alone {}", rewind.left_alone.join(", ")));
    }
    words
}
