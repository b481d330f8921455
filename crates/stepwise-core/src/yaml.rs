//! How Stepwise reads YAML (workflow and policy files): YAML 1.2 booleans only, duplicate keys
//! refused, and errors worded for the person who wrote the file, never in the parser's own
//! terms (no Rust type names, no `Depth { depth: 65 }`, no advice about parser options).

use std::borrow::Cow;

use serde::de::DeserializeOwned;
use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::{Error, MessageFormatter, UserMessageFormatter};

/// How Stepwise reads YAML: YAML 1.2 booleans only, so that `y`, `n`, `on` and `no` stay
/// strings (a step value named `n` must not become `false`), and duplicate keys are errors.
pub fn options() -> serde_saphyr::Options {
    serde_saphyr::options! { strict_booleans: true }
}

/// A YAML document that could not be read as the expected type, with where (1-based; `None`
/// when the parser did not know) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub position: Option<(u32, u32)>,
    pub message: String,
}

impl std::fmt::Display for YamlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.position {
            Some((line, column)) => write!(f, "line {line}, column {column}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for YamlError {}

/// Reads `source` as a `T` with Stepwise's [`options`].
pub fn from_str<T: DeserializeOwned>(source: &str) -> Result<T, YamlError> {
    serde_saphyr::from_str_with_options(source, options()).map_err(|e| describe(&e))
}

/// The plain-words description of a parser error.
pub fn describe(error: &Error) -> YamlError {
    let position = error
        .location()
        .filter(|l| l.line() > 0)
        .map(|l| (clamp(l.line()), clamp(l.column().max(1))));
    let message = PlainWords.format_message(innermost(error));
    YamlError {
        position,
        message: strip_location_suffix(&message)
            .escape_debug()
            .to_string()
            .replace("\\'", "'")
            .replace("\\\"", "\""),
    }
}

fn clamp(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The error a wrapper (a snippet, an alias) is about.
fn innermost(mut error: &Error) -> &Error {
    while let Error::WithSnippet { error: inner, .. } | Error::AliasError { error: inner, .. } =
        error
    {
        error = inner;
    }
    error
}

/// Messages from serde itself may end in the position we already report.
fn strip_location_suffix(message: &str) -> &str {
    let message = message.lines().next().unwrap_or(message);
    match message.rfind(" at line ") {
        Some(pos) if message[pos..].contains(", column ") => &message[..pos],
        _ => message,
    }
}

/// serde-saphyr's user formatter, with the cases it words for developers reworded.
struct PlainWords;

impl MessageFormatter for PlainWords {
    fn format_message<'a>(&self, error: &'a Error) -> Cow<'a, str> {
        match error {
            Error::Budget { breach, .. } => Cow::Owned(budget_message(breach)),
            Error::DuplicateMappingKey { key: Some(key), .. } => {
                Cow::Owned(format!("`{key}` is given twice in the same mapping"))
            }
            Error::DuplicateMappingKey { key: None, .. } => {
                Cow::Borrowed("a key is given twice in the same mapping")
            }
            Error::Unexpected { expected, .. } => {
                Cow::Owned(format!("expected {}", shape_words(expected)))
            }
            Error::InvalidScalar { ty, .. } => Cow::Owned(format!("expected {}", scalar_words(ty))),
            other => UserMessageFormatter.format_message(other),
        }
    }
}

fn budget_message(breach: &BudgetBreach) -> String {
    match breach {
        BudgetBreach::Depth { depth } => format!(
            "lists and mappings are nested too deeply (at most {} levels)",
            depth.saturating_sub(1)
        ),
        BudgetBreach::Aliases { .. }
        | BudgetBreach::Anchors { .. }
        | BudgetBreach::AliasAnchorRatio { .. }
        | BudgetBreach::MergeKeys { .. } => {
            "the file uses too many anchors, aliases or merge keys (`&`, `*`, `<<`)".into()
        }
        BudgetBreach::Documents { .. } => "the file holds too many YAML documents".into(),
        _ => "the file is too large or too complex to read".into(),
    }
}

/// The parser's name for what it expected, in a writer's words.
fn shape_words(expected: &str) -> Cow<'_, str> {
    Cow::Borrowed(match expected {
        "string scalar" => "a string",
        "sequence start" => "a list",
        "mapping start" | "empty mapping start" => "a mapping (`key: value` lines)",
        other => return Cow::Owned(other.replace('_', " ")),
    })
}

/// A Rust scalar type name in a writer's words.
fn scalar_words(ty: &str) -> Cow<'static, str> {
    let unsigned_max = match ty {
        "u8" => Some(u64::from(u8::MAX)),
        "u16" => Some(u64::from(u16::MAX)),
        "u32" => Some(u64::from(u32::MAX)),
        "u64" | "usize" => Some(u64::MAX),
        _ => None,
    };
    if let Some(max) = unsigned_max {
        return Cow::Owned(format!("a whole number from 0 to {max}"));
    }
    Cow::Borrowed(match ty {
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number",
        "f32" | "f64" => "a number",
        "bool" => "true or false",
        "char" => "a single character",
        _ => "a different kind of value",
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn error_of<T: DeserializeOwned + std::fmt::Debug>(source: &str) -> YamlError {
        from_str::<T>(source).expect_err("should not parse")
    }

    #[test]
    fn deep_nesting_says_so_in_words() {
        let source = format!("a: {}1{}", "[".repeat(70), "]".repeat(70));
        let error = error_of::<BTreeMap<String, serde_json::Value>>(&source);
        assert_eq!(
            error.message,
            "lists and mappings are nested too deeply (at most 64 levels)"
        );
        assert!(error.position.is_some());
    }

    #[test]
    fn a_duplicate_key_names_the_key_and_no_parser_option() {
        let error = error_of::<BTreeMap<String, u32>>("a: 1\nb: 2\na: 3\n");
        assert_eq!(error.message, "`a` is given twice in the same mapping");
        assert_eq!(error.position, Some((3, 1)));
    }

    #[test]
    fn shapes_and_numbers_are_named_as_a_writer_would() {
        let error = error_of::<BTreeMap<String, String>>("a: [1]\n");
        assert_eq!(error.message, "expected a string");
        let error = error_of::<BTreeMap<String, u32>>("a: -1\n");
        assert_eq!(
            error.message,
            "expected a whole number from 0 to 4294967295"
        );
        let error = error_of::<Vec<String>>("a: 1\n");
        assert_eq!(error.message, "expected a list");
    }
}
