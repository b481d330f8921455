//! Compensation: when a run is about to end failed or cancelled, the compensations of the
//! steps that succeeded (`compensate:`) join it, the step that succeeded last first, each
//! after the one before whatever became of it — gated and recorded like any step, so that
//! resume and replay cover them. A cancel asked before they joined does not stop them; one
//! asked after does. The run then ends as it was going to (its failed steps, and any
//! compensation that failed, named).

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
        Ok(())
    }

    /// Whether a cancel applies to `step` (a compensation's only if asked after the
    /// compensations joined).
    pub fn cancels(&self, step: &StepId) -> bool {
        self.workflow
            .step_index(step)
            .map_or(self.cancel_requested, |index| self.cancelled(index))
    }

    /// [`RunState::cancels`] by index.
    pub(super) fn cancelled(&self, index: usize) -> bool {
        match self.workflow.steps[index].compensates {
            Some(_) => self.compensations_cancelled,
            None => self.cancel_requested,
        }
    }
}
