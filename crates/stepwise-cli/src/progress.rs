//! Live progress of a run on the terminal, printed as events become durable.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;

use stepwise_core::event::Event;
use stepwise_core::ids::StepId;
use stepwise_engine::RecordedEvent;

use crate::output::{duration, one_line};

/// Prints one line per step milestone.
pub struct Progress {
    quiet: bool,
    started: Mutex<HashMap<StepId, i64>>,
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        Progress {
            quiet,
            started: Mutex::new(HashMap::new()),
        }
    }

    /// How long the step's work took: since its last operation started (or, for a step
    /// without one, since the step started), so that time waiting for a person is not counted.
    fn since(&self, step: &StepId, at: i64) -> String {
        let started = self.started.lock().unwrap_or_else(|p| p.into_inner());
        started
            .get(step)
            .map(|s| format!(" ({})", duration(at - s)))
            .unwrap_or_default()
    }

    fn mark_start(&self, step: &StepId, at: i64, replace: bool) {
        let mut started = self.started.lock().unwrap_or_else(|p| p.into_inner());
        if replace {
            started.insert(step.clone(), at);
        } else {
            started.entry(step.clone()).or_insert(at);
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
                    self.mark_start(step, *at, true);
                    None
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
                } => Some(format!(
                    "  ? {step} waits for approval ({}): {reason}",
                    proposal.kind_name()
                )),
                Event::ApprovalGranted(g) => Some(match &g.mode {
                    stepwise_core::event::DecisionMode::Rule { rule } => {
                        format!("  ✓ {} approved by rule: {rule}", g.step)
                    }
                    stepwise_core::event::DecisionMode::Manual => format!(
                        "  ✓ {} approved by {}{}",
                        g.step,
                        g.by,
                        if g.edited.is_some() { " (edited)" } else { "" }
                    ),
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
