//! Compensation: when a run is about to end failed or cancelled, the compensations of the
//! steps that succeeded (`compensate:`) join it, the step that succeeded last first, each
//! after the one before whatever became of it — gated and recorded like any step, so that
//! resume and replay cover them. A cancel does not stop them (a person may reject one that
//! asks, and a `timeout` bounds one that hangs), however often it is asked. The run then ends
//! as it was going to when they joined: failed (its failed steps, and any compensation that
//! failed, named) or cancelled.

use super::state::{RunState, StateError, StepStatus};
use crate::event::Event;
use crate::ids::{EventSeq, StepId};

impl RunState {
    /// The `CompensationStarted` the run needs now: it would end failed or cancelled, and
    /// steps with a compensation succeeded.
    pub(super) fn compensation_to_start(&self) -> Option<Event> {
        if self.compensating {
            return None;
        }
        let failed = self.steps().any(|(def, state)| {
            def.iteration.is_none()
                && matches!(state.status, StepStatus::Failed | StepStatus::Rejected)
        });
        if !failed && !self.cancel_requested {
            return None;
        }
        let mut undone: Vec<(EventSeq, StepId)> = self
            .steps()
            .filter(|(def, _)| def.compensation.is_some() && def.iteration.is_none())
            .filter_map(|(def, state)| {
                (state.status == StepStatus::Succeeded)
                    .then_some(state.succeeded_at)
                    .flatten()
                    .map(|at| (at, def.id.clone()))
            })
            .collect();
        if undone.is_empty() {
            return None;
        }
        undone.sort_by(|a, b| b.cmp(a));
        Some(Event::CompensationStarted {
            steps: undone.into_iter().map(|(_, id)| id).collect(),
        })
    }

    /// Joins the compensations of `steps` (in that order) to the run.
    pub(super) fn join_compensations(
        &mut self,
        seq: EventSeq,
        steps: &[StepId],
    ) -> Result<(), StateError> {
        let mut compensations = Vec::with_capacity(steps.len());
        for id in steps {
            let i = self.index_of(seq, id)?;
            let Some(compensation) = &self.workflow.steps[i].compensation else {
                return Err(StateError::Unexpected {
                    seq,
                    message: format!("step `{id}` has no compensation"),
                });
            };
            compensations.push((**compensation).clone());
        }
        let first = self.steps.len();
        self.workflow = std::sync::Arc::new(self.workflow.with_compensations(&compensations));
        for k in 0..compensations.len() {
            self.steps
                .push(super::step::StepState::new_blocked(usize::from(k > 0)));
        }
        if !compensations.is_empty() {
            self.dirty.insert(first);
        }
        self.compensating = true;
        self.cancelled_when_compensating = self.cancel_requested;
        Ok(())
    }

    /// Whether the run ends cancelled (else failed or succeeded, as its steps say): a cancel
    /// asked while compensations of a failed run ran does not make it cancelled.
    pub(super) fn ends_cancelled(&self) -> bool {
        self.cancel_requested && (!self.compensating || self.cancelled_when_compensating)
    }

    /// Why `CompensationStarted` cannot be applied now, if it cannot: it comes once, and names
    /// each step once, each succeeded and with a compensation.
    pub(super) fn check_compensation_started(
        &self,
        seq: EventSeq,
        steps: &[StepId],
    ) -> Result<(), StateError> {
        let unexpected = |message: String| Err(StateError::Unexpected { seq, message });
        if self.compensating {
            return unexpected("starts compensations a second time".to_string());
        }
        let mut seen = std::collections::HashSet::new();
        for id in steps {
            let i = self.index_of(seq, id)?;
            if !seen.insert(id) {
                return unexpected(format!("names step `{id}` twice"));
            }
            if self.workflow.steps[i].compensation.is_none() {
                return unexpected(format!("undoes step `{id}`, which has no compensation"));
            }
            if self.steps[i].status != StepStatus::Succeeded {
                return unexpected(format!("undoes step `{id}`, which did not succeed"));
            }
        }
        Ok(())
    }

    /// Whether a cancel applies to `step` (never to a compensation).
    pub fn cancels(&self, step: &StepId) -> bool {
        self.workflow
            .step_index(step)
            .map_or(self.cancel_requested, |index| self.cancelled(index))
    }

    /// [`RunState::cancels`] by index.
    pub(super) fn cancelled(&self, index: usize) -> bool {
        self.cancel_requested && self.workflow.steps[index].compensates.is_none()
    }
}
