//! From YAML text to a checked [`Workflow`], collecting every error with its place.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::def::{StepAction, StepDef, WorkflowDef};
use super::error::{ValidationError, WorkflowErrors, field_position};
use super::fields::{Reads, StepContext};
use super::inputs::check_default;
use super::{AfterDef, DEFAULT_MAX_PARALLEL, Step, Workflow};
use crate::custom_step::StepTypes;
use crate::hash::content_hash;
use crate::ids::StepId;
use crate::policy::rules_from_def;
use crate::yaml::{self, YamlError};

/// Reads and checks a workflow that uses built-in step types only. `file` names the source
/// in messages.
pub fn parse_workflow(file: &str, source: &str) -> Result<Workflow, WorkflowErrors> {
    parse_workflow_with(file, source, &StepTypes::none())
}

/// Reads and checks a workflow whose steps may use the custom step types of `step_types`.
pub fn parse_workflow_with(
    file: &str,
    source: &str,
    step_types: &StepTypes,
) -> Result<Workflow, WorkflowErrors> {
    let def: WorkflowDef = match yaml::from_str(source) {
        Ok(def) => def,
        Err(error) => return Err(WorkflowErrors(vec![syntax_error(file, source, error)])),
    };
    Compiler::new(file, source, true, step_types).compile(def)
}

/// Reads a workflow recorded when a run started, with the checks of that time: shape,
/// references and cycles, but not the checks later versions added or tightened (expression
/// lints, ceilings), which would make an old run unloadable. What such a run does at run time
/// is bounded by the engine all the same.
pub fn parse_recorded_workflow(file: &str, source: &str) -> Result<Workflow, WorkflowErrors> {
    parse_recorded_workflow_with(file, source, &StepTypes::none())
}

/// [`parse_recorded_workflow`] with the custom step types the run recorded.
pub fn parse_recorded_workflow_with(
    file: &str,
    source: &str,
    step_types: &StepTypes,
) -> Result<Workflow, WorkflowErrors> {
    let def: WorkflowDef = match yaml::from_str(source) {
        Ok(def) => def,
        Err(error) => return Err(WorkflowErrors(vec![syntax_error(file, source, error)])),
    };
    Compiler::new(file, source, false, step_types).compile(def)
}

fn syntax_error(file: &str, source: &str, error: YamlError) -> ValidationError {
    let (line, column) = error.position.unwrap_or((1, 1));
    let message = error.message;
    let step = step_at(source, line, column);
    let (line, column) = step
        .as_ref()
        .and_then(|s| culprit_position(source, s, &message))
        .unwrap_or((line, column));
    ValidationError {
        file: file.to_string(),
        line,
        column,
        step: step.and_then(|s| s.id),
        message,
    }
}

/// serde reads a step's type-specific fields as a whole (its `type` decides their shape), so
/// it reports a problem among them where it finished reading the step, not where the culprit
/// is written. Point at the culprit instead: the unknown field, the `type`, or, for a missing
/// field, the step itself.
fn culprit_position(source: &str, step: &StepSpan, message: &str) -> Option<(u32, u32)> {
    if let Some(field) = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
    {
        return field_position(source, step.line, step.next_line, field);
    }
    if message.starts_with("unknown variant `") && message.contains("read_file, edit_file") {
        return field_position(source, step.line, step.next_line, "type");
    }
    if message.starts_with("missing field `") {
        return Some((step.line, step.column));
    }
    None
}

/// Where one step is written: from its first key to the line before the next step's.
struct StepSpan {
    id: Option<String>,
    line: u32,
    column: u32,
    next_line: Option<u32>,
}

/// The step written around a position, found with a lenient second reading of the file (the
/// strict one failed). `None` when the file cannot be read at all or the position is outside
/// the steps.
fn step_at(source: &str, line: u32, column: u32) -> Option<StepSpan> {
    #[derive(Deserialize)]
    struct Loose {
        #[serde(default)]
        steps: Vec<Spanned<LooseStep>>,
    }
    #[derive(Deserialize)]
    struct LooseStep {
        id: Option<String>,
    }
    let loose: Loose = yaml::from_str(source).ok()?;
    let mut found = None;
    for (i, step) in loose.steps.iter().enumerate() {
        let start = step.referenced.line() as u32;
        let start_column = step.referenced.column() as u32;
        let next = loose.steps.get(i + 1).map(|n| n.referenced.line() as u32);
        // The step's `- ` sits two columns left of its first key; anything further left (a
        // top-level key after the steps) is not in it.
        let inside = line >= start && next.is_none_or(|n| line < n) && column + 2 >= start_column;
        if inside {
            found = Some(StepSpan {
                id: step.value.id.clone(),
                line: start,
                column: start_column,
                next_line: next,
            });
        }
    }
    found
}

pub(super) struct Compiler<'a> {
    file: &'a str,
    source: &'a str,
    errors: Vec<ValidationError>,
    /// Whether checks that later versions may tighten apply (`lint` of expressions, ceilings).
    /// Off for a workflow recorded by a run, which was valid when the run started.
    pub(super) strict: bool,
    /// The custom step types steps may use.
    pub(super) step_types: &'a StepTypes,
}

/// Where a step is written: its id's line and column, and the next step's line.
#[derive(Clone, Copy)]
pub(super) struct StepPlace {
    pub(super) line: u32,
    pub(super) column: u32,
    pub(super) next_line: Option<u32>,
}

impl<'a> Compiler<'a> {
    fn new(file: &'a str, source: &'a str, strict: bool, step_types: &'a StepTypes) -> Self {
        Compiler {
            file,
            source,
            errors: Vec::new(),
            strict,
            step_types,
        }
    }

    /// The file's text.
    pub(super) fn source(&self) -> &str {
        self.source
    }

    /// A top-level field's compiled value, or its problems recorded at the field's line.
    fn top_level<T>(&mut self, key: &str, compiled: Option<Result<T, Vec<String>>>) -> Option<T> {
        match compiled? {
            Ok(value) => Some(value),
            Err(messages) => {
                let (line, column) = top_level_position(self.source, key);
                for message in messages {
                    self.error_at(line, column, None, message);
                }
                None
            }
        }
    }

    pub(super) fn error_at(
        &mut self,
        line: u32,
        column: u32,
        step: Option<&str>,
        message: impl Into<String>,
    ) {
        self.errors.push(ValidationError {
            file: self.file.to_string(),
            line,
            column,
            step: step.map(str::to_string),
            message: message.into(),
        });
    }

    /// An error about one field of a step, placed at that field when it can be found.
    pub(super) fn field_error(
        &mut self,
        place: StepPlace,
        step: &str,
        field: &str,
        message: impl Into<String>,
    ) {
        let (line, column) = field_position(self.source, place.line, place.next_line, field)
            .unwrap_or((place.line, place.column));
        self.error_at(line, column, Some(step), message);
    }

    fn compile(mut self, def: WorkflowDef) -> Result<Workflow, WorkflowErrors> {
        let places: Vec<StepPlace> = def
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| StepPlace {
                line: s.id.referenced.line() as u32,
                column: s.id.referenced.column() as u32,
                next_line: def.steps.get(i + 1).map(|n| n.id.referenced.line() as u32),
            })
            .collect();

        if def.steps.is_empty() {
            self.error_at(
                1,
                1,
                None,
                "a workflow needs at least one step under `steps`",
            );
        }
        for (name, input) in &def.inputs {
            if let Err(message) = check_default(name, input) {
                let (line, column) = top_level_position(self.source, name);
                self.error_at(line, column, None, message);
            }
        }
        let policy_rules = match def
            .policy
            .as_ref()
            .map(|p| rules_from_def(p, "workflow policy", true))
        {
            Some(Ok(rules)) => rules,
            Some(Err(e)) => {
                let (line, column) = top_level_position(self.source, "policy");
                self.error_at(line, column, None, e.to_string());
                Vec::new()
            }
            None => Vec::new(),
        };
        let approvers = crate::approvers::Approvers::from_def(
            def.approvers.as_ref(),
            def.self_approval,
            "workflow",
        )
        .map_err(|e| vec![e.to_string()]);
        let approvers = self
            .top_level("approvers", Some(approvers))
            .unwrap_or_default();
        if def.max_parallel == Some(0) {
            let (line, column) = top_level_position(self.source, "max_parallel");
            self.error_at(line, column, None, "`max_parallel` must be at least 1");
        }
        let budget = def.budget.as_ref().map(super::llm_fields::budget);
        let budget = self.top_level("budget", budget.map(|b| b.map_err(|m| vec![m])));

        let index = self.index_steps(&def.steps, &places);
        let needs = self.resolve_needs(&def.steps, &places, &index);
        let order_ok = self.check_acyclic(&def.steps, &places, &needs);

        let mut steps = Vec::with_capacity(def.steps.len());
        for (i, step_def) in def.steps.iter().enumerate() {
            if let Some(step) = self.compile_step(
                i,
                step_def,
                places[i],
                &needs,
                &index,
                &def.inputs,
                order_ok,
            ) {
                steps.push(step);
            }
        }

        self.compile_compensations(
            &def.steps,
            &places,
            &needs,
            &index,
            &def.inputs,
            order_ok,
            &mut steps,
        );
        let outputs = self.compile_outputs(&def, &index);
        let mut breakpoints = Vec::new();
        for id in &def.breakpoints {
            let id = StepId::from(id.as_str());
            let compensation = |s: &Step| s.compensation.as_ref().is_some_and(|c| c.id == id);
            if index.contains_key(&id) || steps.iter().any(compensation) {
                breakpoints.push(id);
            } else {
                let (line, column) = top_level_position(self.source, "breakpoints");
                self.error_at(
                    line,
                    column,
                    None,
                    format!("`breakpoints` names step `{id}`, which the workflow does not have"),
                );
            }
        }

        let triggers = def
            .triggers
            .as_ref()
            .map(|on| super::triggers::compile(on, &def.inputs));
        let triggers = self.top_level("on", triggers).unwrap_or_default();
        let alert_ms = def.alert.as_ref().map(super::alerts::slower_than_ms);
        let alert_ms = self.top_level("alert", alert_ms.map(|a| a.map_err(|m| vec![m])));

        if !self.errors.is_empty() {
            self.errors.sort_by_key(|e| (e.line, e.column));
            return Err(WorkflowErrors(self.errors));
        }
        let mut dependents = vec![Vec::new(); steps.len()];
        for (i, step) in steps.iter().enumerate() {
            for &need in &step.needs {
                dependents[need].push(i);
            }
        }
        for (step, deps) in steps.iter_mut().zip(dependents) {
            step.dependents = deps;
        }
        Ok(Workflow {
            name: def.name,
            description: def.description,
            source_hash: content_hash(self.source.as_bytes()),
            inputs: def.inputs,
            max_parallel: def
                .max_parallel
                .map_or(DEFAULT_MAX_PARALLEL, |n| n as usize),
            policy_rules,
            approvers,
            budget,
            breakpoints,
            steps,
            outputs,
            triggers,
            alert_ms,
            index,
        })
    }

    fn index_steps(&mut self, steps: &[StepDef], places: &[StepPlace]) -> HashMap<StepId, usize> {
        let mut index: HashMap<StepId, usize> = HashMap::with_capacity(steps.len());
        for (i, step) in steps.iter().enumerate() {
            let id = step.id.value.as_str();
            let place = places[i];
            if !is_identifier(id) {
                self.error_at(
                    place.line,
                    place.column,
                    Some(id),
                    "a step id must start with a letter or `_` and hold only letters, digits and `_`",
                );
            }
            if let Some(&first) = index.get(id) {
                let first_line = places[first].line;
                self.error_at(
                    place.line,
                    place.column,
                    Some(id),
                    format!("duplicate step id `{id}` (first used on line {first_line})"),
                );
            } else {
                index.insert(StepId::from(id), i);
            }
        }
        index
    }

    fn resolve_needs(
        &mut self,
        steps: &[StepDef],
        places: &[StepPlace],
        index: &HashMap<StepId, usize>,
    ) -> Vec<Vec<usize>> {
        let mut all = Vec::with_capacity(steps.len());
        for (i, step) in steps.iter().enumerate() {
            let mut needs = Vec::new();
            for need in &step.needs {
                let (line, column) = (
                    need.referenced.line() as u32,
                    need.referenced.column() as u32,
                );
                let (line, column) = if line == 0 {
                    (places[i].line, places[i].column)
                } else {
                    (line, column)
                };
                match index.get(need.value.as_str()) {
                    Some(&j) if j == i => self.error_at(
                        line,
                        column,
                        Some(&step.id.value),
                        "a step cannot need itself",
                    ),
                    Some(&j) => {
                        if !needs.contains(&j) {
                            needs.push(j);
                        }
                    }
                    None => self.error_at(
                        line,
                        column,
                        Some(&step.id.value),
                        format!("`needs` names unknown step `{}`", need.value),
                    ),
                }
            }
            all.push(needs);
        }
        all
    }

    /// Kahn's algorithm; the steps left over lie on or behind a cycle, and one cycle among
    /// them is reported.
    fn check_acyclic(
        &mut self,
        steps: &[StepDef],
        places: &[StepPlace],
        needs: &[Vec<usize>],
    ) -> bool {
        let mut waiting: Vec<usize> = needs.iter().map(Vec::len).collect();
        let mut dependents = vec![Vec::new(); steps.len()];
        for (i, n) in needs.iter().enumerate() {
            for &j in n {
                dependents[j].push(i);
            }
        }
        let mut queue: Vec<usize> = (0..steps.len()).filter(|&i| waiting[i] == 0).collect();
        let mut done = 0;
        while let Some(i) = queue.pop() {
            done += 1;
            for &d in &dependents[i] {
                waiting[d] -= 1;
                if waiting[d] == 0 {
                    queue.push(d);
                }
            }
        }
        if done == steps.len() {
            return true;
        }
        // Walk needs among the leftovers until a step repeats: that is a cycle.
        let Some(start) = (0..steps.len()).find(|&i| waiting[i] > 0) else {
            return true;
        };
        let mut path = vec![start];
        let mut current = start;
        while let Some(&next) = needs[current].iter().find(|&&j| waiting[j] > 0) {
            if let Some(pos) = path.iter().position(|&p| p == next) {
                let cycle: Vec<&str> = path[pos..]
                    .iter()
                    .chain(std::iter::once(&next))
                    .map(|&k| steps[k].id.value.as_str())
                    .collect();
                let first = path[pos];
                let place = places[first];
                self.error_at(
                    place.line,
                    place.column,
                    Some(&steps[first].id.value),
                    format!("`needs` form a cycle: {}", cycle.join(" → ")),
                );
                break;
            }
            path.push(next);
            current = next;
        }
        false
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn compile_step(
        &mut self,
        i: usize,
        def: &StepDef,
        place: StepPlace,
        needs: &[Vec<usize>],
        index: &HashMap<StepId, usize>,
        inputs: &BTreeMap<String, super::InputDef>,
        order_ok: bool,
    ) -> Option<Step> {
        let id = def.id.value.as_str();
        let errors_before = self.errors.len();
        let mut ctx = StepContext {
            compiler: self,
            id,
            place,
            exprs: Vec::new(),
        };

        let when = def.when.as_deref().and_then(|w| ctx.expr("when", w));
        let retry = ctx.retry(def);
        let timeout_ms = def
            .timeout
            .as_deref()
            .and_then(|t| ctx.duration("timeout", t));
        let alert_ms = def.alert.as_ref().and_then(|alert| {
            super::alerts::slower_than_ms(alert)
                .map_err(|message| ctx.error("alert", message))
                .ok()
        });
        let approval_required = match def.approval.as_deref() {
            None | Some("default") => false,
            Some("required") => true,
            Some(other) => {
                ctx.error(
                    "approval",
                    format!("approval `{other}` would loosen policy; a workflow can only tighten it: use `required`, or add an allow rule to .stepwise/policy.yaml"),
                );
                false
            }
        };
        let repeat = ctx.repeat(def);
        let for_each = ctx.for_each(def);
        let action = match &def.action {
            StepAction::Builtin(action) => ctx.action(action),
            StepAction::Custom { type_name, with } => ctx.custom_action(type_name, with),
        };
        let refs: Vec<Reads> = std::mem::take(&mut ctx.exprs);

        // Every template must read only declared inputs and upstream steps.
        let mut reads = BTreeSet::new();
        for Reads {
            field,
            inputs: input_refs,
            steps: step_refs,
            locals,
            until,
        } in refs
        {
            // A step's own names exist only where they mean something.
            for name in &locals {
                let defined = match name.as_str() {
                    "output" => until,
                    // The list and `when` are the step's, decided before any iteration.
                    "item" | "index" => {
                        for_each.is_some() && field != "for_each" && field != "when"
                    }
                    _ => repeat.is_some(),
                };
                if !defined {
                    let only = match name.as_str() {
                        "output" => "in a step's `repeat.until`",
                        "item" | "index" => {
                            "in a step that has `for_each` (not in the list's own expression, nor its `when`)"
                        }
                        _ => "in a step that has `repeat`",
                    };
                    self.field_error(
                        place,
                        id,
                        &field,
                        format!("`{field}` reads `{name}`, which exists only {only}"),
                    );
                }
            }
            for name in &input_refs {
                if !inputs.contains_key(name) {
                    self.field_error(
                        place,
                        id,
                        &field,
                        format!("`{field}` reads unknown input `inputs.{name}`"),
                    );
                }
            }
            for step_ref in &step_refs {
                match index.get(step_ref.as_str()) {
                    None => self.field_error(place, id, &field, format!("`{field}` reads unknown step `steps.{step_ref}`")),
                    Some(&j) if order_ok && !is_upstream(needs, i, j) => self.field_error(
                        place,
                        id,
                        &field,
                        format!("`{field}` reads `steps.{step_ref}`, which is not upstream of `{id}`; add it (or a step after it) to `needs`"),
                    ),
                    Some(&j) => {
                        reads.insert(j);
                    }
                }
            }
        }
        if self.errors.len() > errors_before {
            return None;
        }
        Some(Step {
            id: StepId::from(id),
            line: place.line,
            needs: needs[i].clone(),
            dependents: Vec::new(),
            reads: reads.into_iter().collect(),
            when,
            after: def.after.unwrap_or(AfterDef::Succeeded),
            retry,
            timeout_ms,
            approval_required,
            alert_ms,
            repeat,
            for_each,
            iteration: None,
            compensation: None,
            compensates: None,
            action: action?,
        })
    }
}

/// Whether `j` is reachable from `i` through `needs` (a direct need is the common case).
fn is_upstream(needs: &[Vec<usize>], i: usize, j: usize) -> bool {
    if needs[i].contains(&j) {
        return true;
    }
    let mut seen = vec![false; needs.len()];
    let mut stack = needs[i].clone();
    while let Some(k) = stack.pop() {
        if k == j {
            return true;
        }
        if !std::mem::replace(&mut seen[k], true) {
            stack.extend(&needs[k]);
        }
    }
    false
}

pub(super) fn is_identifier(id: &str) -> bool {
    let mut chars = id.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(super) fn top_level_position(source: &str, key: &str) -> (u32, u32) {
    field_position(source, 1, None, key).unwrap_or((1, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_workflow_loads_with_the_checks_of_its_time() {
        // Valid when an older version recorded it; refused by today's stricter validation.
        let source = "name: old\nsteps:\n  - id: a\n    type: set\n    values: {x: \"${1/0}\"}\n  - id: b\n    type: run_command\n    command: [\"true\"]\n    max_output: 18446744073709551615\n";
        let errors = parse_workflow("old.yaml", source).expect_err("strict");
        assert_eq!(errors.0.len(), 2, "{errors}");
        let workflow = parse_recorded_workflow("old.yaml", source).expect("recorded");
        assert_eq!(workflow.steps.len(), 2);
        // What the format itself requires still holds.
        assert!(parse_recorded_workflow("bad.yaml", "name: x\nsteps: [{id: a}]\n").is_err());
    }
}
