//! What a run's model calls cost, summed per step, per model and per day, from its log: every
//! reply records its tokens and its cost in integer micro-dollars, and every request its step
//! and model.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::event::Event;
use crate::ids::{EventSeq, StepId};
use crate::operation::{OperationRequest, OperationResult};

/// Cost and tokens of some calls.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CostLine {
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub calls: u64,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub input_tokens: u64,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub output_tokens: u64,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub micro_usd: u64,
    /// Calls made again after a crash (their cost may have been paid twice).
    #[serde(skip_serializing_if = "is_zero")]
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub after_crash: u64,
    /// Calls answered by the simulated provider.
    #[serde(skip_serializing_if = "is_zero")]
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub simulated: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl CostLine {
    fn add(&mut self, reply: &crate::llm::LlmReply) {
        // Saturating: a log may hold figures from a hostile server recorded before they were
        // bounded, and a report must still be made of it.
        self.calls = self.calls.saturating_add(1);
        self.input_tokens = self.input_tokens.saturating_add(reply.usage.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(reply.usage.output_tokens);
        self.micro_usd = crate::llm::add_micro_usd(self.micro_usd, reply.cost_micro_usd);
        self.after_crash = self
            .after_crash
            .saturating_add(u64::from(reply.after_crash));
        self.simulated = self.simulated.saturating_add(u64::from(reply.simulated));
    }
}

/// A run's cost, whole and broken down.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CostReport {
    pub total: CostLine,
    pub by_step: BTreeMap<StepId, CostLine>,
    pub by_model: BTreeMap<String, CostLine>,
    /// By UTC day (`2026-11-26`) of the reply.
    pub by_day: BTreeMap<String, CostLine>,
}

/// A run's cost folded from its events one at a time, so that a view following a run adds each
/// reply as it is recorded instead of reading the log again.
#[derive(Debug, Clone, Default)]
pub struct CostTally {
    report: CostReport,
    /// Model calls not answered yet: their step and model.
    calls: HashMap<EventSeq, (StepId, String)>,
}

impl CostTally {
    /// Folds in one event (`seq`, recorded at `at`), in log order.
    pub fn apply(&mut self, seq: EventSeq, at: i64, event: &Event) {
        match event {
            Event::OperationStarted {
                step,
                request: OperationRequest::LlmCall(request),
                ..
            } => {
                self.calls
                    .insert(seq, (step.clone(), request.model.clone()));
            }
            Event::OperationSucceeded {
                op,
                result: OperationResult::LlmReplied(reply),
            } => {
                let Some((step, model)) = self.calls.remove(op) else {
                    return;
                };
                let report = &mut self.report;
                report.total.add(reply);
                report.by_step.entry(step).or_default().add(reply);
                report.by_model.entry(model).or_default().add(reply);
                report.by_day.entry(utc_day(at)).or_default().add(reply);
            }
            Event::OperationFailed { op, .. } => {
                self.calls.remove(op);
            }
            _ => {}
        }
    }

    /// What the calls folded in so far cost.
    pub fn report(&self) -> &CostReport {
        &self.report
    }
}

/// The cost of the calls in a log of `(seq, recorded_at_ms, event)`.
pub fn cost_report<'a>(events: impl IntoIterator<Item = (EventSeq, i64, &'a Event)>) -> CostReport {
    let mut tally = CostTally::default();
    for (seq, at, event) in events {
        tally.apply(seq, at, event);
    }
    tally.report
}

/// The UTC date of a timestamp in milliseconds, `YYYY-MM-DD` (civil-from-days, proleptic
/// Gregorian).
pub fn utc_day(at_ms: i64) -> String {
    let days = at_ms.div_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_calendar_dates() {
        assert_eq!(utc_day(0), "1970-01-01");
        assert_eq!(utc_day(1_795_996_800_000), "2026-11-30");
        assert_eq!(utc_day(951_782_400_000), "2000-02-29");
        assert_eq!(utc_day(-1), "1969-12-31");
    }
}
