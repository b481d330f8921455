//! A workflow's `outputs`: what it gives back to a workflow that runs it as a step. Each is
//! a template over the run's `inputs` and any of its steps (all have finished when they are
//! evaluated).

use std::collections::{BTreeMap, HashMap};

use super::compile::{Compiler, top_level_position};
use super::def::WorkflowDef;
use crate::ids::StepId;
use crate::template::ValueTemplate;

impl Compiler<'_> {
    /// Compiles `outputs`, each error placed at the key.
    pub(super) fn compile_outputs(
        &mut self,
        def: &WorkflowDef,
        index: &HashMap<StepId, usize>,
    ) -> Option<BTreeMap<String, ValueTemplate>> {
        let outputs = def.outputs.as_ref()?;
        let (line, column) = top_level_position(self.source(), "outputs");
        let mut compiled = BTreeMap::new();
        for (name, value) in outputs {
            let template = match ValueTemplate::parse(value) {
                Ok(template) => template,
                Err(e) => {
                    self.error_at(
                        line,
                        column,
                        None,
                        format!("`outputs.{name}`: {}", e.message),
                    );
                    continue;
                }
            };
            for expr in template.exprs() {
                if self.strict
                    && let Err(e) = expr.lint()
                {
                    self.error_at(
                        line,
                        column,
                        None,
                        format!("`outputs.{name}`: {}", e.message),
                    );
                }
                for input in expr.input_refs() {
                    if !def.inputs.contains_key(input) {
                        self.error_at(
                            line,
                            column,
                            None,
                            format!("`outputs.{name}` reads input `{input}`, which the workflow does not declare"),
                        );
                    }
                }
                for step in expr.step_refs() {
                    if !index.contains_key(&StepId::from(step.as_str())) {
                        self.error_at(
                            line,
                            column,
                            None,
                            format!("`outputs.{name}` reads step `{step}`, which the workflow does not have"),
                        );
                    }
                }
                if let Some(local) = expr.locals().iter().next() {
                    self.error_at(
                        line,
                        column,
                        None,
                        format!("`outputs.{name}` reads `{local}`, which only a step's own templates may read"),
                    );
                }
            }
            compiled.insert(name.clone(), template);
        }
        Some(compiled)
    }
}
