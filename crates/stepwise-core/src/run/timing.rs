//! How long each step took, told apart: time waiting for a person (from a question to its
//! answer, or from an operation cut off by a crash to a person's resolution) and time executing
//! (from an operation's start to its result); and the segments a timeline draws of each step's
//! life. Computed from the recorded events' timestamps, one event at a time; the caller says
//! what "now" is for a run still going, since the core never reads the clock.

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
    /// Waiting for a person: to approve or reject, or to resolve an unknown outcome.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub waiting_ms: i64,
    /// Operations running (a command, a file read or write).
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub executing_ms: i64,
    /// Still waiting for a person now.
    pub waiting_now: bool,
}

/// What a step was doing in a part of its life, as the timeline draws it.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentKind {
    /// Deciding, or an operation running.
    Executing,
    /// Waiting for a person: to approve or reject, or to resolve an unknown outcome.
    Waiting,
    /// An operation was cut off by a crash and nobody knows what it did: waiting for a person
    /// to resolve it (retry, skip, or mark it done).
    OutcomeUnknown,
}

/// A part of a step's life on the timeline.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Segment {
    pub kind: SegmentKind,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub start_ms: i64,
    /// `None` while it lasts.
    #[cfg_attr(feature = "ts", ts(type = "number | null"))]
    pub end_ms: Option<i64>,
}

#[derive(Debug, Clone, Default)]
struct Clocks {
    first: i64,
    last: i64,
    /// Since when a question waits for an answer.
    asked_at: Option<i64>,
    /// Since when an operation's unknown outcome waits for a person.
    unknown_since: Option<i64>,
    /// Operations started and not answered: seq and start.
    in_flight: Vec<(EventSeq, i64)>,
    finished: bool,
    /// Closed intervals only; open ones are added up to "now" when asked.
    timing: StepTiming,
    segments: Vec<Segment>,
}

impl Clocks {
    fn open(&mut self, kind: SegmentKind, at: i64) {
        if let Some(last) = self.segments.last()
            && last.end_ms.is_none()
        {
            if last.kind == kind {
                return;
            }
            self.close(at);
        }
        self.segments.push(Segment {
            kind,
            start_ms: at,
            end_ms: None,
        });
    }

    fn close(&mut self, at: i64) {
        if let Some(last) = self.segments.last_mut()
            && last.end_ms.is_none()
        {
            last.end_ms = Some(at.max(last.start_ms));
        }
    }

    fn answered(&mut self, op: EventSeq, at: i64) {
        if let Some(i) = self.in_flight.iter().position(|(seq, _)| *seq == op) {
            let (_, started) = self.in_flight.swap_remove(i);
            self.timing.executing_ms += at - started;
        }
    }

    fn stop_waiting(&mut self, at: i64) {
        if let Some(asked) = self.asked_at.take() {
            self.timing.waiting_ms += at - asked;
        }
    }

    fn stop_unknown(&mut self, at: i64) {
        if let Some(since) = self.unknown_since.take() {
            self.timing.waiting_ms += at - since;
        }
    }
}

/// Each step's times and segments, folded from a run's events one at a time, so that a view
/// following a run applies each new event instead of reading the log again. The times of what
/// is still going (a question unanswered, an operation running, an unknown outcome) are added
/// up to the "now" the caller gives.
#[derive(Debug, Clone, Default)]
pub struct Timings {
    steps: HashMap<StepId, Clocks>,
    /// The step of each operation that is in flight or whose outcome is unknown.
    ops: HashMap<EventSeq, StepId>,
}

impl Timings {
    /// Folds in one event (`seq`, recorded at `at`), in log order.
    pub fn apply(&mut self, seq: EventSeq, at: i64, event: &Event) {
        if let Some(step) = event.step() {
            let clocks = self.steps.entry(step.clone()).or_insert_with(|| Clocks {
                first: at,
                last: at,
                ..Clocks::default()
            });
            clocks.last = at;
            match event {
                Event::StepStarted { .. } => {
                    clocks.finished = false;
                    clocks.open(SegmentKind::Executing, at);
                }
                Event::RetryDue { .. } => clocks.finished = false,
                Event::ApprovalRequested { .. } => {
                    clocks.asked_at = Some(at);
                    clocks.open(SegmentKind::Waiting, at);
                }
                Event::ApprovalGranted(_) => {
                    clocks.stop_waiting(at);
                    clocks.open(SegmentKind::Executing, at);
                }
                Event::ApprovalRejected { .. } => {
                    clocks.stop_waiting(at);
                    clocks.close(at);
                }
                // The step asks again at once, about the file as it is now.
                Event::ProposalVoided { .. } => clocks.stop_waiting(at),
                Event::OperationStarted { .. } => {
                    clocks.in_flight.push((seq, at));
                    clocks.open(SegmentKind::Executing, at);
                    self.ops.insert(seq, step.clone());
                }
                // Between attempts, and between rounds of a step that repeats.
                Event::StepRetryScheduled { .. } | Event::StepRoundEnded { .. } => clocks.close(at),
                Event::StepSucceeded { .. }
                | Event::StepFailed { .. }
                | Event::StepSkipped { .. }
                | Event::StepRejected { .. }
                | Event::StepCancelled { .. } => {
                    clocks.stop_waiting(at);
                    clocks.stop_unknown(at);
                    clocks.finished = true;
                    clocks.close(at);
                }
                _ => {}
            }
            return;
        }
        match event {
            Event::OperationSucceeded { op, .. } | Event::OperationFailed { op, .. } => {
                if let Some(clocks) = self.ops.remove(op).and_then(|s| self.steps.get_mut(&s)) {
                    clocks.answered(*op, at);
                }
            }
            Event::OperationOutcomeUnknown { op } => {
                let step = self.ops.get(op).cloned();
                if let Some(clocks) = step.and_then(|s| self.steps.get_mut(&s)) {
                    clocks.answered(*op, at);
                    clocks.last = at;
                    clocks.unknown_since = Some(at);
                    clocks.open(SegmentKind::OutcomeUnknown, at);
                }
            }
            Event::OperationResolved { op, .. } => {
                if let Some(clocks) = self.ops.remove(op).and_then(|s| self.steps.get_mut(&s)) {
                    clocks.last = at;
                    clocks.stop_unknown(at);
                    clocks.open(SegmentKind::Executing, at);
                }
            }
            _ => {}
        }
    }

    /// A step's times, what is still going counted up to `now_ms` (`None` for a finished
    /// run). A step that never started has all zeros.
    pub fn timing(&self, step: &StepId, now_ms: Option<i64>) -> StepTiming {
        let Some(clocks) = self.steps.get(step) else {
            return StepTiming::default();
        };
        let mut timing = clocks.timing;
        if let Some(now) = now_ms {
            for (_, started) in &clocks.in_flight {
                timing.executing_ms += (now - started).max(0);
            }
            for since in [clocks.asked_at, clocks.unknown_since]
                .into_iter()
                .flatten()
            {
                timing.waiting_ms += (now - since).max(0);
                timing.waiting_now = true;
            }
        }
        let end = match now_ms {
            Some(now) if !clocks.finished => now.max(clocks.last),
            _ => clocks.last,
        };
        timing.total_ms = end - clocks.first;
        timing
    }

    /// A step's segments in time order, the last one open (`end_ms: None`) while it lasts.
    pub fn segments(&self, step: &StepId) -> &[Segment] {
        self.steps.get(step).map_or(&[], |c| c.segments.as_slice())
    }

    /// Every step that has an event, with its times.
    pub fn all(&self, now_ms: Option<i64>) -> BTreeMap<StepId, StepTiming> {
        self.steps
            .keys()
            .map(|step| (step.clone(), self.timing(step, now_ms)))
            .collect()
    }
}

/// Each step's times, from `(seq, recorded_at_ms, event)` in log order. `now_ms` closes the
/// intervals still open (a question unanswered, an operation running, an unknown outcome
/// waiting for a person) for a run that has not finished; `None` for a finished run.
pub fn step_timings<'a>(
    events: impl IntoIterator<Item = (EventSeq, i64, &'a Event)>,
    now_ms: Option<i64>,
) -> BTreeMap<StepId, StepTiming> {
    let mut timings = Timings::default();
    for (seq, at, event) in events {
        timings.apply(seq, at, event);
    }
    timings.all(now_ms)
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
            host: None,
            mode: DecisionMode::Manual,
            comment: None,
            hunks: None,
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

    #[test]
    fn an_operation_cut_off_by_a_crash_waits_for_a_person_not_running() {
        let events = [
            Event::StepStarted {
                step: "a".into(),
                attempt: 1,
            },
            started_op("a"),
            Event::OperationOutcomeUnknown {
                op: EventSeq::new(2),
            },
            Event::OperationResolved {
                op: EventSeq::new(2),
                resolution: crate::event::Resolution::MarkDone,
                by: "ann".into(),
            },
            Event::StepSucceeded {
                step: "a".into(),
                attempt: 1,
                output: serde_json::Value::Null,
            },
        ];
        let at = [1_000, 1_100, 9_100, 69_100, 69_110];
        let mut timings = Timings::default();
        for (i, event) in events.iter().enumerate().take(3) {
            timings.apply(EventSeq::new(i as u64 + 1), at[i], event);
        }
        let a = StepId::from("a");
        // After the crash the step's operation no longer counts as executing: it waits.
        let kinds: Vec<_> = timings.segments(&a).iter().map(|s| s.kind).collect();
        assert_eq!(kinds, [SegmentKind::Executing, SegmentKind::OutcomeUnknown]);
        assert_eq!(timings.segments(&a)[0].end_ms, Some(9_100));
        assert_eq!(timings.segments(&a)[1].end_ms, None);
        let now = timings.timing(&a, Some(19_100));
        assert_eq!(now.executing_ms, 8_000);
        assert_eq!(now.waiting_ms, 10_000);
        assert!(now.waiting_now);
        assert_eq!(
            timings.timing(&a, Some(29_100)).executing_ms,
            8_000,
            "an unknown outcome is not running"
        );

        for (i, event) in events.iter().enumerate().skip(3) {
            timings.apply(EventSeq::new(i as u64 + 1), at[i], event);
        }
        let kinds: Vec<_> = timings.segments(&a).iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            [
                SegmentKind::Executing,
                SegmentKind::OutcomeUnknown,
                SegmentKind::Executing
            ]
        );
        assert!(timings.segments(&a).iter().all(|s| s.end_ms.is_some()));
        let done = timings.timing(&a, None);
        assert_eq!(done.waiting_ms, 60_000);
        assert!(!done.waiting_now);
        assert_eq!(done.total_ms, 68_110);
    }

    #[test]
    fn segments_follow_questions_and_retries() {
        let events = [
            Event::StepStarted {
                step: "a".into(),
                attempt: 1,
            },
            asked("a"),
            granted("a"),
            Event::StepRetryScheduled {
                step: "a".into(),
                attempt: 2,
                delay_ms: 1_000,
                error: "boom".into(),
            },
            Event::RetryDue {
                step: "a".into(),
                attempt: 2,
            },
            Event::StepStarted {
                step: "a".into(),
                attempt: 2,
            },
        ];
        let mut timings = Timings::default();
        for (i, event) in events.iter().enumerate() {
            timings.apply(EventSeq::new(i as u64 + 1), 1_000 * (i as i64 + 1), event);
        }
        let segments = timings.segments(&StepId::from("a"));
        let shape: Vec<_> = segments
            .iter()
            .map(|s| (s.kind, s.start_ms, s.end_ms))
            .collect();
        assert_eq!(
            shape,
            [
                (SegmentKind::Executing, 1_000, Some(2_000)),
                (SegmentKind::Waiting, 2_000, Some(3_000)),
                (SegmentKind::Executing, 3_000, Some(4_000)),
                (SegmentKind::Executing, 6_000, None),
            ]
        );
    }
}
