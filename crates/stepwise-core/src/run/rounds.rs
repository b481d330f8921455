//! Rounds of a step that repeats (`repeat: {max, until}`): when a round succeeds, `until` is
//! checked with the round's `output`, `previous` and `round`; unless it is true, or `max`
//! rounds have run, the success becomes `StepRoundEnded` and the step runs again, its
//! templates seeing `round` and `previous`. Every round is recorded; the step's output is its
//! last round's.

use serde_json::{Value, json};

use super::state::{RunState, StateError};
use crate::event::Event;
use crate::ids::{EventSeq, StepId};
use crate::template::Scope;

impl RunState {
    /// The step's own names in its templates: `round` and `previous`, for a step that repeats.
    pub(super) fn add_round(&self, index: usize, scope: &mut Scope) {
        if self.workflow.steps[index].repeat.is_none() {
            return;
        }
        let state = &self.steps[index];
        scope.set_local("round", &json!(state.round));
        scope.set_local("previous", state.previous.as_ref().unwrap_or(&Value::Null));
    }

    /// Whether round `round` of step `step` may end now: the step repeats, is in that round,
    /// and has rounds left.
    pub(super) fn check_round_end(
        &self,
        seq: EventSeq,
        step: &StepId,
        round: u32,
    ) -> Result<(), StateError> {
        let i = self.index_of(seq, step)?;
        let max = self.workflow.steps[i].repeat.as_ref().map_or(0, |r| r.max);
        let state = &self.steps[i];
        if round < max && round == state.round && !state.status.is_terminal() {
            return Ok(());
        }
        Err(StateError::Unexpected {
            seq,
            message: format!(
                "round {round} of step `{step}` cannot end: the step is in round {}, of a workflow that allows {max}",
                state.round
            ),
        })
    }

    /// `event`, or, when it ends a round of a step that has rounds left and whose `until` is
    /// not true yet, `StepRoundEnded`; a failure when `until` cannot be told.
    pub(super) fn after_round(&self, event: Event) -> Event {
        let Event::StepSucceeded {
            step,
            attempt,
            output,
        } = event
        else {
            return event;
        };
        let index = match self.workflow.step_index(&step) {
            Some(index) => index,
            None => {
                return Event::StepSucceeded {
                    step,
                    attempt,
                    output,
                };
            }
        };
        // A `for_each` step's iterations repeat, each on its own; the step gathers them once.
        let step_def = &self.workflow.steps[index];
        let (Some(repeat), None) = (&step_def.repeat, &step_def.for_each) else {
            return Event::StepSucceeded {
                step,
                attempt,
                output,
            };
        };
        // What a round passes on must stay readable when recorded with the next round's.
        if crate::json_depth::deeper_than(&output, crate::json_depth::MAX_VALUE_DEPTH) {
            return Event::StepFailed {
                step,
                attempt,
                error: format!(
                    "round {} gave an output nested deeper than {} levels (does it hold `previous` whole each round?)",
                    self.steps[index].round,
                    crate::json_depth::MAX_VALUE_DEPTH
                ),
                output: None,
            };
        }
        let round = self.steps[index].round;
        let done = match &repeat.until {
            None => false,
            Some(until) => {
                let mut scope = self.scope_for(index);
                scope.set_local("output", &output);
                match until.eval(&scope) {
                    Ok(Value::Bool(done)) => done,
                    Ok(other) => {
                        return Event::StepFailed {
                            step,
                            attempt,
                            error: format!("`until` must be true or false, got {other}"),
                            output: Some(output),
                        };
                    }
                    Err(e) => {
                        return Event::StepFailed {
                            step,
                            attempt,
                            error: format!("`until`: {e}"),
                            output: Some(output),
                        };
                    }
                }
            }
        };
        if done || round >= repeat.max {
            return Event::StepSucceeded {
                step,
                attempt,
                output,
            };
        }
        Event::StepRoundEnded {
            step,
            round,
            output,
        }
    }
}
