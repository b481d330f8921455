//! Plans: what a `plan` step asks a model for (steps in the workflow format, validated against
//! the published step schema), how a reply becomes a checked set of steps, and how an approved
//! plan's steps join a run's workflow, after the step that planned them.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::{Action, Workflow, WorkflowErrors, parse_workflow, workflow_json_schema};
use crate::ids::StepId;

/// Steps a plan may have unless its step says otherwise.
pub(super) const DEFAULT_MAX_STEPS: u32 = 10;
/// The most steps a plan may have.
pub(super) const MAX_STEPS_CEILING: u32 = 50;

/// The step types a plan may use (not `plan`: a plan does not plan again).
pub const PLANNABLE_TYPES: &[&str] = &[
    "read_file",
    "edit_file",
    "run_command",
    "set",
    "approval",
    "prompt",
    "summarize",
];

/// The JSON Schema of a plan: `{"steps": [...]}`, each step as the workflow format has it.
pub fn plan_schema(max_steps: u32) -> Value {
    let workflow = workflow_json_schema();
    json!({
        "type": "object",
        "required": ["steps"],
        "properties": {
            "steps": {
                "type": "array",
                "minItems": 1,
                "maxItems": max_steps,
                "items": { "$ref": "#/$defs/StepDef" },
            },
        },
        "$defs": step_defs(&workflow),
    })
}

/// The definitions a step needs (`StepDef` and what it refers to, transitively), not the
/// workflow's others (inputs, budget, policy): a plan's schema is sent with every request.
fn step_defs(workflow: &Value) -> Value {
    let all = workflow.get("$defs").and_then(Value::as_object);
    let mut kept = serde_json::Map::new();
    let mut wanted = vec!["StepDef".to_string()];
    while let Some(name) = wanted.pop() {
        if kept.contains_key(&name) {
            continue;
        }
        let Some(def) = all.and_then(|a| a.get(&name)) else {
            continue;
        };
        collect_refs(def, &mut wanted);
        kept.insert(name, def.clone());
    }
    Value::Object(kept)
}

fn collect_refs(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("$ref", Value::String(r)) => {
                        if let Some(name) = r.strip_prefix("#/$defs/") {
                            into.push(name.to_string());
                        }
                    }
                    _ => collect_refs(inner, into),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, into)),
        _ => {}
    }
}

/// What the model is told a plan is.
pub(super) fn instructions(max_steps: u32) -> String {
    format!(
        "You plan work as the steps of a Stepwise workflow. Reply with only a JSON object \
         {{\"steps\": [...]}} of at most {max_steps} steps. Each step is an object with `id` \
         (lowercase letters, digits and _), `type` (one of {}), the fields of that type, and \
         `needs` (ids of earlier steps of the plan it must wait for). read_file has `path`; \
         edit_file has `path` and `content`, or `find` and `replace`; run_command has \
         `command` (a list of words, or one shell line); set has `values`; approval has \
         `message`. Paths are relative to the workspace. A step may use `${{inputs.NAME}}` and \
         `${{steps.ID.output...}}` of the steps it needs.",
        PLANNABLE_TYPES.join(", ")
    )
}

/// A model's plan (its `steps`) checked as a workflow: ids, needs, templates and fields, with
/// the run's inputs declared. Errors say what is wrong, for the model to try again.
pub fn planned_workflow(label: &str, steps: &Value, inputs: &Workflow) -> Result<Workflow, String> {
    let text = json!({
        "name": label,
        "inputs": inputs.inputs,
        "steps": steps,
    })
    .to_string();
    let planned = parse_workflow(label, &text).map_err(|e: WorkflowErrors| {
        e.0.iter()
            .map(|e| match &e.step {
                Some(step) => format!("step `{step}`: {}", e.message),
                None => e.message.clone(),
            })
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    if let Some(undone) = planned.steps.iter().find(|s| s.compensation.is_some()) {
        return Err(format!(
            "step `{}` has `compensate`: a plan's steps may not (compensations are the workflow's own)",
            undone.id
        ));
    }
    if let Some(nested) = planned
        .steps
        .iter()
        .find(|s| matches!(&s.action, Action::Llm(llm) if llm.plan.is_some()))
    {
        return Err(format!(
            "step `{}` is a plan: a plan may not plan again",
            nested.id
        ));
    }
    if let Some(other) = planned
        .steps
        .iter()
        .find(|s| !PLANNABLE_TYPES.contains(&s.action.type_name()))
    {
        return Err(format!(
            "step `{}` is of type `{}`; a plan may use only {}",
            other.id,
            other.action.type_name(),
            PLANNABLE_TYPES.join(", ")
        ));
    }
    Ok(planned)
}

impl Workflow {
    /// This workflow with `planned` steps added after step `after` (its plan step): each
    /// planned step needs `after` (and what it needed within the plan). Ids must be new.
    pub fn with_planned(&self, planned: &Workflow, after: usize) -> Result<Workflow, String> {
        if after >= self.steps.len() {
            return Err(format!("no step {after} to plan after"));
        }
        if let Some(taken) = planned
            .steps
            .iter()
            .find(|s| self.index.contains_key(&s.id))
        {
            return Err(format!(
                "step id `{}` is already used in the workflow",
                taken.id
            ));
        }
        let base = self.steps.len();
        let mut steps = self.steps.clone();
        for step in &planned.steps {
            let mut step = step.clone();
            step.needs = step.needs.iter().map(|n| n + base).collect();
            if !step.needs.contains(&after) {
                step.needs.insert(0, after);
            }
            step.reads = step.reads.iter().map(|r| r + base).collect();
            steps.push(step);
        }
        for step in &mut steps {
            step.dependents.clear();
        }
        let needs: Vec<Vec<usize>> = steps.iter().map(|s| s.needs.clone()).collect();
        for (i, step_needs) in needs.iter().enumerate() {
            for &need in step_needs {
                steps[need].dependents.push(i);
            }
        }
        // An iteration of a `for_each` step is needed by its step, which waits for it in the
        // run's state rather than through `needs`.
        for step in &mut steps {
            if let Some(iteration) = &step.iteration {
                step.dependents.push(iteration.parent);
            }
        }
        let index: HashMap<StepId, usize> = steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.clone(), i))
            .collect();
        Ok(self.with_steps(steps, index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_is_checked_and_joins_after_its_step() {
        let main = parse_workflow(
            "main.yaml",
            "name: main\ninputs:\n  module: {type: string, default: calc.py}\nsteps:\n  - id: read\n    type: read_file\n    path: notes.txt\n  - id: plan\n    type: plan\n    needs: [read]\n    model: m\n    goal: do it\n",
        )
        .expect("main compiles");
        let steps = json!([
            {"id": "look", "type": "read_file", "path": "${inputs.module}"},
            {"id": "test", "type": "run_command", "needs": ["look"], "command": ["python3", "-m", "unittest"]},
        ]);
        let planned = planned_workflow("plan", &steps, &main).expect("the plan compiles");
        let joined = main.with_planned(&planned, 1).expect("joins");
        assert_eq!(joined.steps.len(), 4);
        let look = joined.step_index(&StepId::from("look")).expect("look");
        let test = joined.step_index(&StepId::from("test")).expect("test");
        assert_eq!(joined.steps[look].needs, vec![1]);
        assert_eq!(joined.steps[test].needs, vec![1, look]);
        assert!(joined.steps[1].dependents.contains(&look));

        // What is wrong is said, for the model to try again.
        let bad = json!([{"id": "x", "type": "read_file", "path": "${steps.nope.output}"}]);
        assert!(planned_workflow("plan", &bad, &main).is_err());
        let nested = json!([{"id": "again", "type": "plan", "model": "m", "goal": "more"}]);
        let error = planned_workflow("plan", &nested, &main).unwrap_err();
        assert!(error.contains("may not plan again"), "{error}");
        let agent = json!([{"id": "a", "type": "agent", "model": "m", "instructions": "go"}]);
        let error = planned_workflow("plan", &agent, &main).unwrap_err();
        assert!(error.contains("a plan may use only"), "{error}");
        let taken = json!([{"id": "read", "type": "set", "values": {}}]);
        let planned = planned_workflow("plan", &taken, &main).expect("compiles alone");
        assert!(main.with_planned(&planned, 1).is_err());
    }

    #[test]
    fn the_plan_schema_is_a_usable_json_schema() {
        let schema = plan_schema(3);
        let validator = jsonschema::validator_for(&schema).expect("a schema");
        assert!(validator.is_valid(&json!({"steps": [{"id": "a", "type": "set", "values": {}}]})));
        assert!(!validator.is_valid(&json!({"steps": []})));
        assert!(!validator.is_valid(&json!({"steps": [{"id": "a"}]})));
        let defs = schema["$defs"].as_object().expect("definitions");
        assert!(
            defs.contains_key("StepDef") && !defs.contains_key("BudgetDef"),
            "{defs:?}"
        );
    }
}
