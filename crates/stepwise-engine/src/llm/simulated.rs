//! The simulated provider: deterministic replies made up from the request, for demos and tests
//! that must not need a model. Never chosen silently (a settings file must name it), and its
//! replies are marked `simulated` wherever they are shown.

use serde_json::{Value, json};
use stepwise_core::llm::{LlmRequest, Role, TokenUsage};

use super::Answer;

/// The reply: for structured output, the simplest JSON value the schema accepts; otherwise a
/// line that says what was asked.
pub(super) fn reply(request: &LlmRequest) -> Answer {
    let text = match &request.output_schema {
        Some(schema) => example(schema, 0).to_string(),
        None => {
            let asked = request
                .messages
                .iter()
                .rev()
                .find(|m| m.role == Role::User)
                .map(|m| m.content.as_str())
                .unwrap_or_default();
            let first_line = asked.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            let mut shown: String = first_line.chars().take(120).collect();
            if shown.len() < first_line.len() {
                shown.push('…');
            }
            format!(
                "[simulated reply from `{}`] You asked: {shown}",
                request.model
            )
        }
    };
    let input_tokens = stepwise_core::llm::estimate(request).input_tokens;
    let output_tokens = (text.len() as u64)
        .div_ceil(3)
        .min(u64::from(request.max_tokens));
    Answer {
        text,
        tool_calls: Vec::new(),
        finish_reason: "stop".into(),
        usage: Some(TokenUsage {
            input_tokens,
            output_tokens,
        }),
        attempts: 1,
    }
}

/// The simplest value of a schema: its `const`, first `enum` value or `default`, else one of
/// its type with every required property.
fn example(schema: &Value, depth: usize) -> Value {
    if depth > 16 {
        return Value::Null;
    }
    if let Some(value) = schema.get("const") {
        return value.clone();
    }
    if let Some(first) = schema.get("enum").and_then(|e| e.get(0)) {
        return first.clone();
    }
    if let Some(value) = schema.get("default") {
        return value.clone();
    }
    if let Some(first) = ["anyOf", "oneOf", "allOf"]
        .iter()
        .find_map(|k| schema.get(*k).and_then(|v| v.get(0)))
    {
        return example(first, depth + 1);
    }
    let kind = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(types)) => types.first().and_then(Value::as_str).unwrap_or("null"),
        _ if schema.get("properties").is_some() => "object",
        _ => "null",
    };
    match kind {
        "object" => {
            let mut object = serde_json::Map::new();
            let properties = schema.get("properties");
            for name in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                let property = properties.and_then(|p| p.get(name)).unwrap_or(&Value::Null);
                object.insert(name.to_string(), example(property, depth + 1));
            }
            Value::Object(object)
        }
        "array" => {
            let min = schema.get("minItems").and_then(Value::as_u64).unwrap_or(0);
            let item = example(schema.get("items").unwrap_or(&Value::Null), depth + 1);
            Value::Array((0..min.min(8)).map(|_| item.clone()).collect())
        }
        "string" => {
            let min = schema.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
            json!(
                "simulated"
                    .chars()
                    .cycle()
                    .take(min.max(9))
                    .collect::<String>()
            )
        }
        "integer" | "number" => json!(schema.get("minimum").and_then(Value::as_i64).unwrap_or(0)),
        "boolean" => json!(false),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_of_a_schema_is_valid_against_it() {
        let schema = json!({"type": "object", "required": ["label", "score", "tags", "ok"], "properties": {
            "label": {"enum": ["bug", "feature"]}, "score": {"type": "integer", "minimum": 1},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1}, "ok": {"type": "boolean"}}});
        let value = example(&schema, 0);
        assert_eq!(value["label"], "bug");
        assert!(jsonschema::is_valid(&schema, &value), "{value}");
    }
}
