//! The step types a workflow may use, with the fields each takes: the built-in ones read from
//! the published schema of the workflow format (so the list can never disagree with what
//! `validate` takes), the custom ones from their manifests' `inputs` schemas.

use serde::Serialize;
use serde_json::Value;

use super::def::workflow_json_schema;

/// One step type, as `stepwise steps` lists it.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepType {
    /// What `type:` names.
    pub name: String,
    pub description: String,
    /// Where it comes from: `built-in`, or the manifest file.
    pub source: String,
    /// For a custom type, what is written under `with:`; for a built-in, the step's fields.
    pub fields: Vec<StepField>,
    /// For a custom type: whether each use waits for a person (`ask` or `allow`).
    pub approval: Option<crate::custom_step::Approval>,
    /// Why a manifest cannot be used, when it cannot.
    pub problem: Option<String>,
}

/// One field a step type takes.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepField {
    pub name: String,
    pub required: bool,
    /// Its JSON types (`string`, `integer`, …), or the definition it refers to.
    pub kind: String,
    pub description: String,
}

/// The built-in step types, in the order the format lists them.
pub fn builtin_step_types() -> Vec<StepType> {
    let schema = workflow_json_schema();
    let variants = schema
        .pointer("/$defs/StepDef/oneOf")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    variants.iter().filter_map(step_type).collect()
}

fn step_type(variant: &Value) -> Option<StepType> {
    let properties = variant.get("properties")?.as_object()?;
    let name = properties.get("type")?.get("const")?.as_str()?.to_string();
    let required: Vec<&str> = variant
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let fields = properties
        .iter()
        .filter(|(field, _)| field.as_str() != "type")
        .map(|(field, spec)| StepField {
            name: field.clone(),
            required: required.contains(&field.as_str()),
            kind: kind_of(spec),
            description: text(spec),
        })
        .collect();
    Some(StepType {
        name,
        description: text(variant),
        source: "built-in".into(),
        fields,
        approval: None,
        problem: None,
    })
}

/// The custom step types of `types`, by name, with their `with:` inputs (a manifest that
/// cannot be used is listed with why).
pub fn custom_step_types(types: &crate::custom_step::StepTypes) -> Vec<StepType> {
    types
        .iter()
        .map(|(name, manifest)| match manifest {
            Ok(manifest) => StepType {
                name: name.to_string(),
                description: manifest.description.clone().unwrap_or_default(),
                source: manifest.path.clone(),
                fields: input_fields(&manifest.inputs),
                approval: Some(manifest.approval),
                problem: None,
            },
            Err(problem) => StepType {
                name: name.to_string(),
                description: String::new(),
                source: String::new(),
                fields: Vec::new(),
                approval: None,
                problem: Some(problem.to_string()),
            },
        })
        .collect()
}

/// The properties of an object schema, as fields.
fn input_fields(schema: &Value) -> Vec<StepField> {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|properties| {
            properties
                .iter()
                .map(|(field, spec)| StepField {
                    name: field.clone(),
                    required: required.contains(&field.as_str()),
                    kind: kind_of(spec),
                    description: text(spec),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn text(value: &Value) -> String {
    value
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A field's type in a word or two: `string`, `integer or null`, `CommandDef`, `list`.
fn kind_of(spec: &Value) -> String {
    if let Some(reference) = spec.get("$ref").and_then(Value::as_str) {
        return reference
            .rsplit('/')
            .next()
            .unwrap_or(reference)
            .to_string();
    }
    match spec.get("type") {
        Some(Value::String(kind)) => kind.clone(),
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        _ if spec.get("anyOf").is_some() || spec.get("oneOf").is_some() => "one of several".into(),
        _ => "any".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_type_of_the_format_is_listed_with_its_required_fields() {
        let types = builtin_step_types();
        let names: Vec<&str> = types.iter().map(|t| t.name.as_str()).collect();
        for name in [
            "read_file",
            "edit_file",
            "run_command",
            "set",
            "approval",
            "prompt",
            "agent",
        ] {
            assert!(names.contains(&name), "{name} missing from {names:?}");
        }
        let command = types.iter().find(|t| t.name == "run_command").unwrap();
        let field = command.fields.iter().find(|f| f.name == "command").unwrap();
        assert!(field.required);
        assert_eq!(field.kind, "CommandDef");
        assert!(!command.description.is_empty());
    }
}
