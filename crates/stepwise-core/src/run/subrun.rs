//! A `workflow` step: it asks the engine to run a recorded workflow file as a child run, and
//! its output is what that run gives back (`outputs`).

use serde_json::{Map, Value};

use super::decide::fail;
use super::state::RunState;
use crate::event::Event;
use crate::operation::OperationRequest;
use crate::subrun::MAX_DEPTH;
use crate::template::Scope;
use crate::workflow::Action;

impl RunState {
    /// A `workflow` step's attempt begins: its inputs rendered, the child run requested.
    pub(super) fn decide_subworkflow(&mut self, index: usize) -> Vec<Event> {
        let step = &self.workflow.steps[index];
        let id = step.id.clone();
        let attempt = self.steps[index].attempt;
        let Action::Workflow { path, inputs } = &step.action else {
            return Vec::new();
        };
        let depth = self.started.parent.as_ref().map_or(0, |p| p.depth) + 1;
        if depth > MAX_DEPTH {
            return vec![fail(
                &id,
                attempt,
                format!(
                    "workflows nest at most {MAX_DEPTH} deep: `{path}` would run at depth {depth}"
                ),
            )];
        }
        if !self.started.subworkflows.contains_key(path) {
            return vec![fail(
                &id,
                attempt,
                format!("the run did not record workflow file `{path}` when it started"),
            )];
        }
        let scope = self.scope_for(index);
        let mut values = Map::new();
        for (name, template) in inputs {
            match template.render(&scope) {
                Ok(value) => {
                    values.insert(name.clone(), value);
                }
                Err(e) => return vec![fail(&id, attempt, format!("input `{name}`: {e}"))],
            }
        }
        let request = OperationRequest::RunWorkflow {
            workflow: path.clone(),
            inputs: Value::Object(values),
            depth,
        };
        self.start_operation(index, request)
    }

    /// What the run gives back to the run that started it: its workflow's `outputs`,
    /// evaluated over its inputs and steps, or without them each (top-level) step's output
    /// by id.
    pub fn workflow_outputs(&self) -> Result<Value, String> {
        let Some(outputs) = &self.workflow.outputs else {
            let by_step: Map<String, Value> = self
                .steps()
                .filter(|(def, _)| def.iteration.is_none())
                .filter_map(|(def, state)| {
                    state
                        .output
                        .clone()
                        .map(|output| (def.id.to_string(), output))
                })
                .collect();
            return Ok(Value::Object(by_step));
        };
        let mut scope: Scope = self.base_scope.clone();
        for (i, (def, _)) in self.steps().enumerate() {
            scope.add_step(def.id.as_str(), &self.step_view(i));
        }
        let mut values = Map::new();
        for (name, template) in outputs {
            let value = template
                .render(&scope)
                .map_err(|e| format!("`outputs.{name}`: {e}"))?;
            values.insert(name.clone(), value);
        }
        Ok(Value::Object(values))
    }
}
