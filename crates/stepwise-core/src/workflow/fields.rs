//! Compiling the fields of one step: templates, expressions, durations, retry and the
//! action, each error placed at its field.

use std::collections::{BTreeMap, BTreeSet};

use super::compile::{Compiler, StepPlace};
use super::def::{ActionDef, CommandDef, StepDef};
use super::{
    Action, CommandTemplate, DEFAULT_MAX_OUTPUT, EditChange, ForEach, MAX_OUTPUT_CEILING,
    MAX_ROUNDS, Repeat, RetryPolicy,
};
use crate::paths::normalize_workspace_path;
use crate::template::{Expr, Template, TemplateError, ValueTemplate};

/// Compiles the fields of one step, remembering each expression for the reference checks.
pub(super) struct StepContext<'c, 'a> {
    pub(super) compiler: &'c mut Compiler<'a>,
    pub(super) id: &'c str,
    pub(super) place: StepPlace,
    pub(super) exprs: Vec<Reads>,
}

/// What the expressions of one field read.
pub(super) struct Reads {
    pub(super) field: String,
    pub(super) inputs: BTreeSet<String>,
    pub(super) steps: BTreeSet<String>,
    /// The step's own names (`round`, `previous`, `output`).
    pub(super) locals: BTreeSet<String>,
    /// It is `repeat.until` (where `output` is defined).
    pub(super) until: bool,
}

impl Reads {
    fn of(field: &str, expr: &Expr) -> Reads {
        Reads {
            field: field.to_string(),
            inputs: expr.input_refs().clone(),
            steps: expr.step_refs().clone(),
            locals: expr.locals().clone(),
            until: false,
        }
    }
}

impl StepContext<'_, '_> {
    pub(super) fn error(&mut self, field: &str, message: impl Into<String>) {
        self.compiler
            .field_error(self.place, self.id, field, message);
    }

    /// Lints an expression (see `Expr::lint`) when the compiler is strict; `false` after
    /// reporting a mistake.
    fn linted(&mut self, field: &str, expr: &Expr) -> bool {
        if !self.compiler.strict {
            return true;
        }
        match expr.lint() {
            Ok(()) => true,
            Err(e) => {
                self.error(field, format!("`{field}`: {}", e.message));
                false
            }
        }
    }

    pub(super) fn template(&mut self, field: &str, text: &str) -> Option<Template> {
        match Template::parse(text) {
            Ok(t) => {
                for expr in t.exprs() {
                    if !self.linted(field, expr) {
                        return None;
                    }
                }
                self.exprs.extend(t.exprs().map(|e| Reads::of(field, e)));
                Some(t)
            }
            Err(e) => {
                self.error(field, format!("`{field}`: {}", e.message));
                None
            }
        }
    }

    pub(super) fn expr(&mut self, field: &str, text: &str) -> Option<Expr> {
        let trimmed = text.trim();
        let body = match trimmed.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
            Some(inner) => inner,
            None => trimmed,
        };
        match Expr::compile(body) {
            Ok(e) => {
                if !self.linted(field, &e) {
                    return None;
                }
                self.exprs.push(Reads::of(field, &e));
                Some(e)
            }
            Err(TemplateError { message }) => {
                self.error(field, format!("`{field}`: {message}"));
                None
            }
        }
    }

    /// `for_each`: the list's expression, and how its iterations run.
    pub(super) fn for_each(&mut self, def: &StepDef) -> Option<ForEach> {
        let Some(items) = def.for_each.as_deref() else {
            if def.max_parallel.is_some() || def.continue_on_error.is_some() {
                self.error(
                    "for_each",
                    "`max_parallel` and `continue_on_error` belong to a step with `for_each`",
                );
            }
            return None;
        };
        if def.max_parallel == Some(0) {
            self.error("max_parallel", "`max_parallel` must be at least 1");
        }
        let items = self.expr("for_each", items)?;
        Some(ForEach {
            items,
            max_parallel: def.max_parallel.filter(|&n| n > 0),
            continue_on_error: def.continue_on_error.unwrap_or(false),
        })
    }

    /// `repeat`: 1 to 50 rounds, and the `until` expression.
    pub(super) fn repeat(&mut self, def: &StepDef) -> Option<Repeat> {
        let repeat = def.repeat.as_ref()?;
        if repeat.max == 0 || repeat.max > MAX_ROUNDS {
            self.error(
                "repeat",
                format!("`repeat.max` must be 1 to {MAX_ROUNDS}, not {}", repeat.max),
            );
        }
        let until = repeat.until.as_deref().and_then(|u| self.expr("until", u));
        if until.is_some()
            && let Some(reads) = self.exprs.last_mut()
        {
            reads.until = true;
        }
        Some(Repeat {
            max: repeat.max.clamp(1, MAX_ROUNDS),
            until,
        })
    }

    /// Named value templates (`set`'s `values`, a sub-workflow's `inputs`), each error
    /// placed at its name.
    pub(super) fn value_templates(
        &mut self,
        values: &BTreeMap<String, serde_json::Value>,
    ) -> Option<BTreeMap<String, ValueTemplate>> {
        let mut compiled = BTreeMap::new();
        for (name, value) in values {
            match ValueTemplate::parse(value) {
                Ok(t) => {
                    for expr in t.exprs() {
                        if !self.linted(name, expr) {
                            return None;
                        }
                    }
                    self.exprs
                        .extend(t.exprs().into_iter().map(|e| Reads::of(name, e)));
                    compiled.insert(name.clone(), t);
                }
                Err(e) => {
                    self.error(name, format!("`{name}`: {}", e.message));
                    return None;
                }
            }
        }
        Some(compiled)
    }

    /// `type: workflow`: the file (a literal `.yaml`/`.yml` path, read when a run starts) and
    /// the inputs it is given.
    fn workflow_action(
        &mut self,
        path: &str,
        inputs: &BTreeMap<String, serde_json::Value>,
    ) -> Option<Action> {
        let trimmed = path.trim();
        if trimmed.contains("${") {
            self.error(
                "path",
                "`path` of a `workflow` step must be a file name, not a template: the file is read when the run starts",
            );
            return None;
        }
        if !(trimmed.ends_with(".yaml") || trimmed.ends_with(".yml")) {
            self.error(
                "path",
                format!("`path`: `{trimmed}` is not a workflow file (`.yaml` or `.yml`)"),
            );
            return None;
        }
        Some(Action::Workflow {
            path: trimmed.to_string(),
            inputs: self.value_templates(inputs)?,
        })
    }

    pub(super) fn path(&mut self, field: &str, text: &str) -> Option<Template> {
        let template = self.template(field, text)?;
        if template.is_literal()
            && let Err(e) = normalize_workspace_path(text)
        {
            self.error(field, format!("`{field}`: {e}"));
            return None;
        }
        Some(template)
    }

    pub(super) fn duration(&mut self, field: &str, text: &str) -> Option<u64> {
        match humantime::parse_duration(text) {
            Ok(d) => Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            Err(e) => {
                self.error(
                    field,
                    format!("`{field}`: `{text}` is not a duration like `30s` or `2m` ({e})"),
                );
                None
            }
        }
    }

    pub(super) fn retry(&mut self, def: &StepDef) -> RetryPolicy {
        let mut policy = RetryPolicy::default();
        let Some(retry) = &def.retry else {
            return policy;
        };
        if retry.max_attempts == 0 {
            self.error(
                "retry",
                "`retry.max_attempts` must be at least 1 (it counts the first attempt)",
            );
        }
        policy.max_attempts = retry.max_attempts.max(1);
        if let Some(b) = retry
            .backoff
            .as_deref()
            .and_then(|b| self.duration("backoff", b))
        {
            policy.backoff_ms = b;
        }
        if let Some(m) = retry
            .max_backoff
            .as_deref()
            .and_then(|m| self.duration("max_backoff", m))
        {
            policy.max_backoff_ms = m;
        }
        policy
    }

    pub(super) fn action(&mut self, def: &ActionDef) -> Option<Action> {
        Some(match def {
            ActionDef::ReadFile { path } => Action::ReadFile {
                path: self.path("path", path)?,
            },
            ActionDef::EditFile {
                path,
                content,
                find,
                replace,
            } => {
                let path = self.path("path", path);
                let change = match (content, find, replace) {
                    (Some(content), None, None) => {
                        Some(EditChange::Content(self.template("content", content)?))
                    }
                    (None, Some(find), Some(replace)) => {
                        if find.is_empty() {
                            self.error("find", "`find` must not be empty");
                        }
                        let find = self.template("find", find);
                        let replace = self.template("replace", replace);
                        Some(EditChange::Replace {
                            find: find?,
                            replace: replace?,
                        })
                    }
                    (None, Some(_), None) => {
                        self.error("find", "`find` needs a `replace`");
                        None
                    }
                    (None, None, Some(_)) => {
                        self.error("replace", "`replace` needs a `find`");
                        None
                    }
                    (None, None, None) => {
                        self.error(
                            "type",
                            "an edit_file step needs `content`, or `find` and `replace`",
                        );
                        None
                    }
                    (Some(_), _, _) => {
                        self.error(
                            "content",
                            "use either `content` or `find`/`replace`, not both",
                        );
                        None
                    }
                };
                Action::EditFile {
                    path: path?,
                    change: change?,
                }
            }
            ActionDef::RunCommand {
                command,
                cwd,
                env,
                pass_env,
                max_output,
                save_output,
            } => {
                let command = match command {
                    CommandDef::Argv(argv) if argv.is_empty() => {
                        self.error("command", "`command` must not be an empty list");
                        None
                    }
                    CommandDef::Argv(argv) => argv
                        .iter()
                        .map(|a| self.template("command", a))
                        .collect::<Option<Vec<_>>>()
                        .map(CommandTemplate::Argv),
                    CommandDef::Shell(s) if s.trim().is_empty() => {
                        self.error("command", "`command` must not be empty");
                        None
                    }
                    CommandDef::Shell(s) => self.template("command", s).map(CommandTemplate::Shell),
                };
                let cwd = match cwd {
                    Some(c) => Some(self.path("cwd", c)?),
                    None => None,
                };
                let mut env_templates = BTreeMap::new();
                for (name, value) in env {
                    env_templates.insert(name.clone(), self.template("env", value)?);
                }
                if let Some(max) = max_output
                    && *max > MAX_OUTPUT_CEILING
                    && self.compiler.strict
                {
                    self.error(
                        "max_output",
                        format!(
                            "`max_output` is {max} bytes; at most {MAX_OUTPUT_CEILING} bytes (8 MiB) of each stream can be kept (the rest is counted)"
                        ),
                    );
                    return None;
                }
                Action::RunCommand {
                    command: command?,
                    cwd,
                    env: env_templates,
                    pass_env: pass_env.clone(),
                    max_output_bytes: max_output.unwrap_or(DEFAULT_MAX_OUTPUT),
                    save_output: *save_output,
                }
            }
            ActionDef::Set { values } => Action::Set {
                values: self.value_templates(values)?,
            },
            ActionDef::Approval { message } => Action::Approval {
                message: self.template("message", message)?,
            },
            ActionDef::WaitSignal { name } => {
                let name = name.trim();
                let valid = !name.is_empty()
                    && name.len() <= crate::signal::MAX_NAME_BYTES
                    && name.chars().all(crate::signal::is_name_char);
                if !valid {
                    self.error(
                        "name",
                        format!("`name` `{name}` is not a signal's name: letters, digits, `_`, `-`, `.` and `/`, at most {} bytes", crate::signal::MAX_NAME_BYTES),
                    );
                    return None;
                }
                Action::WaitSignal {
                    name: name.to_string(),
                }
            }
            ActionDef::Workflow { path, inputs } => self.workflow_action(path, inputs)?,
            ActionDef::Prompt { .. } | ActionDef::Summarize { .. } | ActionDef::Plan { .. } => {
                Action::Llm(self.llm_action(def)?)
            }
            ActionDef::Agent { .. } => Action::Llm(self.agent_action(def)?),
        })
    }
}
