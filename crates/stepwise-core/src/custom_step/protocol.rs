//! What a custom step's executable is given and must answer: on stdin one JSON object,
//! `{inputs, workspace, run_id, step_id}`; on stdout one JSON object, `{"output": …}` or
//! `{"error": …}`, and exit code 0 with an output. Anything else ends the step with an error
//! that says what it printed.

use serde_json::{Value, json};

use crate::json_depth::{MAX_VALUE_DEPTH, deeper_than};
use crate::operation::CommandOutcome;

/// The most of stdout a custom step's answer may take; more is an error, not a cut answer.
pub const REPLY_MAX_BYTES: u64 = 1024 * 1024;

/// The most a custom step's inputs may take as JSON on stdin (they are recorded in its log).
pub const STDIN_MAX_BYTES: usize = 4 * 1024 * 1024;

/// How much of what the executable printed an error quotes.
const QUOTED_CHARS: usize = 200;

/// The JSON text the executable reads on stdin.
pub fn stdin_request(inputs: &Value, workspace: &str, run_id: &str, step_id: &str) -> String {
    json!({
        "inputs": inputs,
        "workspace": workspace,
        "run_id": run_id,
        "step_id": step_id,
    })
    .to_string()
}

/// What is wrong with `with` against the step type's schema, skipping what depends on values
/// that are templates (known only when the step runs, and checked then): each problem with the
/// input it concerns (`None` for the whole of `with`). Which inputs are given is written
/// literally, so a missing or unexpected one is always an error here.
pub fn literal_input_errors(schema: &Value, with: &Value) -> Vec<(Option<String>, String)> {
    use jsonschema::error::ValidationErrorKind as Kind;
    let validator = match jsonschema::validator_for(schema) {
        Ok(validator) => validator,
        Err(e) => {
            return vec![(
                None,
                format!("the step type's `inputs` schema cannot be used: {e}"),
            )];
        }
    };
    validator
        .iter_errors(with)
        .filter(|e| {
            let at = e.instance_path().to_string();
            let about_keys = matches!(
                e.kind(),
                Kind::Required { .. }
                    | Kind::AdditionalProperties { .. }
                    | Kind::MinProperties { .. }
                    | Kind::MaxProperties { .. }
            );
            if at.is_empty() {
                return about_keys || !holds_template(with);
            }
            // An error inside an input written as (or holding) a template waits for its value.
            let input = at.split('/').nth(1).unwrap_or_default();
            let input = input.replace("~1", "/").replace("~0", "~");
            !with.get(&input).is_some_and(holds_template)
        })
        .take(5)
        .map(|e| {
            let at = e.instance_path().to_string();
            // An input `with` should not have is pointed at itself.
            let unexpected = match e.kind() {
                jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected }
                    if at.is_empty() =>
                {
                    unexpected.first().cloned()
                }
                _ => None,
            };
            let key = at
                .strip_prefix('/')
                .and_then(|rest| rest.split('/').next())
                .map(|k| k.replace("~1", "/").replace("~0", "~"))
                .or(unexpected);
            let message = match &key {
                Some(_) => format!("`with{}`: {e}", at.replace('/', ".")),
                None => format!("`with`: {e}"),
            };
            (key, message)
        })
        .collect()
}

/// What is wrong with the rendered inputs against the schema (the first few problems).
pub fn input_errors(schema: &Value, inputs: &Value) -> Option<String> {
    let validator = match jsonschema::validator_for(schema) {
        Ok(validator) => validator,
        Err(e) => {
            return Some(format!(
                "the step type's `inputs` schema cannot be used: {e}"
            ));
        }
    };
    let problems: Vec<String> = validator
        .iter_errors(inputs)
        .take(3)
        .map(|e| {
            let at = e.instance_path().to_string();
            if at.is_empty() {
                format!("`with`: {e}")
            } else {
                format!("`with{}`: {e}", at.replace('/', "."))
            }
        })
        .collect();
    (!problems.is_empty()).then(|| problems.join("; "))
}

fn holds_template(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains("${"),
        Value::Array(items) => items.iter().any(holds_template),
        Value::Object(map) => map.values().any(holds_template),
        _ => false,
    }
}

/// The step's output from what its executable did, or why there is none. `Err` carries the
/// message and whether trying again could help (a timeout or a crash may pass; a reply that is
/// not the protocol will not).
pub fn reply_output(
    type_name: &str,
    outcome: &CommandOutcome,
    timeout_ms: u64,
) -> Result<Value, (String, bool)> {
    let who = format!("step type `{type_name}`");
    if outcome.timed_out {
        return Err((
            format!(
                "{who}: its command did not answer within {} and was killed",
                humantime::format_duration(std::time::Duration::from_millis(timeout_ms))
            ),
            true,
        ));
    }
    if outcome.stdout_truncated() {
        return Err((
            format!(
                "{who}: its command printed {} bytes on stdout; an answer may be at most {} bytes",
                outcome.stdout_bytes, REPLY_MAX_BYTES
            ),
            false,
        ));
    }
    let ended = match (outcome.exit_code, outcome.signal) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => "ended".into(),
    };
    let printed = outcome.stdout.trim();
    let reply: Value = match serde_json::from_str(printed) {
        Ok(Value::Object(reply)) => Value::Object(reply),
        _ => {
            let what = if printed.is_empty() {
                "nothing on stdout".to_string()
            } else {
                format!("`{}` on stdout", quote(printed))
            };
            return Err((
                format!(
                    "{who}: its command {ended} and printed {what}, not a JSON object `{{\"output\": …}}` or `{{\"error\": …}}`{}",
                    stderr_tail(&outcome.stderr)
                ),
                outcome.exit_code != Some(0),
            ));
        }
    };
    if let Some(error) = reply.get("error").filter(|e| !e.is_null()) {
        let error = match error {
            Value::String(text) => quote(text),
            other => quote(&other.to_string()),
        };
        return Err((format!("{who} failed: {error}"), false));
    }
    let Some(output) = reply.get("output") else {
        return Err((
            format!(
                "{who}: its command printed a JSON object without `output` or `error` (`{}`)",
                quote(printed)
            ),
            false,
        ));
    };
    if outcome.exit_code != Some(0) {
        return Err((
            format!(
                "{who}: its command {ended} after printing an output{}",
                stderr_tail(&outcome.stderr)
            ),
            true,
        ));
    }
    if deeper_than(output, MAX_VALUE_DEPTH) {
        return Err((
            format!("{who}: its output nests deeper than {MAX_VALUE_DEPTH} levels"),
            false,
        ));
    }
    Ok(output.clone())
}

fn quote(text: &str) -> String {
    let mut quoted: String = text.chars().take(QUOTED_CHARS).collect();
    if text.chars().count() > QUOTED_CHARS {
        quoted.push('…');
    }
    printable(&quoted)
}

/// Text on one line with control characters (newlines too) shown as escapes, quotes and the
/// like left alone: what an executable printed, quoted in an error message.
fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn stderr_tail(stderr: &str) -> String {
    let tail = stderr.trim();
    if tail.is_empty() {
        return String::new();
    }
    let start = tail
        .char_indices()
        .rev()
        .nth(QUOTED_CHARS)
        .map_or(0, |(i, _)| i);
    format!("; stderr ends: `{}`", printable(&tail[start..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ran(code: Option<i32>, stdout: &str) -> CommandOutcome {
        CommandOutcome {
            exit_code: code,
            signal: None,
            timed_out: false,
            stdout: stdout.into(),
            stderr: String::new(),
            stdout_bytes: stdout.len() as u64,
            stderr_bytes: 0,
            duration_ms: 5,
            saved_output: None,
            changes: Vec::new(),
        }
    }

    #[test]
    fn an_output_is_the_steps_output() {
        let out = reply_output(
            "count",
            &ran(Some(0), "{\"output\": {\"words\": 3}}\n"),
            1000,
        )
        .unwrap();
        assert_eq!(out, json!({"words": 3}));
    }

    #[test]
    fn an_error_or_anything_else_is_a_clear_failure() {
        let (e, retry) =
            reply_output("count", &ran(Some(1), "{\"error\": \"no text\"}"), 1000).unwrap_err();
        assert_eq!(e, "step type `count` failed: no text");
        assert!(!retry);
        let (e, _) = reply_output("count", &ran(Some(0), "hello"), 1000).unwrap_err();
        assert!(
            e.contains("printed `hello` on stdout, not a JSON object"),
            "{e}"
        );
        let (e, _) = reply_output("count", &ran(Some(0), ""), 1000).unwrap_err();
        assert!(e.contains("printed nothing on stdout"), "{e}");
        let (e, _) = reply_output("count", &ran(Some(0), "{\"x\": 1}"), 1000).unwrap_err();
        assert!(e.contains("without `output` or `error`"), "{e}");
        let (e, _) = reply_output("count", &ran(Some(2), "{\"output\": 1}"), 1000).unwrap_err();
        assert!(e.contains("exited with code 2"), "{e}");
        let mut big = ran(Some(0), "{");
        big.stdout_bytes = 5_000_000;
        let (e, _) = reply_output("count", &big, 1000).unwrap_err();
        assert!(e.contains("5000000 bytes"), "{e}");
    }

    #[test]
    fn templates_are_left_to_run_time_but_literals_are_checked() {
        let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}, "s": {"type": "string"}}, "required": ["s"], "additionalProperties": false});
        assert!(literal_input_errors(&schema, &json!({"n": "${inputs.n}", "s": "x"})).is_empty());
        let errors = literal_input_errors(&schema, &json!({"n": "three", "s": "x"}));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0.as_deref(), Some("n"));
        assert!(errors[0].1.starts_with("`with.n`"), "{:?}", errors);
        let errors = literal_input_errors(&schema, &json!({"n": 1}));
        assert!(
            errors[0].1.contains("\"s\" is a required property"),
            "{:?}",
            errors
        );
        assert!(input_errors(&schema, &json!({"n": 1, "s": "x"})).is_none());
        // Which inputs are given is literal: a missing or extra one is an error even beside a
        // template.
        let errors = literal_input_errors(&schema, &json!({"n": "${inputs.n}"}));
        assert!(
            errors[0].1.contains("\"s\" is a required property"),
            "{:?}",
            errors
        );
        let errors = literal_input_errors(&schema, &json!({"s": "x", "typo": "${inputs.n}"}));
        assert_eq!(errors[0].0.as_deref(), Some("typo"), "{:?}", errors);
        assert!(input_errors(&schema, &json!({"n": "1", "s": "x"})).is_some());
    }
}
