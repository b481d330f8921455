//! A step of a custom type: its `with:` rendered and checked against the manifest's schema,
//! then one command operation (the manifest's argv, the inputs as JSON on stdin) through the
//! same gate as a `run_command` step; its output is what the executable answered.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::decide::fail;
use super::state::RunState;
use crate::custom_step::{
    Approval, REPLY_MAX_BYTES, STDIN_MAX_BYTES, StepManifest, input_errors, reply_output,
    stdin_request,
};
use crate::event::{Event, Proposal};
use crate::operation::{CommandLine, CommandOutcome, CommandRequest};
use crate::policy::{Effect, GateKind, Verdict};
use crate::workflow::Action;

impl RunState {
    /// A custom step's attempt begins: its command proposed with the rendered inputs.
    pub(super) fn decide_custom_step(&mut self, index: usize) -> Vec<Event> {
        let step = &self.workflow.steps[index];
        let id = step.id.clone();
        let attempt = self.steps[index].attempt;
        let Action::Custom(custom) = &step.action else {
            return Vec::new();
        };
        let manifest = &custom.manifest;
        let scope = self.scope_for(index);
        let mut values = Map::new();
        for (name, template) in &custom.with {
            match template.render(&scope) {
                Ok(value) => {
                    values.insert(name.clone(), value);
                }
                Err(e) => return vec![fail(&id, attempt, format!("`with.{name}`: {e}"))],
            }
        }
        let inputs = Value::Object(values);
        if let Some(problems) = input_errors(&manifest.inputs, &inputs) {
            return vec![fail(
                &id,
                attempt,
                format!(
                    "step type `{}`: its inputs do not match the manifest's schema: {problems}",
                    manifest.name
                ),
            )];
        }
        let stdin = stdin_request(
            &inputs,
            &self.started.workspace,
            self.started.run_id.as_str(),
            id.as_str(),
        );
        if stdin.len() > STDIN_MAX_BYTES {
            return vec![fail(
                &id,
                attempt,
                format!(
                    "step type `{}`: its inputs take {} bytes as JSON; at most {} MiB may be given to its command",
                    manifest.name,
                    stdin.len(),
                    STDIN_MAX_BYTES / (1024 * 1024)
                ),
            )];
        }
        let request = CommandRequest {
            command: CommandLine::Argv(manifest.command.clone()),
            cwd: ".".into(),
            env: BTreeMap::new(),
            pass_env: Vec::new(),
            timeout_ms: Some(step.timeout_ms.unwrap_or(manifest.timeout_ms)),
            max_output_bytes: REPLY_MAX_BYTES,
            save_output: false,
            stdin: Some(stdin),
        };
        self.gate(index, Proposal::RunCommand(request), GateKind::RunCommand)
    }

    /// A custom step's command ended: its answer is the output, or the step fails saying why.
    pub(super) fn custom_step_returned(
        &mut self,
        index: usize,
        outcome: &CommandOutcome,
    ) -> Vec<Event> {
        let step = &self.workflow.steps[index];
        let Action::Custom(custom) = &step.action else {
            return Vec::new();
        };
        let timeout_ms = step.timeout_ms.unwrap_or(custom.manifest.timeout_ms);
        match reply_output(&custom.manifest.name, outcome, timeout_ms) {
            Ok(output) => vec![Event::StepSucceeded {
                step: step.id.clone(),
                attempt: self.steps[index].attempt,
                output,
            }],
            Err((error, retryable)) => {
                let details = json!({
                    "exit_code": outcome.exit_code,
                    "signal": outcome.signal,
                    "timed_out": outcome.timed_out,
                    "stderr": outcome.stderr,
                });
                self.fail_or_retry(index, error, retryable, Some(details))
            }
        }
    }
}

/// How a custom step's manifest bears on the policy's verdict for its command: `ask` asks a
/// person whatever the policy says (the reason returned); `allow` lets the command go where
/// no rule decides (a rule that asks or denies still does).
pub(super) fn manifest_verdict(action: &Action, verdict: Verdict) -> (Verdict, Option<String>) {
    let Action::Custom(custom) = action else {
        return (verdict, None);
    };
    let manifest: &StepManifest = &custom.manifest;
    match manifest.approval {
        Approval::Ask if verdict.effect != Effect::Deny => {
            let mut reason = format!(
                "step type `{}` asks a person before each use (`approval: ask` in {})",
                manifest.name, manifest.path
            );
            // A rule that asks too is named, so the person sees it.
            if let (Effect::Ask, Some(rule)) = (verdict.effect, &verdict.rule) {
                reason = format!("{reason}; and {rule}");
            }
            (verdict, Some(reason))
        }
        Approval::Allow if verdict.rule.is_none() && verdict.effect == Effect::Ask => (
            Verdict {
                effect: Effect::Allow,
                rule: Some(format!(
                    "step type `{}` allows its command (`approval: allow` in {})",
                    manifest.name, manifest.path
                )),
                rule_text: None,
                note: None,
            },
            None,
        ),
        _ => (verdict, None),
    }
}
