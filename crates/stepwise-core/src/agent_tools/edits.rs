//! The edits an agent proposes (`edit_file`, `write_file`): checked when called, then made a
//! proposal against the file as it was read, exactly like an `edit_file` step's, so that it is
//! shown as a diff, approved, edited or rejected, and voided when the file changes under it.

use serde_json::Value;

use crate::event::Proposal;
use crate::paths::normalize_workspace_path;
use crate::run::unified_diff;

/// The most bytes an edit's texts may hold (a file the engine writes is bounded the same way
/// when it is read back).
const MAX_EDIT_BYTES: usize = 4 * 1024 * 1024;

/// What an agent asked to change in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentEdit {
    /// Replace the one occurrence of `old_text` with `new_text`.
    Replace { old_text: String, new_text: String },
    /// The file's whole new content.
    Write { content: String },
}

/// The file and edit an `edit_file` or `write_file` call asks for, or what is wrong with it.
pub(super) fn edit_request(name: &str, arguments: &Value) -> Result<(String, AgentEdit), String> {
    let path = match arguments.get("path") {
        Some(Value::String(path)) if !path.trim().is_empty() => path,
        _ => return Err("error: `path` must be a non-empty string".into()),
    };
    let path = normalize_workspace_path(path).map_err(|e| format!("error: {e}"))?;
    if path == "." {
        return Err("error: `path` must name a file".into());
    }
    let text = |field: &str| match arguments.get(field) {
        Some(Value::String(text)) if text.len() <= MAX_EDIT_BYTES => Ok(text.clone()),
        Some(Value::String(_)) => Err(format!(
            "error: `{field}` is longer than {} MiB",
            MAX_EDIT_BYTES / (1024 * 1024)
        )),
        _ => Err(format!("error: `{field}` must be a string")),
    };
    let edit = if name == "write_file" {
        AgentEdit::Write {
            content: text("content")?,
        }
    } else {
        let old_text = text("old_text")?;
        if old_text.is_empty() {
            return Err("error: `old_text` is empty; quote the text to replace".into());
        }
        AgentEdit::Replace {
            old_text,
            new_text: text("new_text")?,
        }
    };
    Ok((path, edit))
}

/// The proposal `edit` makes of the file as it was read (`exists`, `current`, `hash`), `None`
/// when the file already holds what it asks for, or what is wrong (told to the model).
pub fn edit_proposal(
    path: &str,
    edit: &AgentEdit,
    exists: bool,
    current: &str,
    hash: Option<String>,
) -> Result<Option<Proposal>, String> {
    let content = match edit {
        AgentEdit::Write { content } => content.clone(),
        AgentEdit::Replace { old_text, new_text } => {
            if !exists {
                return Err(format!(
                    "error: there is no file `{path}`; create it with write_file"
                ));
            }
            match occurrences(current, old_text) {
                1 => current.replacen(old_text.as_str(), new_text, 1),
                0 => {
                    return Err(format!(
                        "error: `old_text` does not occur in `{path}`; nothing was changed (read the file again and quote it exactly)"
                    ));
                }
                n => {
                    return Err(format!(
                        "error: `old_text` occurs {n} times in `{path}`; nothing was changed (include surrounding lines so that it occurs once)"
                    ));
                }
            }
        }
    };
    if exists && content == current {
        return Ok(None);
    }
    Ok(Some(Proposal::EditFile {
        diff: unified_diff(path, exists.then_some(current), &content),
        path: path.to_string(),
        base_hash: hash,
        content,
    }))
}

/// How many times `needle` occurs in `haystack`, overlapping occurrences counted: in `aaa`,
/// `aa` occurs twice, and which to replace would be a guess.
fn occurrences(haystack: &str, needle: &str) -> usize {
    let mut count = 0;
    let mut from = 0;
    while let Some(at) = haystack.get(from..).and_then(|rest| rest.find(needle)) {
        count += 1;
        let start = from + at;
        from = start + haystack[start..].chars().next().map_or(1, char::len_utf8);
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn overlapping_occurrences_make_an_edit_ambiguous() {
        assert_eq!(occurrences("aaa", "aa"), 2);
        assert_eq!(occurrences("x\n\n\ny", "\n\n"), 2);
        assert_eq!(occurrences("é-é", "é"), 2);
        assert_eq!(occurrences("abc", "abcd"), 0);
        let edit = AgentEdit::Replace {
            old_text: "aa".into(),
            new_text: "b".into(),
        };
        let refused = edit_proposal("f.txt", &edit, true, "aaa", None).unwrap_err();
        assert!(refused.contains("occurs 2 times"), "{refused}");
    }

    #[test]
    fn an_edit_replaces_one_occurrence_and_says_what_is_wrong_otherwise() {
        let (path, edit) = edit_request(
            "edit_file",
            &json!({"path": "./src/calc.py", "old_text": "a - b", "new_text": "a + b"}),
        )
        .unwrap();
        assert_eq!(path, "src/calc.py");
        let proposal = edit_proposal(&path, &edit, true, "return a - b\n", Some("h".into()))
            .unwrap()
            .unwrap();
        let Proposal::EditFile {
            content,
            diff,
            base_hash,
            ..
        } = proposal
        else {
            panic!("an edit")
        };
        assert_eq!(content, "return a + b\n");
        assert!(diff.contains("-return a - b") && diff.contains("+return a + b"));
        assert_eq!(base_hash.as_deref(), Some("h"));
        let err = edit_proposal(&path, &edit, true, "a - b; a - b\n", None).unwrap_err();
        assert!(err.contains("occurs 2 times"), "{err}");
        let err = edit_proposal(&path, &edit, true, "nothing\n", None).unwrap_err();
        assert!(err.contains("does not occur"), "{err}");
        let err = edit_proposal(&path, &edit, false, "", None).unwrap_err();
        assert!(err.contains("write_file"), "{err}");
        // Asking for what is there already changes nothing.
        let same = AgentEdit::Write {
            content: "x\n".into(),
        };
        assert_eq!(edit_proposal(&path, &same, true, "x\n", None), Ok(None));
        let new = edit_proposal("n.txt", &same, false, "", None)
            .unwrap()
            .unwrap();
        assert!(matches!(
            new,
            Proposal::EditFile {
                base_hash: None,
                ..
            }
        ));
        for bad in [
            json!({"path": "a", "old_text": "", "new_text": "b"}),
            json!({"path": "a", "old_text": "x"}),
            json!({"path": "../a", "old_text": "x", "new_text": "y"}),
            json!({"path": ".", "old_text": "x", "new_text": "y"}),
        ] {
            assert!(edit_request("edit_file", &bad).is_err(), "{bad}");
        }
    }
}
