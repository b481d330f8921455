//! A plan a model made becomes a proposal: checked as a workflow (ids, needs, templates) and
//! against the run's steps, shown with what the policy would ask of each planned step. Once
//! approved, its steps join the run (see `apply`), each passing through the normal gates.

use serde_json::Value;

use super::state::RunState;
use crate::event::{Event, PlannedStep, Proposal};
use crate::ids::StepId;
use crate::llm::{LlmRequest, Role};
use crate::operation::{CommandLine, CommandRequest};
use crate::policy::{Effect, GateKind, Subject, Verdict};
use crate::template::Template;
use crate::workflow::{Action, CommandTemplate, Step, Workflow, planned_workflow};

/// The name a plan's steps are checked under, the same when proposed and when applied.
pub(super) fn plan_label(step: &StepId) -> String {
    format!("plan of step `{step}`")
}

/// A plan's steps as a workflow, and the run's workflow with them joined after `index`.
pub(super) fn joined(
    workflow: &Workflow,
    index: usize,
    steps: &Value,
) -> Result<(Workflow, Workflow), String> {
    let label = plan_label(&workflow.steps[index].id);
    let planned = planned_workflow(&label, steps, workflow)?;
    let joined = workflow.with_planned(&planned, index)?;
    Ok((planned, joined))
}

impl RunState {
    /// The question a valid plan puts to a person; `Err` says what is wrong with it, for the
    /// model to try again.
    pub(super) fn plan_proposal(
        &mut self,
        index: usize,
        request: &LlmRequest,
        reply: &Value,
    ) -> Result<Vec<Event>, String> {
        let steps = reply.get("steps").cloned().unwrap_or(Value::Null);
        let (planned, _) = joined(&self.workflow, index, &steps)?;
        let verdicts = planned
            .steps
            .iter()
            .map(|step| PlannedStep {
                id: step.id.clone(),
                kind: step.action.type_name().to_string(),
                approval: self.planned_approval(step),
            })
            .collect();
        let goal = request
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(|m| m.content.clone())
            .unwrap_or_default();
        let proposal = Proposal::Plan {
            goal,
            steps,
            verdicts,
        };
        let proposal_hash = proposal.hash().map_err(|e| e.to_string())?;
        Ok(vec![Event::ApprovalRequested {
            step: self.workflow.steps[index].id.clone(),
            attempt: self.steps[index].attempt,
            proposal,
            proposal_hash,
            reason: format!(
                "a plan always waits for a person: approving adds its {} steps to the run",
                planned.steps.len()
            ),
        }])
    }

    /// What the policy would do with a planned step, as far as it can tell before it runs.
    fn planned_approval(&self, step: &Step) -> String {
        if step.approval_required {
            return "asks a person (the plan requires approval of it)".into();
        }
        let verdict = match &step.action {
            Action::Set { .. } => return "runs without asking (it computes values only)".into(),
            Action::Approval { .. } => return "asks a person (a manual gate)".into(),
            Action::Workflow { .. } => {
                return "runs a child run, whose steps pass their own gates".into();
            }
            Action::Custom(custom) => {
                return format!("runs step type `{}`'s command", custom.manifest.name);
            }
            Action::WaitSignal { name } => {
                return format!("waits for signal `{name}`");
            }
            Action::Llm(_) => {
                return "runs without asking, unless it would cross the budget".into();
            }
            Action::ReadFile { path } => {
                literal(path).map(|p| self.policy.evaluate(Subject::file(GateKind::ReadFile, p)))
            }
            Action::EditFile { path, .. } => literal(path).map(|p| {
                if crate::paths::is_in_policy_dir(p) {
                    Verdict {
                        effect: Effect::Ask,
                        rule: None,
                        rule_text: None,
                        note: Some("edits under .stepwise/ always need approval".into()),
                    }
                } else {
                    self.policy.evaluate(Subject::file(GateKind::EditFile, p))
                }
            }),
            Action::RunCommand {
                command,
                cwd,
                env,
                pass_env,
                max_output_bytes,
                save_output,
            } => literal_command(command).and_then(|command| {
                let cwd = match cwd {
                    Some(c) => literal(c)?.to_string(),
                    None => ".".into(),
                };
                let env = env
                    .iter()
                    .map(|(k, v)| literal(v).map(|v| (k.clone(), v.to_string())))
                    .collect::<Option<_>>()?;
                let request = CommandRequest {
                    command,
                    cwd,
                    env,
                    pass_env: pass_env.clone(),
                    timeout_ms: step.timeout_ms,
                    max_output_bytes: *max_output_bytes,
                    save_output: *save_output,
                    stdin: None,
                };
                Some(self.policy.evaluate(Subject::command(&request)))
            }),
        };
        match verdict {
            None => "decided when it runs (it uses values known only then)".into(),
            Some(verdict) => describe(&verdict, step.action.type_name()),
        }
    }
}

fn literal(template: &Template) -> Option<&str> {
    template.is_literal().then(|| template.source())
}

fn literal_command(command: &CommandTemplate) -> Option<CommandLine> {
    match command {
        CommandTemplate::Argv(parts) => parts
            .iter()
            .map(|p| literal(p).map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .map(CommandLine::Argv),
        CommandTemplate::Shell(script) => literal(script).map(|s| CommandLine::Shell(s.into())),
    }
}

fn describe(verdict: &Verdict, kind: &str) -> String {
    let rule = verdict.rule.as_deref();
    match verdict.effect {
        Effect::Deny => format!("refused by policy ({})", rule.unwrap_or("a deny rule")),
        Effect::Ask => match (rule, &verdict.note) {
            (_, Some(note)) => format!("asks a person: {note}"),
            (Some(rule), None) => format!("asks a person: {rule}"),
            (None, None) => format!("asks a person ({kind} needs approval by default)"),
        },
        Effect::Allow => match rule {
            Some(rule) => format!("runs without asking: {rule}"),
            None => "runs without asking".into(),
        },
    }
}
