//! The inputs a run starts with: typed, defaulted, and refused when unknown or missing.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use thiserror::Error;

use super::{InputDef, InputType, Workflow};

/// An input given on the command line (or by the app) that does not fit the workflow.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InputError {
    #[error("unknown input `{name}`; the workflow declares: {declared}")]
    Unknown { name: String, declared: String },
    #[error("input `{name}` is required (it has no default)")]
    Missing { name: String },
    #[error("input `{name}` must be {expected}, got `{value}`")]
    WrongType {
        name: String,
        expected: &'static str,
        value: String,
    },
}

impl InputType {
    fn describe(self) -> &'static str {
        match self {
            InputType::String => "a string",
            InputType::Integer => "an integer",
            InputType::Number => "a number",
            InputType::Boolean => "a boolean (true or false)",
            InputType::List => "a JSON list",
            InputType::Object => "a JSON object",
        }
    }

    fn accepts(self, value: &Value) -> bool {
        match self {
            InputType::String => value.is_string(),
            InputType::Integer => value.is_i64() || value.is_u64(),
            InputType::Number => value.is_number(),
            InputType::Boolean => value.is_boolean(),
            InputType::List => value.is_array(),
            InputType::Object => value.is_object(),
        }
    }

    /// Reads a value given as text (`--input name=text`).
    fn parse(self, text: &str) -> Option<Value> {
        match self {
            InputType::String => Some(Value::String(text.to_string())),
            InputType::Integer => text.trim().parse::<i64>().ok().map(Value::from),
            InputType::Number => text
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number),
            InputType::Boolean => match text.trim() {
                "true" | "yes" | "1" => Some(Value::Bool(true)),
                "false" | "no" | "0" => Some(Value::Bool(false)),
                _ => None,
            },
            // A value nested deeper than a workflow file may be is not taken: recorded, it
            // would make the run unreadable (see `json_depth`).
            InputType::List | InputType::Object => serde_json::from_str::<Value>(text)
                .ok()
                .filter(|v| self.accepts(v))
                .filter(|v| !crate::json_depth::deeper_than(v, crate::json_depth::MAX_VALUE_DEPTH)),
        }
    }
}

/// Checks that a declared default has the declared type.
pub(super) fn check_default(name: &str, input: &InputDef) -> Result<(), String> {
    match &input.default {
        Some(value) if !input.kind.accepts(value) => Err(format!(
            "the default of input `{name}` must be {}, got `{value}`",
            input.kind.describe()
        )),
        _ => Ok(()),
    }
}

impl Workflow {
    /// Builds the run's `inputs` object from text values, applying defaults.
    pub fn resolve_inputs(&self, given: &BTreeMap<String, String>) -> Result<Value, InputError> {
        self.resolve_with(given.keys(), |name, kind| {
            given.get(name).map(|text| {
                kind.parse(text).ok_or_else(|| InputError::WrongType {
                    name: name.to_string(),
                    expected: kind.describe(),
                    value: text.clone(),
                })
            })
        })
    }

    /// Builds the run's `inputs` object from values a calling workflow rendered (a string
    /// is read as text for an input of another type), applying defaults.
    pub fn resolve_input_values(&self, given: &Map<String, Value>) -> Result<Value, InputError> {
        self.resolve_with(given.keys(), |name, kind| {
            given.get(name).map(|value| match value {
                value if kind.accepts(value) => Ok(value.clone()),
                Value::String(text) => kind
                    .parse(text)
                    .ok_or_else(|| wrong_type(name, kind, value)),
                value => Err(wrong_type(name, kind, value)),
            })
        })
    }

    fn resolve_with<'n>(
        &self,
        mut names: impl Iterator<Item = &'n String>,
        value_of: impl Fn(&str, InputType) -> Option<Result<Value, InputError>>,
    ) -> Result<Value, InputError> {
        if let Some(name) = names.find(|name| !self.inputs.contains_key(*name)) {
            let declared = if self.inputs.is_empty() {
                "(none)".to_string()
            } else {
                self.inputs.keys().cloned().collect::<Vec<_>>().join(", ")
            };
            return Err(InputError::Unknown {
                name: name.clone(),
                declared,
            });
        }
        let mut values = Map::new();
        for (name, input) in &self.inputs {
            let value = match (value_of(name, input.kind), &input.default) {
                (Some(value), _) => value?,
                (None, Some(default)) => default.clone(),
                (None, None) => return Err(InputError::Missing { name: name.clone() }),
            };
            values.insert(name.clone(), value);
        }
        Ok(Value::Object(values))
    }
}

/// A value given for an input that is not of its type.
fn wrong_type(name: &str, kind: InputType, value: &Value) -> InputError {
    let mut shown = value.to_string();
    if shown.len() > 200 {
        let mut end = 200;
        while !shown.is_char_boundary(end) {
            end -= 1;
        }
        shown.truncate(end);
        shown.push('…');
    }
    InputError::WrongType {
        name: name.to_string(),
        expected: kind.describe(),
        value: shown,
    }
}
