//! `${...}` templates and the expressions inside them.
//!
//! Expressions are evaluated by minijinja's expression language (`steps.test.status ==
//! "succeeded"`, `inputs.count + 1`, `inputs.name | upper`, `a if cond else b`). minijinja was
//! chosen because it can list the variable paths an expression reads, which is how validation
//! proves that a template only names upstream steps, and because its evaluation is pure and
//! deterministic. Undefined names are errors, never silently empty.

mod callables;
mod finite;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value;
use thiserror::Error;

/// A template or expression that could not be parsed or evaluated.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct TemplateError {
    pub message: String,
}

impl TemplateError {
    fn new(message: impl Into<String>) -> Self {
        TemplateError {
            message: message.into(),
        }
    }
}

static ENVIRONMENT: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Expressions are small; fuel bounds the work a hostile one could ask for.
    env.set_fuel(Some(100_000));
    env
});

/// A checked expression and the names it reads.
///
/// The compiled program is not kept: minijinja sizes every program for a large template
/// (room for 256 instructions and their spans, about 13 KB), so a workflow that kept one per
/// expression held 13 MB per 1,000 steps, and filling that fresh memory (page faults) was the
/// largest part of starting a run. An expression is compiled again where it is evaluated, once
/// per step; the buffer freed by the last compile is reused by the next.
#[derive(Clone)]
pub struct Expr {
    source: String,
    step_refs: BTreeSet<String>,
    input_refs: BTreeSet<String>,
    locals: BTreeSet<String>,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Expr({:?})", self.source)
    }
}

impl Expr {
    /// Compiles an expression and checks that it only reads `inputs.<name>` and
    /// `steps.<id>...`.
    pub fn compile(source: &str) -> Result<Expr, TemplateError> {
        let trimmed = source.trim();
        if trimmed.is_empty() {
            return Err(TemplateError::new("empty expression"));
        }
        let program = compile(trimmed)?;
        let mut step_refs = BTreeSet::new();
        let mut input_refs = BTreeSet::new();
        let mut locals = BTreeSet::new();
        for path in program.undeclared_variables(true) {
            let mut segments = path.split('.');
            match (segments.next(), segments.next()) {
                (Some(name), _) if LOCALS.contains(&name) => {
                    locals.insert(name.to_string());
                }
                (Some("steps"), Some(id)) => {
                    step_refs.insert(id.to_string());
                }
                (Some("inputs"), Some(name)) => {
                    input_refs.insert(name.to_string());
                }
                (Some("steps"), None) => {
                    return Err(TemplateError::new(format!(
                        "in `{trimmed}`: refer to a step as `steps.<id>`, so that its dependency can be checked"
                    )));
                }
                (Some("inputs"), None) => {
                    return Err(TemplateError::new(format!(
                        "in `{trimmed}`: refer to an input as `inputs.<name>`"
                    )));
                }
                (Some(other), _) => {
                    return Err(TemplateError::new(format!(
                        "in `{trimmed}`: unknown name `{other}`; expressions can read `inputs.<name>` and `steps.<id>` (and, in a step that repeats, `round`, `previous` and, in `until`, `output`)"
                    )));
                }
                (None, _) => {}
            }
        }
        Ok(Expr {
            source: trimmed.to_string(),
            step_refs,
            input_refs,
            locals,
        })
    }

    /// The mistakes that can be known without running: a filter or test that does not exist,
    /// and for an expression that reads nothing (a constant) whatever it would do at run time
    /// (an error such as `1/0`, a value too large). Validation asks; a workflow recorded by an
    /// earlier run is loaded without asking, so that tightening these checks never makes an
    /// old run unloadable.
    pub fn lint(&self) -> Result<(), TemplateError> {
        callables::check(&self.source)?;
        if self.step_refs.is_empty() && self.input_refs.is_empty() && self.locals.is_empty() {
            self.eval(&Scope::default())?;
        }
        Ok(())
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The step ids this expression reads.
    pub fn step_refs(&self) -> &BTreeSet<String> {
        &self.step_refs
    }

    /// The input names this expression reads.
    pub fn input_refs(&self) -> &BTreeSet<String> {
        &self.input_refs
    }

    /// The names of a step's own it reads (`round`, `previous`, `output`: see [`LOCALS`]).
    pub fn locals(&self) -> &BTreeSet<String> {
        &self.locals
    }

    /// Evaluates against a scope; the result as JSON.
    pub fn eval(&self, scope: &Scope) -> Result<Value, TemplateError> {
        let value = compile(&self.source)?
            .eval(scope.context())
            .map_err(|e| TemplateError::new(format!("`{}`: {}", self.source, describe(&e))))?;
        if value.is_undefined() {
            return Err(TemplateError::new(format!(
                "`{}` is undefined",
                self.source
            )));
        }
        // JSON has no infinity or NaN: `1/0` must fail, not become `null`.
        if !finite::is_finite(&value) {
            return Err(TemplateError::new(format!(
                "`{}` is not a finite number (a division by zero?)",
                self.source
            )));
        }
        let value = serde_json::to_value(&value).map_err(|e| {
            TemplateError::new(format!(
                "`{}` gave a value that is not data: {e}",
                self.source
            ))
        })?;
        check_size(&self.source, &value)?;
        Ok(value)
    }
}

fn compile(source: &str) -> Result<minijinja::Expression<'_, '_>, TemplateError> {
    ENVIRONMENT
        .compile_expression(source)
        .map_err(|e| TemplateError::new(format!("invalid expression `{source}`: {}", describe(&e))))
}

fn describe(error: &minijinja::Error) -> String {
    match error.detail() {
        Some(detail) => format!("{}: {detail}", error.kind()),
        None => error.kind().to_string(),
    }
}

/// What expressions can see: the run's inputs and the views of the steps they name.
#[derive(Debug, Default, Clone)]
pub struct Scope {
    inputs: minijinja::Value,
    steps: BTreeMap<String, minijinja::Value>,
    /// A step's own names (`round`, `previous`, `output`).
    locals: BTreeMap<String, minijinja::Value>,
}

/// The names a step's templates may read besides `inputs` and `steps`: in a step that repeats,
/// `round` (from 1) and `previous` (the last round's output, `none` in the first), and in its
/// `until`, `output` (the round's own); in a step with `for_each`, `item` and `index`.
pub const LOCALS: [&str; 5] = ["round", "previous", "output", "item", "index"];

impl Scope {
    pub fn new(inputs: &Value) -> Scope {
        Scope {
            inputs: minijinja::Value::from_serialize(inputs),
            steps: BTreeMap::new(),
            locals: BTreeMap::new(),
        }
    }

    /// Makes one of the step's own names (see [`LOCALS`]) visible.
    pub fn set_local(&mut self, name: &str, value: &Value) {
        self.locals
            .insert(name.to_string(), minijinja::Value::from_serialize(value));
    }

    /// Makes a step visible as `steps.<id>`.
    pub fn add_step(&mut self, id: &str, view: &Value) {
        self.steps
            .insert(id.to_string(), minijinja::Value::from_serialize(view));
    }

    fn context(&self) -> minijinja::Value {
        if self.locals.is_empty() {
            return minijinja::context! {
                inputs => self.inputs.clone(),
                steps => minijinja::Value::from(self.steps.clone()),
            };
        }
        let mut names = self.locals.clone();
        names.insert("inputs".into(), self.inputs.clone());
        names.insert("steps".into(), minijinja::Value::from(self.steps.clone()));
        minijinja::Value::from(names)
    }
}

/// A string with `${expr}` parts. `$${` writes a literal `${`.
#[derive(Debug, Clone)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Expr(Expr),
}

impl Template {
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = source;
        while let Some(pos) = rest.find("${") {
            if rest[..pos].ends_with('$') {
                // `$${` is an escaped literal `${`.
                text.push_str(&rest[..pos - 1]);
                text.push_str("${");
                rest = &rest[pos + 2..];
                continue;
            }
            text.push_str(&rest[..pos]);
            let body_start = pos + 2;
            let end = find_closing_brace(&rest[body_start..]).ok_or_else(|| {
                TemplateError::new(format!("`${{` without a closing `}}` in `{source}`"))
            })?;
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            parts.push(Part::Expr(Expr::compile(
                &rest[body_start..body_start + end],
            )?));
            rest = &rest[body_start + end + 1..];
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template {
            source: source.to_string(),
            parts,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the template has any `${...}` part.
    pub fn is_literal(&self) -> bool {
        self.exprs().next().is_none()
    }

    pub fn exprs(&self) -> impl Iterator<Item = &Expr> {
        self.parts.iter().filter_map(|p| match p {
            Part::Expr(e) => Some(e),
            Part::Text(_) => None,
        })
    }

    /// A template that is exactly one `${expr}` gives the expression's value with its type;
    /// anything else gives a string.
    pub fn render_value(&self, scope: &Scope) -> Result<Value, TemplateError> {
        if let [Part::Expr(expr)] = self.parts.as_slice() {
            return expr.eval(scope);
        }
        self.render_string(scope).map(Value::String)
    }

    /// Renders to text: strings as they are, `null` as nothing, other values as JSON.
    pub fn render_string(&self, scope: &Scope) -> Result<String, TemplateError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Expr(e) => out.push_str(&value_to_text(&e.eval(scope)?)),
            }
            if out.len() > MAX_RESULT_BYTES {
                return Err(too_large("the template", out.len()));
            }
        }
        Ok(out)
    }
}

/// The largest value a template may produce, in bytes (as JSON, roughly). Everything a
/// template produces is recorded in the log, so a template must not be able to fill it.
pub const MAX_RESULT_BYTES: usize = 4 * 1024 * 1024;

fn too_large(what: &str, bytes: usize) -> TemplateError {
    TemplateError::new(format!(
        "{what} produced {bytes} bytes; a template's result may be at most {MAX_RESULT_BYTES} bytes (4 MiB)"
    ))
}

/// Refuses a value larger than [`MAX_RESULT_BYTES`].
fn check_size(source: &str, value: &Value) -> Result<(), TemplateError> {
    fn size(value: &Value, budget: usize) -> usize {
        match value {
            Value::String(s) => s.len() + 2,
            Value::Array(items) => {
                let mut total = 2;
                for item in items {
                    total += size(item, budget) + 1;
                    if total > budget {
                        break;
                    }
                }
                total
            }
            Value::Object(map) => {
                let mut total = 2;
                for (key, item) in map {
                    total += key.len() + 4 + size(item, budget);
                    if total > budget {
                        break;
                    }
                }
                total
            }
            _ => 8,
        }
    }
    let bytes = size(value, MAX_RESULT_BYTES);
    if bytes > MAX_RESULT_BYTES {
        return Err(too_large(&format!("`{source}`"), bytes));
    }
    Ok(())
}

/// How a value reads when put into text.
pub fn value_to_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Position of the `}` closing an expression, skipping braces inside string literals and
/// nested `{...}` (minijinja map literals).
fn find_closing_brace(body: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => quote = Some(c),
            '{' => depth += 1,
            '}' if depth == 0 => return Some(i),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// Parses every string inside a JSON value as a template (for `set` values and the like).
#[derive(Debug, Clone)]
pub enum ValueTemplate {
    Template(Template),
    Array(Vec<ValueTemplate>),
    Object(BTreeMap<String, ValueTemplate>),
    Literal(Value),
}

impl ValueTemplate {
    pub fn parse(value: &Value) -> Result<ValueTemplate, TemplateError> {
        Ok(match value {
            Value::String(s) => ValueTemplate::Template(Template::parse(s)?),
            Value::Array(items) => ValueTemplate::Array(
                items
                    .iter()
                    .map(ValueTemplate::parse)
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => ValueTemplate::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), ValueTemplate::parse(v)?)))
                    .collect::<Result<_, TemplateError>>()?,
            ),
            other => ValueTemplate::Literal(other.clone()),
        })
    }

    pub fn render(&self, scope: &Scope) -> Result<Value, TemplateError> {
        Ok(match self {
            ValueTemplate::Template(t) => t.render_value(scope)?,
            ValueTemplate::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| i.render(scope))
                    .collect::<Result<_, _>>()?,
            ),
            ValueTemplate::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), v.render(scope)?)))
                    .collect::<Result<_, TemplateError>>()?,
            ),
            ValueTemplate::Literal(v) => v.clone(),
        })
    }

    pub fn exprs(&self) -> Vec<&Expr> {
        let mut out = Vec::new();
        self.collect_exprs(&mut out);
        out
    }

    fn collect_exprs<'a>(&'a self, out: &mut Vec<&'a Expr>) {
        match self {
            ValueTemplate::Template(t) => out.extend(t.exprs()),
            ValueTemplate::Array(items) => items.iter().for_each(|i| i.collect_exprs(out)),
            ValueTemplate::Object(map) => map.values().for_each(|v| v.collect_exprs(out)),
            ValueTemplate::Literal(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scope() -> Scope {
        let mut scope = Scope::new(&json!({"module": "utils.py", "count": 2, "flag": true}));
        scope.add_step(
            "read",
            &json!({"status": "succeeded", "output": {"content": "x = 1"}}),
        );
        scope
    }

    #[test]
    fn a_lone_expression_keeps_its_type() {
        let t = Template::parse("${inputs.count + 1}").unwrap();
        assert_eq!(t.render_value(&scope()).unwrap(), json!(3));
        let t = Template::parse("${steps.read.status == \"succeeded\"}").unwrap();
        assert_eq!(t.render_value(&scope()).unwrap(), json!(true));
    }

    #[test]
    fn constant_errors_are_found_by_lint() {
        let lint = |source: &str| {
            Template::parse(source)
                .expect("parses")
                .exprs()
                .try_for_each(Expr::lint)
        };
        for source in ["${1/0}", "${[1, 0.0/0]}", "${1 // 0}", "${'a' * 'b'}"] {
            let error = lint(source).expect_err(source);
            assert!(!error.message.is_empty(), "{source}");
        }
        let error = lint("${1/0}").unwrap_err();
        assert!(error.message.contains("not a finite number"), "{error}");
        let error = lint("x ${inputs.count | nosuch}").unwrap_err();
        assert!(error.message.contains("unknown filter `nosuch`"), "{error}");
        assert!(lint("${2 ** 10}").is_ok());
        assert!(lint("${inputs.count / 0}").is_ok(), "not a constant");
    }

    #[test]
    fn a_division_by_zero_at_run_time_is_an_error_not_null() {
        let t = Template::parse("${inputs.count / 0}").unwrap();
        let error = t.render_value(&scope()).unwrap_err();
        assert!(error.message.contains("not a finite number"), "{error}");
        let t = Template::parse("${{'a': [inputs.count / 0]}}").unwrap();
        assert!(t.render_value(&scope()).is_err());
    }

    #[test]
    fn mixed_text_renders_to_a_string() {
        let t = Template::parse("file ${inputs.module} has ${inputs.count} lines").unwrap();
        assert_eq!(
            t.render_value(&scope()).unwrap(),
            json!("file utils.py has 2 lines")
        );
    }

    #[test]
    fn escaped_dollar_and_braces_inside_strings() {
        let t = Template::parse("$${not} ${'}' ~ inputs.module}").unwrap();
        assert_eq!(t.render_string(&scope()).unwrap(), "${not} }utils.py");
    }

    #[test]
    fn references_are_listed() {
        let t = Template::parse("${steps.read.output.content ~ inputs.module}").unwrap();
        let e = t.exprs().next().unwrap();
        assert!(e.step_refs().contains("read"));
        assert!(e.input_refs().contains("module"));
    }

    #[test]
    fn unknown_roots_and_syntax_errors_are_reported() {
        let err = Template::parse("${input.module}").unwrap_err();
        assert!(err.message.contains("unknown name `input`"), "{err}");
        let err = Template::parse("${steps.read.(}").unwrap_err();
        assert!(err.message.contains("invalid expression"), "{err}");
        let err = Template::parse("${inputs.module").unwrap_err();
        assert!(err.message.contains("without a closing"), "{err}");
    }

    #[test]
    fn undefined_values_are_errors_not_blanks() {
        let t = Template::parse("${steps.read.output.missing}").unwrap();
        assert!(t.render_value(&scope()).is_err());
    }
}
