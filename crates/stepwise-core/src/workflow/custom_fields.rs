//! Compiling a step of a custom type (`type: NAME`, a manifest's): its manifest found, its
//! `with:` inputs compiled as templates and, where written literally, checked against the
//! manifest's schema at the line they are on.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::fields::StepContext;
use super::{Action, CustomAction};
use crate::custom_step::literal_input_errors;

impl StepContext<'_, '_> {
    pub(super) fn custom_action(
        &mut self,
        type_name: &str,
        with: &BTreeMap<String, serde_json::Value>,
    ) -> Option<Action> {
        let manifest = match self.compiler.step_types.get(type_name) {
            None => {
                self.error(
                    "type",
                    format!(
                        "unknown step type `{type_name}`: the built-in types are {}, and no manifest `{type_name}.yaml` declares it in the workspace's `.stepwise/steps/` or the user's `stepwise/steps/` (see `stepwise steps`)",
                        crate::custom_step::BUILTIN_TYPE_NAMES.join(", ")
                    ),
                );
                return None;
            }
            Some(Err(why)) => {
                self.error(
                    "type",
                    format!("step type `{type_name}` cannot be used: its manifest {why}"),
                );
                return None;
            }
            Some(Ok(manifest)) => Arc::clone(manifest),
        };
        let templates = self.value_templates(with)?;
        if self.compiler.strict {
            let written = serde_json::Value::Object(
                with.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            );
            let problems = literal_input_errors(&manifest.inputs, &written);
            if !problems.is_empty() {
                for (input, message) in problems {
                    let field = input.filter(|i| with.contains_key(i));
                    self.error(field.as_deref().unwrap_or("with"), message);
                }
                return None;
            }
        }
        Some(Action::Custom(CustomAction {
            manifest,
            with: templates,
        }))
    }
}
