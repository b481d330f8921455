//! How long each step took, told apart: time waiting for a person (from a question to its
//! answer) and time executing (from an operation's start to its result). Computed from the
//! recorded events' timestamps; the caller says what "now" is for a run still going, since the
//! core never reads the clock.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::event::Event;
use crate::ids::{EventSeq, StepId};

/// One step's times, in milliseconds.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StepTiming {
    /// From the step's first event to its last (or to now, while it is not finished).
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub total_ms: i64,
    /// Waiting for a person to approve or reject.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub waiting_ms: i64,
    /// Operations running (a command, a file read or write).
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub executing_ms: i64,
    /// Still waiting for a person now.
    pub waiting_now: bool,
}

#[derive(Default)]
struct Clocks {
    first: i64,
    last: i64,
    asked_at: Option<i64>,
    finished: bool,
    timing: StepTiming,
}

/// Each step's times, from `(seq, recorded_at_ms, event)` in log order. `now_ms` closes the
/// intervals still open (a question unanswered, an operation running) for a run that has not
/// finished; `None` for a finished run.
pub fn step_timings<'a>(
    events: impl IntoIterator<Item = (EventSeq, i64, &'a Event)>,
    now_ms: Option<i64>,
) -> BTreeMap<StepId, StepTiming> {
    let mut steps: BTreeMap<StepId, Clocks> = BTreeMap::new();
    // Operation seq -> (step, started at).
    let mut running: HashMap<EventSeq, (StepId, i64)> = HashMap::new();
    for (seq, at, event) in events {
        if let Some(step) = event.step() {
            let clocks = steps.entry(step.clone()).or_insert_with(|| Clocks {
                first: at,
                last: at,
                ..Clocks::default()
            });
            clocks.last = at;
            match event {
                Event::ApprovalRequested { .. } => clocks.asked_at = Some(at),
                Event::ApprovalGranted(_)
                | Event::ApprovalRejected { .. }
                | Event::ProposalVoided { .. }
                | Event::StepRejected { .. }
                | Event::StepCancelled { .. } => {
                    if let Some(asked) = clocks.asked_at.take() {
                        clocks.timing.waiting_ms += at - asked;
                    }
                }
                Event::OperationStarted { step, .. } => {
                    running.insert(seq, (step.clone(), at));
                }
                _ => {}
            }
            if matches!(
                event,
                Event::StepSucceeded { .. }
                    | Event::StepFailed { .. }
                    | Event::StepSkipped { .. }
                    | Event::StepRejected { .. }
                    | Event::StepCancelled { .. }
            ) {
                clocks.finished = true;
            } else if matches!(event, Event::StepStarted { .. } | Event::RetryDue { .. }) {
                clocks.finished = false;
            }
        }
        let answered = match event {
            Event::OperationSucceeded { op, .. }
            | Event::OperationFailed { op, .. }
            | Event::OperationOutcomeUnknown { op } => Some(*op),
            _ => None,
        };
        if let Some((step, started)) = answered.and_then(|op| running.remove(&op))
            && let Some(clocks) = steps.get_mut(&step)
        {
            clocks.timing.executing_ms += at - started;
        }
    }
    if let Some(now) = now_ms {
        for (step, started) in running.into_values() {
            if let Some(clocks) = steps.get_mut(&step) {
                clocks.timing.executing_ms += (now - started).max(0);
            }
        }
    }
    steps
        .into_iter()
        .map(|(step, mut clocks)| {
            let end = match now_ms {
                Some(now) if !clocks.finished => now.max(clocks.last),
                _ => clocks.last,
            };
            if let (Some(asked), Some(now)) = (clocks.asked_at, now_ms) {
                clocks.timing.waiting_ms += (now - asked).max(0);
                clocks.timing.waiting_now = true;
            }
            clocks.timing.total_ms = end - clocks.first;
            (step, clocks.timing)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ApprovalGranted, DecisionMode, Proposal};
    use crate::operation::{OperationRequest, OperationResult};

    fn asked(step: &str) -> Event {
        Event::ApprovalRequested {
            step: step.into(),
            attempt: 1,
            proposal: Proposal::Gate {
                message: "ok?".into(),
            },
            proposal_hash: "sha256:00".into(),
            reason: "manual".into(),
        }
    }

    fn granted(step: &str) -> Event {
        Event::ApprovalGranted(ApprovalGranted {
            step: step.into(),
            attempt: 1,
            proposal_hash: "sha256:00".into(),
            approved_hash: "sha256:00".into(),
            edited: None,
            by: "ann".into(),
            mode: DecisionMode::Manual,
            comment: None,
        })
    }

    fn started_op(step: &str) -> Event {
        Event::OperationStarted {
            step: step.into(),
            attempt: 1,
            request: OperationRequest::ReadFile {
                path: "a".into(),
                missing_ok: false,
            },
        }
    }

    #[test]
    fn waiting_for_a_person_and_executing_are_told_apart() {
        let events = [
            Event::StepStarted {
                step: "a".into(),
                attempt: 1,
            },
            asked("a"),
            granted("a"),
            started_op("a"),
            Event::OperationSucceeded {
                op: EventSeq::new(4),
                result: OperationResult::FileRead {
                    exists: true,
                    content: "x".into(),
                    hash: None,
                },
            },
            Event::StepSucceeded {
                step: "a".into(),
                attempt: 1,
                output: serde_json::Value::Null,
            },
        ];
        let at = [1_000, 1_010, 61_010, 61_020, 61_520, 61_530];
        let log = events
            .iter()
            .enumerate()
            .map(|(i, e)| (EventSeq::new(i as u64 + 1), at[i], e));
        let timing = step_timings(log.clone(), None)["a"];
        assert_eq!(timing.waiting_ms, 60_000);
        assert_eq!(timing.executing_ms, 500);
        assert_eq!(timing.total_ms, 60_530);
        assert!(!timing.waiting_now);

        // Still waiting: the question's time runs on to now.
        let waiting = step_timings(log.take(2), Some(5_010))["a"];
        assert_eq!(waiting.waiting_ms, 4_000);
        assert_eq!(waiting.executing_ms, 0);
        assert_eq!(waiting.total_ms, 4_010);
        assert!(waiting.waiting_now);
    }
}
