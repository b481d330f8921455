//! The iterations of a `for_each` step, joined to a run's workflow when the step starts: one
//! copy of the step per item, named `step[k]`, needing nothing (the step's own needs were met),
//! and needed by the step, which ends once they all have.

use serde_json::Value;

use super::{Iteration, Workflow};
use crate::ids::StepId;

impl Workflow {
    /// This workflow with the iterations of step `parent` over `items` joined at its end.
    pub fn with_iterations(&self, parent: usize, items: &[Value]) -> Workflow {
        let base = &self.steps[parent];
        let first = self.steps.len();
        let mut steps = self.steps.clone();
        let mut index = self.index.clone();
        for (k, item) in items.iter().enumerate() {
            let mut step = base.clone();
            step.id = StepId::from(format!("{}[{k}]", base.id));
            step.needs = Vec::new();
            step.dependents = vec![parent];
            // The step's `when` was true: its iterations run.
            step.when = None;
            step.for_each = None;
            step.iteration = Some(Iteration {
                parent,
                index: k,
                item: item.clone(),
            });
            index.insert(step.id.clone(), first + k);
            steps.push(step);
        }
        self.with_steps(steps, index)
    }
}
