//! Compensations (`compensate:`): a step that undoes another, checked like any step — as if it
//! came right after the step it undoes, whose output (and whatever that step may read) it may
//! read — and kept with that step until a run that fails or is cancelled joins it (see the
//! run's `compensate`).

use std::collections::{BTreeMap, HashMap};

use super::compile::{Compiler, StepPlace};
use super::def::StepDef;
use super::{AfterDef, InputDef, Step, Workflow};
use crate::ids::StepId;

impl Compiler<'_> {
    /// Checks each step's `compensate` and keeps it with its step in `steps` (when every step
    /// compiled).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn compile_compensations(
        &mut self,
        defs: &[StepDef],
        places: &[StepPlace],
        needs: &[Vec<usize>],
        index: &HashMap<StepId, usize>,
        inputs: &BTreeMap<String, InputDef>,
        order_ok: bool,
        steps: &mut [Step],
    ) {
        let mut ids: HashMap<StepId, usize> = index.clone();
        for (i, def) in defs.iter().enumerate() {
            let Some(compensation) = &def.compensate else {
                continue;
            };
            let step = def.id.value.as_str();
            let id = compensation.id.value.as_str();
            let place = places[i];
            let bad = |compiler: &mut Self, message: String| {
                compiler.field_error(place, step, "compensate", message);
            };
            if !super::compile::is_identifier(id) {
                bad(
                    self,
                    format!(
                        "the compensation's id `{id}` is not an identifier (letters, digits and `_`, not starting with a digit)"
                    ),
                );
                continue;
            }
            if ids.contains_key(id) {
                bad(
                    self,
                    format!("the compensation's id `{id}` is taken: give it one no other step has"),
                );
                continue;
            }
            let unsupported = [
                ("needs", !compensation.needs.is_empty()),
                ("after", compensation.after.is_some()),
                ("for_each", compensation.for_each.is_some()),
                ("repeat", compensation.repeat.is_some()),
                ("compensate", compensation.compensate.is_some()),
            ];
            if let Some((field, _)) = unsupported.iter().find(|(_, set)| *set) {
                bad(
                    self,
                    format!(
                        "a compensation takes no `{field}`: it runs once, after the step it undoes, when the run fails or is cancelled"
                    ),
                );
                continue;
            }
            // Checked as a step right after the one it undoes.
            let at = needs.len();
            let mut extended = needs.to_vec();
            extended.push(vec![i]);
            ids.insert(StepId::from(id), at);
            // Its own fields are found from its own `id` on.
            let own_place = StepPlace {
                line: compensation.id.referenced.line() as u32,
                column: compensation.id.referenced.column() as u32,
                next_line: place.next_line,
            };
            let compiled = self.compile_step(
                at,
                compensation,
                own_place,
                &extended,
                &ids,
                inputs,
                order_ok,
            );
            let kind = compiled.as_ref().map(|c| c.action.type_name().to_string());
            if let Some(kind) = kind.filter(|k| ["workflow", "plan", "agent"].contains(&k.as_str()))
            {
                bad(
                    self,
                    format!(
                        "a compensation cannot be a `{kind}` step: use a command, an edit or another plain step"
                    ),
                );
                continue;
            }
            if let (Some(mut compiled), Some(undone)) = (compiled, steps.get_mut(i)) {
                compiled.needs = Vec::new();
                compiled.after = AfterDef::Finished;
                compiled.compensates = Some(undone.id.clone());
                undone.compensation = Some(Box::new(compiled));
            }
        }
    }
}

impl Workflow {
    /// This workflow with `compensations` joined at its end, one after the other, each whatever
    /// became of the one before.
    pub(crate) fn with_compensations(&self, compensations: &[Step]) -> Workflow {
        let first = self.steps.len();
        let mut steps = self.steps.clone();
        let mut index = self.index.clone();
        for (k, compensation) in compensations.iter().enumerate() {
            let mut step = compensation.clone();
            step.needs = if k == 0 {
                Vec::new()
            } else {
                vec![first + k - 1]
            };
            step.dependents = if k + 1 < compensations.len() {
                vec![first + k + 1]
            } else {
                Vec::new()
            };
            step.after = AfterDef::Finished;
            index.insert(step.id.clone(), first + k);
            steps.push(step);
        }
        self.with_steps(steps, index)
    }
}
