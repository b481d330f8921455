//! Filters and tests an expression names (`x | upper`, `x is defined`) must exist: minijinja
//! only finds out when it evaluates, which for a step deep in a run may be hours later. Names
//! are found by scanning the expression outside its string literals, and each is checked by
//! asking the environment to apply it.

use minijinja::ErrorKind;

use super::{ENVIRONMENT, TemplateError};

/// Refuses an expression that names a filter or test the environment does not have.
pub(super) fn check(source: &str) -> Result<(), TemplateError> {
    for (kind, name) in names(source) {
        let probe = match kind {
            Kind::Filter => format!("none | {name}"),
            Kind::Test => format!("none is {name}"),
        };
        let unknown = match ENVIRONMENT.compile_expression(&probe) {
            Ok(expression) => expression
                .eval(minijinja::context! {})
                .err()
                .is_some_and(|e| {
                    matches!(e.kind(), ErrorKind::UnknownFilter | ErrorKind::UnknownTest)
                }),
            Err(_) => false,
        };
        if unknown {
            let what = match kind {
                Kind::Filter => "filter",
                Kind::Test => "test",
            };
            return Err(TemplateError::new(format!(
                "in `{source}`: unknown {what} `{name}`"
            )));
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Filter,
    Test,
}

/// The filters (after `|`) and tests (after `is` or `is not`) an expression names.
fn names(source: &str) -> Vec<(Kind, String)> {
    let tokens = tokens(source);
    let mut found = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let next_ident = |at: usize| {
            tokens
                .get(at)
                .filter(|t| is_identifier(t))
                .map(|t| t.to_string())
        };
        match *token {
            "|" => found.extend(next_ident(i + 1).map(|n| (Kind::Filter, n))),
            "is" if i > 0 && tokens[i - 1] != "." => {
                let at = if tokens.get(i + 1) == Some(&"not") {
                    i + 2
                } else {
                    i + 1
                };
                found.extend(next_ident(at).map(|n| (Kind::Test, n)));
            }
            _ => {}
        }
    }
    found
}

fn is_identifier(token: &str) -> bool {
    token
        .chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// Identifiers and single punctuation characters, with string literals and whitespace left
/// out.
fn tokens(source: &str) -> Vec<&str> {
    let mut tokens = Vec::new();
    let mut chars = source.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if c == '"' || c == '\'' {
            let mut escaped = false;
            for (_, d) in chars.by_ref() {
                if escaped {
                    escaped = false;
                } else if d == '\\' {
                    escaped = true;
                } else if d == c {
                    break;
                }
            }
        } else if c.is_alphanumeric() || c == '_' {
            let mut end = start + c.len_utf8();
            while let Some(&(i, d)) = chars.peek() {
                if d.is_alphanumeric() || d == '_' {
                    end = i + d.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            tokens.push(&source[start..end]);
        } else if !c.is_whitespace() {
            tokens.push(&source[start..start + c.len_utf8()]);
        }
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_and_tests_are_found_outside_strings() {
        assert_eq!(
            names("inputs.x | upper | replace('|', 'is x') if steps.a.out is not none else 1"),
            vec![
                (Kind::Filter, "upper".to_string()),
                (Kind::Filter, "replace".to_string()),
                (Kind::Test, "none".to_string()),
            ]
        );
        assert!(names("steps.is.out").is_empty());
    }

    #[test]
    fn unknown_names_are_refused_and_known_ones_pass() {
        assert!(check("inputs.x | upper | trim").is_ok());
        assert!(check("inputs.x is defined and inputs.y is not number").is_ok());
        let error = check("inputs.x | nosuchfilter").unwrap_err();
        assert_eq!(
            error.message,
            "in `inputs.x | nosuchfilter`: unknown filter `nosuchfilter`"
        );
        let error = check("inputs.x is nosuchtest").unwrap_err();
        assert!(error.message.contains("unknown test `nosuchtest`"));
    }
}
