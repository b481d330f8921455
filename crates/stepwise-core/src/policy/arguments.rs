//! An MCP call's arguments against a rule's `arguments:` globs.
//!
//! What a server is handed is what it acts on, so a rule that allows vouches only for values it
//! sees whole: a string that matches its glob and names no parent directory (a `..` would lead
//! a path the glob allows out of it), a number, boolean or null whose JSON text matches, or a
//! list or object every value of which does. A rule that denies or asks matches wherever its
//! glob meets the value: its JSON text, any string within it, or such a string with its `.`
//! and `..` resolved.

use globset::GlobMatcher;
use serde_json::Value;

/// Whether every argument `globs` names is in `given` and meets its glob, for a rule that
/// allows (`vouching`) or one that restricts.
pub(super) fn arguments_match(
    globs: &[(String, GlobMatcher)],
    given: Option<&Value>,
    vouching: bool,
) -> bool {
    let Some(Value::Object(given)) = given else {
        return false;
    };
    globs.iter().all(|(name, glob)| {
        given.get(name).is_some_and(|value| match vouching {
            true => vouches(glob, value),
            false => glob.is_match(value.to_string()) || strings_meet(glob, value),
        })
    })
}

fn vouches(glob: &GlobMatcher, value: &Value) -> bool {
    match value {
        Value::String(text) => glob.is_match(text) && !leads_up(text),
        Value::Array(items) => !items.is_empty() && items.iter().all(|item| vouches(glob, item)),
        Value::Object(map) => !map.is_empty() && map.values().all(|item| vouches(glob, item)),
        Value::Null | Value::Bool(_) | Value::Number(_) => glob.is_match(value.to_string()),
    }
}

/// Whether `glob` matches a string within `value`, as given or resolved.
fn strings_meet(glob: &GlobMatcher, value: &Value) -> bool {
    match value {
        Value::String(text) => {
            glob.is_match(text) || resolved(text).is_some_and(|path| glob.is_match(path))
        }
        Value::Array(items) => items.iter().any(|item| strings_meet(glob, item)),
        Value::Object(map) => map.values().any(|item| strings_meet(glob, item)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// Whether `text`, read as a path, has a `..` component.
fn leads_up(text: &str) -> bool {
    text.split(['/', '\\']).any(|part| part == "..")
}

/// `text` read as a path with its `.` and `..` components resolved without looking at any
/// file system (a `..` at the root stays there); `None` when it has none.
fn resolved(text: &str) -> Option<String> {
    if !text.split('/').any(|part| part == "." || part == "..") {
        return None;
    }
    let absolute = text.starts_with('/');
    let mut kept: Vec<&str> = Vec::new();
    for part in text.split('/').filter(|part| !part.is_empty()) {
        match part {
            "." => {}
            ".." => {
                if kept.pop().is_none() && !absolute {
                    kept.push("..");
                }
            }
            _ => kept.push(part),
        }
    }
    let joined = kept.join("/");
    Some(if absolute {
        format!("/{joined}")
    } else {
        joined
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_without_a_file_system() {
        assert_eq!(resolved("/srv/data/a"), None);
        assert_eq!(
            resolved("/srv/data/../../etc/shadow").as_deref(),
            Some("/etc/shadow")
        );
        assert_eq!(resolved("/../etc/./x").as_deref(), Some("/etc/x"));
        assert_eq!(resolved("a/../../b").as_deref(), Some("../b"));
        assert!(leads_up("/srv/data/../x"));
        assert!(leads_up("..\\x"));
        assert!(!leads_up("/srv/data/a..b"));
    }
}
