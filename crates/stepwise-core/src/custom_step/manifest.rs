//! A step type's manifest: the file format, and how a file becomes a checked
//! [`StepManifest`].

use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::hash::content_hash;
use crate::workflow::ValidationError;
use crate::yaml;

/// The step types built into Stepwise; a manifest may not take one of their names.
pub const BUILTIN_TYPE_NAMES: &[&str] = &[
    "read_file",
    "edit_file",
    "run_command",
    "set",
    "approval",
    "wait_signal",
    "workflow",
    "prompt",
    "analyze",
    "plan",
    "agent",
    "summarize",
];

/// How long a custom step's command may take unless its manifest or the step says otherwise.
pub const DEFAULT_TIMEOUT_MS: u64 = 5 * 60 * 1000;

/// The largest manifest file read: a manifest is a few lines.
pub const MAX_MANIFEST_BYTES: u64 = 64 * 1024;

/// The longest a manifest's name may be.
const MAX_NAME_CHARS: usize = 64;

/// A step type's manifest file, as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Stepwise step type")]
pub struct ManifestDef {
    /// What `type:` names in a workflow; the file's name without `.yaml` must be the same.
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// A JSON Schema of the step's `with:` inputs (an object); default: any object.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub inputs: Option<Value>,
    /// The executable and its arguments (argv), run in the workspace. A program written with
    /// a `/` and not absolute, and an argument starting with `./` or `../`, are relative to the
    /// manifest's directory. It is given `{inputs, workspace, run_id,
    /// step_id}` as JSON on stdin and prints `{"output": …}` or `{"error": …}` on stdout.
    pub command: Vec<String>,
    /// `ask` (the default): every use waits for a person. `allow`: a use goes ahead unless a
    /// policy rule asks or denies its command.
    #[serde(default)]
    pub approval: Option<Approval>,
    /// How long the command may take, e.g. `30s` (default 5m); a step's own `timeout` wins.
    #[serde(default)]
    pub timeout: Option<String>,
}

/// Whether a custom step's use waits for a person.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Approval {
    #[default]
    Ask,
    Allow,
}

/// A checked manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct StepManifest {
    pub name: String,
    pub description: Option<String>,
    /// The JSON Schema of `with:` (compiles; an object schema).
    pub inputs: Value,
    /// argv, the program resolved against the manifest's directory where it was relative.
    pub command: Vec<String>,
    pub approval: Approval,
    pub timeout_ms: u64,
    /// The file it was read from.
    pub path: String,
    /// `sha256:` of its text.
    pub hash: String,
    /// Its text, recorded by the runs that use it.
    pub source: String,
}

impl StepManifest {
    /// What a run records of it.
    pub fn recorded(&self) -> super::RecordedStepType {
        super::RecordedStepType {
            path: self.path.clone(),
            hash: self.hash.clone(),
            source: self.source.clone(),
        }
    }
}

/// The JSON Schema of the manifest format.
pub fn manifest_json_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(ManifestDef)).unwrap_or_default()
}

/// The step type a manifest file is for, from its name.
pub(super) fn name_from_path(path: &str) -> String {
    Path::new(path)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Reads and checks a manifest. `path` is the file (its directory resolves a relative
/// program; its name must be the manifest's `name`).
pub fn parse_manifest(path: &str, source: &str) -> Result<StepManifest, ValidationError> {
    let at = |key: &str, message: String| {
        let (line, column) = key_position(source, key).unwrap_or((1, 1));
        ValidationError {
            file: path.to_string(),
            line,
            column,
            step: None,
            message,
        }
    };
    let def: ManifestDef = yaml::from_str(source).map_err(|e| {
        let (line, column) = e.position.unwrap_or((1, 1));
        ValidationError {
            file: path.to_string(),
            line,
            column,
            step: None,
            message: e.message,
        }
    })?;
    let name = def.name.trim().to_string();
    check_name(&name).map_err(|message| at("name", message))?;
    let stem = name_from_path(path);
    if stem != name {
        return Err(at(
            "name",
            format!(
                "`name` is `{name}` but the file is `{stem}`: a manifest is found by its file's name, so the two must be the same"
            ),
        ));
    }
    let inputs = def
        .inputs
        .unwrap_or_else(|| serde_json::json!({"type": "object"}));
    if !inputs.is_object() {
        return Err(at(
            "inputs",
            "`inputs` must be a JSON Schema (a map)".into(),
        ));
    }
    if let Err(e) = jsonschema::validator_for(&inputs) {
        return Err(at(
            "inputs",
            format!("`inputs` is not a usable JSON Schema: {e}"),
        ));
    }
    let command = resolve_command(path, &def.command).map_err(|m| at("command", m))?;
    let timeout_ms = match def.timeout.as_deref() {
        None => DEFAULT_TIMEOUT_MS,
        Some(text) => match humantime::parse_duration(text) {
            Ok(d) if d.is_zero() => {
                return Err(at("timeout", "`timeout` must be more than 0".into()));
            }
            Ok(d) => u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
            Err(e) => {
                return Err(at(
                    "timeout",
                    format!("`timeout`: `{text}` is not a duration like `30s` or `2m` ({e})"),
                ));
            }
        },
    };
    Ok(StepManifest {
        name,
        description: def.description.map(|d| d.trim().to_string()),
        inputs,
        command,
        approval: def.approval.unwrap_or_default(),
        timeout_ms,
        path: path.to_string(),
        hash: content_hash(source.as_bytes()),
        source: source.to_string(),
    })
}

fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let starts_well = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !starts_well || !rest_ok || name.chars().count() > MAX_NAME_CHARS {
        return Err(format!(
            "`name` `{name}` must start with a letter and hold only letters, digits, `_` and `-` (at most {MAX_NAME_CHARS})"
        ));
    }
    if BUILTIN_TYPE_NAMES.contains(&name) {
        return Err(format!(
            "`name` `{name}` is a built-in step type; choose another name"
        ));
    }
    Ok(())
}

/// The argv, with what is written relative to the manifest's directory made absolute: the
/// program when written with a `/` (`./bin/tool`, `tools/x`), and any argument that starts
/// with `./` or `../` (`python3 ./count.py`).
fn resolve_command(path: &str, argv: &[String]) -> Result<Vec<String>, String> {
    let Some(program) = argv.first() else {
        return Err(
            "`command` must name a program (a list: the program, then its arguments)".into(),
        );
    };
    if program.trim().is_empty() {
        return Err("`command`'s program is empty".into());
    }
    if argv.iter().any(|a| a.contains('\0')) {
        return Err("`command` holds a NUL character".into());
    }
    let dir = Path::new(path).parent().unwrap_or(Path::new("."));
    let beside = |word: &str| {
        dir.join(word.trim_start_matches("./"))
            .display()
            .to_string()
    };
    let mut resolved = Vec::with_capacity(argv.len());
    for (i, word) in argv.iter().enumerate() {
        let relative_program = i == 0 && word.contains('/') && Path::new(word).is_relative();
        let relative_argument = word.starts_with("./") || word.starts_with("../");
        resolved.push(if relative_program || relative_argument {
            beside(word)
        } else {
            word.clone()
        });
    }
    Ok(resolved)
}

/// Where a top-level `key:` is written (1-based line and column).
fn key_position(source: &str, key: &str) -> Option<(u32, u32)> {
    source.lines().enumerate().find_map(|(i, line)| {
        let rest = line.strip_prefix(key)?;
        rest.trim_start()
            .starts_with(':')
            .then(|| (u32::try_from(i + 1).unwrap_or(u32::MAX), 1))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "name: count\ndescription: Counts words\ninputs:\n  type: object\n  properties:\n    text: {type: string}\n  required: [text]\ncommand: [./count.py, --fast]\napproval: allow\ntimeout: 10s\n";

    #[test]
    fn a_manifest_is_read_with_its_program_found_beside_it() {
        let m = parse_manifest("/ws/.stepwise/steps/count.yaml", GOOD).unwrap();
        assert_eq!(m.name, "count");
        assert_eq!(m.command, ["/ws/.stepwise/steps/count.py", "--fast"]);
        assert_eq!(m.approval, Approval::Allow);
        assert_eq!(m.timeout_ms, 10_000);
        assert!(m.hash.starts_with("sha256:"));
    }

    #[test]
    fn a_program_on_the_path_is_left_as_written_and_approval_asks_by_default() {
        let m = parse_manifest(
            "/x/lint.yaml",
            "name: lint\ncommand: [python3, lint.py, ./a.py, --x=./b]\n",
        )
        .unwrap();
        assert_eq!(m.command, ["python3", "lint.py", "/x/a.py", "--x=./b"]);
        assert_eq!(m.approval, Approval::Ask);
        assert_eq!(m.timeout_ms, DEFAULT_TIMEOUT_MS);
    }

    #[test]
    fn mistakes_are_named_with_their_line() {
        let e = parse_manifest("/x/other.yaml", GOOD).unwrap_err();
        assert!(e.message.contains("the file is `other`"), "{e}");
        assert_eq!(e.line, 1);
        let e = parse_manifest("/x/prompt.yaml", "name: prompt\ncommand: [x]\n").unwrap_err();
        assert!(e.message.contains("built-in"), "{e}");
        let e = parse_manifest("/x/a.yaml", "name: a\ncommand: []\n").unwrap_err();
        assert!(e.message.contains("must name a program"), "{e}");
        assert_eq!(e.line, 2);
        let e =
            parse_manifest("/x/a.yaml", "name: a\ncommand: [x]\ninputs: {type: 12}\n").unwrap_err();
        assert!(e.message.contains("not a usable JSON Schema"), "{e}");
        assert_eq!(e.line, 3);
        let e = parse_manifest("/x/a.yaml", "name: a\ncommand: [x]\ntimeout: soon\n").unwrap_err();
        assert!(e.message.contains("not a duration"), "{e}");
        let e = parse_manifest("/x/a.yaml", "name: a\ncommand: [x]\nrun: y\n").unwrap_err();
        assert!(e.message.contains("unknown field"), "{e}");
    }
}
