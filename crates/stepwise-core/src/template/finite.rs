//! JSON has no infinity or NaN (serde writes them as `null`), so a value holding one is not
//! data a step can record.

use minijinja::value::{Value, ValueKind};

/// How deep into lists and maps the check looks; evaluation fuel keeps real values far
/// shallower.
const MAX_DEPTH: usize = 128;

/// Whether every number in `value` (looked into lists and maps) is finite.
pub(super) fn is_finite(value: &Value) -> bool {
    finite_within(value, MAX_DEPTH)
}

fn finite_within(value: &Value, depth: usize) -> bool {
    match value.kind() {
        ValueKind::Number => f64::try_from(value.clone()).map_or(true, f64::is_finite),
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable if depth > 0 => {
            let Ok(items) = value.try_iter() else {
                return true;
            };
            let is_map = value.kind() == ValueKind::Map;
            items.into_iter().all(|item| {
                let member = if is_map {
                    value.get_item(&item).unwrap_or_default()
                } else {
                    item
                };
                finite_within(&member, depth - 1)
            })
        }
        _ => true,
    }
}
