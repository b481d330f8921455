//! Replay: re-drive the core over a recorded log, answering every operation from the log, and
//! check that it takes exactly the recorded decisions. Nothing is performed.

use std::collections::VecDeque;
use std::sync::Arc;

use serde::Serialize;
use thiserror::Error;

use super::state::{RunState, RunStatus, StateError};
use crate::event::Event;
use crate::ids::EventSeq;
use crate::workflow::Workflow;

/// The first place where the core, as it is now, decides differently from the log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Divergence {
    /// Seq of the first event that does not match (one past the end if the log stops short).
    pub seq: EventSeq,
    /// What the core decides at that point (`None`: nothing).
    pub expected: Option<Event>,
    /// What the log holds there (`None`: the log ends).
    pub recorded: Option<Event>,
}

/// A replay that matched.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayReport {
    pub events: usize,
    pub decisions: usize,
    pub status: RunStatus,
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum ReplayError {
    #[error("the log cannot be replayed: {0}")]
    State(#[from] StateError),
    #[error("replay diverged at event {}", .0.seq)]
    Diverged(Box<Divergence>),
}

/// Replays `events` (seq 1 = `RunStarted`) against `workflow`.
pub fn replay(
    workflow: Arc<Workflow>,
    events: &[(EventSeq, Event)],
) -> Result<ReplayReport, ReplayError> {
    let mut iter = events.iter();
    let started = match iter.next() {
        Some((EventSeq::FIRST, Event::RunStarted(started))) => started.clone(),
        other => {
            let seq = other.map_or(EventSeq::FIRST, |(seq, _)| *seq);
            return Err(StateError::NotStarted { seq }.into());
        }
    };
    // A fork starts with events of the run it was forked from, decided there (under that
    // run's inputs and workflow): they are taken as they are, and replay checks from there.
    let reused = started.fork.as_ref().map_or(0, |fork| fork.reused);
    let mut state = RunState::new(workflow, started)?;
    let mut next_decision_seq = EventSeq::FIRST.next();
    for (seq, event) in iter
        .by_ref()
        .take(usize::try_from(reused).unwrap_or(usize::MAX))
    {
        state.apply(*seq, event)?;
        next_decision_seq = seq.next();
    }
    // A run's first decisions follow `RunStarted` at once. A fork's driver may first record
    // inputs of its own (an edit voided, an outcome lost), each followed by what it decides:
    // its first decisions are taken when the log shows the first of them, or after the
    // first input, as the driver took them.
    let mut expected: VecDeque<Event> = if reused == 0 {
        state.advance()?.into()
    } else {
        VecDeque::new()
    };
    let mut advanced = reused == 0;
    let mut decisions = 0;
    // `state` already holds the expected decisions applied; `position` walks the log beside it.
    for (seq, event) in iter {
        if event.is_decision() {
            if !advanced {
                expected = state.advance()?.into();
                advanced = true;
            }
            let want = expected.pop_front();
            if want.as_ref() != Some(event) {
                return Err(diverged(*seq, want, Some(event.clone())));
            }
            decisions += 1;
            next_decision_seq = seq.next();
            continue;
        }
        if let Some(want) = expected.pop_front() {
            return Err(diverged(*seq, Some(want), Some(event.clone())));
        }
        if let Err(e) = state.apply(*seq, event) {
            return Err(match e {
                StateError::Unexpected { .. } | StateError::UnknownStep { .. } => {
                    diverged(*seq, None, Some(event.clone()))
                }
                other => other.into(),
            });
        }
        expected = state.advance()?.into();
        advanced = true;
        next_decision_seq = seq.next();
    }
    if !advanced {
        expected = state.advance()?.into();
    }
    // A run that was recorded but never driven has only `RunStarted` (and, for a fork, what it
    // reused): its first decisions are still to be taken, which is not a divergence.
    let never_driven = events.len() as u64 == 1 + reused;
    if let Some(want) = expected.pop_front().filter(|_| !never_driven) {
        return Err(diverged(next_decision_seq, Some(want), None));
    }
    Ok(ReplayReport {
        events: events.len(),
        decisions,
        status: state.status(),
    })
}

fn diverged(seq: EventSeq, expected: Option<Event>, recorded: Option<Event>) -> ReplayError {
    ReplayError::Diverged(Box::new(Divergence {
        seq,
        expected,
        recorded,
    }))
}
