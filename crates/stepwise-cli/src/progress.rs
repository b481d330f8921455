//! Live progress of a run on the terminal, printed as events become durable.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;

use stepwise_core::checkpoint::describe_at_most;
use stepwise_core::event::Event;
use stepwise_core::ids::{EventSeq, StepId};
use stepwise_engine::RecordedEvent;

use crate::output::{duration, one_line};

/// Prints one line per step milestone.
pub struct Progress {
    quiet: bool,
    /// When each step's work started, and whether it has asked a person since (then its next
    /// operation starts the clock again, so that waiting is not counted).
    started: Mutex<HashMap<StepId, (i64, bool)>>,
    /// The step of each operation started, by the seq of its start.
    ops: Mutex<HashMap<EventSeq, StepId>>,
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        Progress {
            quiet,
            started: Mutex::new(HashMap::new()),
            ops: Mutex::new(HashMap::new()),
        }
    }

    /// How long the step's work took: since it started, or since its first operation after a
    /// person answered it, so that time waiting for a person is not counted (every call of a
    /// step that asks a model several times is).
    fn since(&self, step: &StepId, at: i64) -> String {
        let started = self.started.lock().unwrap_or_else(|p| p.into_inner());
        started
            .get(step)
            .map(|(s, _)| format!(" ({})", duration(at - s)))
            .unwrap_or_default()
    }

    fn mark_start(&self, step: &StepId, at: i64, replace: bool) {
        let mut started = self.started.lock().unwrap_or_else(|p| p.into_inner());
        match started.get_mut(step) {
            Some(mark) if replace || mark.1 => *mark = (at, false),
            Some(_) => {}
            None => {
                started.insert(step.clone(), (at, false));
            }
        }
    }

    fn mark_asked(&self, step: &StepId) {
        let mut started = self.started.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mark) = started.get_mut(step) {
            mark.1 = true;
        }
    }
}

impl Progress {
    /// Prints the line an event deserves, if any.
    pub fn show(&self, recorded: &RecordedEvent) {
        if self.quiet {
            return;
        }
        let at = &recorded.stored.recorded_at_ms;
        let event = &recorded.event;
        {
            let line = match event {
                Event::OperationStarted { step, .. } => {
                    self.mark_start(step, *at, false);
                    self.ops
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(recorded.stored.seq, step.clone());
                    None
                }
                Event::OperationSucceeded { op, result } => {
                    let changes = result.file_changes();
                    let ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
                    match ops.get(op) {
                        Some(step) if !changes.is_empty() => {
                            Some(format!("    {step}: {}", describe_at_most(changes, 10)))
                        }
                        _ => None,
                    }
                }
                Event::StepStarted { step, attempt } => {
                    self.mark_start(step, *at, *attempt > 1);
                    if *attempt > 1 {
                        Some(format!("  ▶ {step}: attempt {attempt}"))
                    } else {
                        None
                    }
                }
                Event::StepSucceeded { step, .. } => {
                    Some(format!("  ✓ {step}{}", self.since(step, *at)))
                }
                Event::StepFailed { step, error, .. } => Some(format!(
                    "  ✗ {step}{}: {}",
                    self.since(step, *at),
                    one_line(error, 160)
                )),
                Event::StepSkipped { step, reason } => {
                    Some(format!("  - {step} skipped: {reason}"))
                }
                Event::StepRejected { step, by, reason } => {
                    Some(format!("  ⊘ {step} rejected by {by}: {reason}"))
                }
                Event::StepCancelled { step } => Some(format!("  ■ {step} cancelled")),
                Event::AlertRaised {
                    step,
                    slower_than_ms,
                    ..
                } => Some(format!(
                    "  ⏱ {} has been going for longer than {}",
                    step.as_ref()
                        .map_or_else(|| "the run".to_string(), |s| format!("step {s}")),
                    duration(i64::try_from(*slower_than_ms).unwrap_or(i64::MAX))
                )),
                Event::CompensationStarted { steps } => Some(format!(
                    "  ↩ compensating: undoing {} (the last to succeed first)",
                    steps
                        .iter()
                        .map(|step| format!("`{step}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                Event::StepRetryScheduled {
                    step,
                    attempt,
                    delay_ms,
                    error,
                } => Some(format!(
                    "  ↻ {step}: {} — attempt {attempt} in {}",
                    one_line(error, 120),
                    duration(*delay_ms as i64)
                )),
                Event::ApprovalRequested {
                    step,
                    proposal,
                    reason,
                    ..
                } => Some({
                    self.mark_asked(step);
                    format!(
                        "  ? {step} waits for approval ({}): {reason}",
                        proposal.kind_name()
                    )
                }),
                Event::ApprovalGranted(g) => Some(match &g.mode {
                    stepwise_core::event::DecisionMode::Rule { rule } => {
                        format!("  ✓ {} approved by rule: {rule}", g.step)
                    }
                    stepwise_core::event::DecisionMode::Manual => match &g.edited {
                        Some(stepwise_core::event::Proposal::Question { .. }) => {
                            format!("  ✓ {} answered by {}", g.step, g.by)
                        }
                        edited => format!(
                            "  ✓ {} approved by {}{}",
                            g.step,
                            g.by,
                            if edited.is_some() { " (edited)" } else { "" }
                        ),
                    },
                }),
                Event::OperationOutcomeUnknown { op } => Some(format!(
                    "  ! operation {op} started before a crash; its outcome is unknown"
                )),
                Event::ProposalVoided { step, path, .. } => Some(format!(
                    "  ↺ {step}: `{path}` changed since its edit was proposed; proposing it again"
                )),

                _ => None,
            };
            if let Some(line) = line {
                // A closed stdout (`stepwise run … | head`) must not take the run down.
                let _ = writeln!(std::io::stdout(), "{}", crate::output::printable(&line));
            }
        }
    }
}
