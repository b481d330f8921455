//! Steps with `for_each`: when one is ready its list is evaluated (at most 1,000 items) and
//! `StepExpanded` joins one iteration per item to the run (`workflow::iterations`), each with
//! `item` and `index` in its templates and running as any step does (its own operations,
//! approvals and log entries, as `step[k]`), at most `max_parallel` at once; once they have all
//! ended, the step ends with their outputs in order (a failed iteration fails it, unless
//! `continue_on_error`, which puts `{"error": …}` in its place).

use std::sync::Arc;

use serde_json::{Value, json};

use super::state::{Phase, RunState, StateError, StepStatus};
use crate::event::Event;
use crate::ids::{EventSeq, StepId};
use crate::template::Scope;
use crate::workflow::MAX_ITEMS;

/// The most a `for_each` step's gathered outputs may come to, as JSON.
const MAX_GATHERED_BYTES: usize = 16 * 1024 * 1024;

impl RunState {
    /// `item` and `index` in an iteration's templates.
    pub(super) fn add_item(&self, index: usize, scope: &mut Scope) {
        if let Some(iteration) = &self.workflow.steps[index].iteration {
            scope.set_local("item", &iteration.item);
            scope.set_local("index", &json!(iteration.index));
        }
    }

    /// What a ready step with `for_each` decides: expand, or, once its iterations have all
    /// ended, end. `None` for any other step.
    pub(super) fn decide_for_each(&self, index: usize) -> Option<Vec<Event>> {
        let step = &self.workflow.steps[index];
        let for_each = step.for_each.as_ref()?;
        let id = step.id.clone();
        if let Some(iterations) = &self.steps[index].iterations {
            return Some(vec![self.gathered(
                index,
                iterations,
                for_each.continue_on_error,
            )]);
        }
        let fail = |error: String| Event::StepFailed {
            step: id.clone(),
            attempt: 1,
            error,
            output: None,
        };
        let items = match for_each.items.eval(&self.scope_for(index)) {
            Ok(Value::Array(items)) if items.len() <= MAX_ITEMS => items,
            Ok(Value::Array(items)) => {
                return Some(vec![fail(format!(
                    "`for_each` gave {} items; at most {MAX_ITEMS}",
                    items.len()
                ))]);
            }
            Ok(other) => {
                return Some(vec![fail(format!(
                    "`for_each` must give a list, got {other}"
                ))]);
            }
            Err(e) => return Some(vec![fail(format!("`for_each`: {e}"))]),
        };
        if items.is_empty() {
            return Some(vec![Event::StepSucceeded {
                step: id,
                attempt: 1,
                output: json!([]),
            }]);
        }
        Some(vec![Event::StepExpanded { step: id, items }])
    }

    /// The step's end once its iterations have all ended.
    fn gathered(&self, index: usize, iterations: &[usize], continue_on_error: bool) -> Event {
        let id = self.workflow.steps[index].id.clone();
        let mut outputs = Vec::with_capacity(iterations.len());
        for (k, &i) in iterations.iter().enumerate() {
            let state = &self.steps[i];
            if state.status == StepStatus::Succeeded {
                outputs.push(state.output.clone().unwrap_or(Value::Null));
                continue;
            }
            let why = state
                .error
                .clone()
                .or_else(|| state.reason.clone())
                .unwrap_or_else(|| state.status.as_str().to_string());
            if !continue_on_error {
                return Event::StepFailed {
                    step: id,
                    attempt: 1,
                    error: format!(
                        "iteration {k} ({}) {}: {why}",
                        self.workflow.steps[i].id,
                        state.status.as_str()
                    ),
                    output: None,
                };
            }
            outputs.push(json!({ "error": why, "status": state.status.as_str() }));
        }
        let output = Value::Array(outputs);
        let bytes = serde_json::to_string(&output).map_or(0, |text| text.len());
        if bytes > MAX_GATHERED_BYTES {
            return Event::StepFailed {
                step: id,
                attempt: 1,
                error: format!(
                    "the iterations' outputs come to {bytes} bytes, more than {MAX_GATHERED_BYTES} (16 MiB) one step may pass on; have each iteration keep less (`max_output`, a `set` step)"
                ),
                output: None,
            };
        }
        Event::StepSucceeded {
            step: id,
            attempt: 1,
            output,
        }
    }

    /// Whether step `step` may expand into `items` iterations now.
    pub(super) fn check_expansion(
        &self,
        seq: EventSeq,
        step: &StepId,
        items: usize,
    ) -> Result<(), StateError> {
        let unexpected = |message: String| Err(StateError::Unexpected { seq, message });
        let i = self.index_of(seq, step)?;
        let s = &self.steps[i];
        if self.workflow.steps[i].for_each.is_none() {
            return unexpected(format!("step `{step}` has no `for_each`"));
        }
        if s.iterations.is_some() || s.status.is_terminal() {
            return unexpected(format!("step `{step}` cannot run its iterations again"));
        }
        if items > MAX_ITEMS {
            return unexpected(format!("step `{step}` has more than {MAX_ITEMS} items"));
        }
        Ok(())
    }

    /// `StepExpanded`: the iterations join the run, ready; the step waits for them.
    pub(super) fn expand(&mut self, index: usize, items: &[Value]) {
        let first = self.steps.len();
        self.workflow = Arc::new(self.workflow.with_iterations(index, items));
        for k in 0..items.len() {
            self.steps.push(super::step::StepState::new_blocked(0));
            self.dirty.insert(first + k);
        }
        let s = &mut self.steps[index];
        s.status = StepStatus::Running;
        s.phase = Phase::Blocked;
        s.waiting_needs = items.len();
        s.iterations = Some((first..first + items.len()).collect());
    }

    /// Whether an iteration may start an operation now: fewer than its step's `max_parallel`
    /// of its siblings have one under way.
    pub(super) fn iteration_slot_free(&self, index: usize) -> bool {
        let Some(iteration) = &self.workflow.steps[index].iteration else {
            return true;
        };
        let parent = iteration.parent;
        let Some(limit) = self.workflow.steps[parent]
            .for_each
            .as_ref()
            .and_then(|f| f.max_parallel)
        else {
            return true;
        };
        let busy = self.steps[parent]
            .iterations
            .iter()
            .flatten()
            .filter(|&&i| i != index && matches!(self.steps[i].phase, Phase::InFlight { .. }))
            .count();
        busy < limit as usize
    }
}
