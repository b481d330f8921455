//! How deeply a JSON value nests. A value is stored inside an event's payload, a few levels
//! down, and read back with serde_json, which refuses anything nested deeper than 128 levels: a
//! value from outside (a model's structured reply, an input) nested close to that would be
//! recorded and then make its run unreadable for good. So such values are bounded where they
//! come in, well below the reader's limit, and no event is written that nests beyond it.

use serde_json::Value;

/// The deepest a value from outside may nest (as deep as a workflow file may).
pub const MAX_VALUE_DEPTH: usize = 64;

/// The deepest a whole event payload may nest: what serde_json reads back (128 levels), less a
/// margin for the wrapping a payload gets when it is decoded.
pub const MAX_PAYLOAD_DEPTH: usize = 120;

/// Whether `value` nests deeper than `limit` levels (a scalar is level 0, `[1]` level 1).
pub fn deeper_than(value: &Value, limit: usize) -> bool {
    match value {
        Value::Array(items) => limit == 0 || items.iter().any(|v| deeper_than(v, limit - 1)),
        Value::Object(map) => limit == 0 || map.values().any(|v| deeper_than(v, limit - 1)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize) -> Value {
        let text = format!("{}1{}", "[".repeat(levels), "]".repeat(levels));
        serde_json::from_str(&text).expect("json")
    }

    #[test]
    fn depth_counts_containers() {
        assert!(!deeper_than(&serde_json::json!(1), 0));
        assert!(deeper_than(&nested(1), 0));
        assert!(!deeper_than(&nested(64), MAX_VALUE_DEPTH));
        assert!(deeper_than(&nested(65), MAX_VALUE_DEPTH));
        assert!(deeper_than(
            &serde_json::json!({"a": {"b": [nested(64)]}}),
            MAX_VALUE_DEPTH
        ));
    }
}
