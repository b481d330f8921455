//! Compiling the fields of model steps (`prompt`, `analyze`, `summarize`) and a workflow's
//! `budget`, each error placed at its field.

use super::def::{ActionDef, BudgetDef, MessageDef, RoleDef};
use super::fields::StepContext;
use super::{LlmAction, plan_schema};
use crate::llm::{Budget, DEFAULT_MAX_TOKENS, Role, Temperature};

/// How often a reply that does not match `output_schema` is asked again, unless the step says.
pub(super) const DEFAULT_SCHEMA_RETRIES: u32 = 2;
/// At most this many tokens may be asked for one reply.
const MAX_TOKENS_CEILING: u32 = 1_000_000;
/// At most this many schema retries.
const MAX_SCHEMA_RETRIES: u32 = 10;

/// The `budget` of a workflow.
pub(super) fn budget(def: &BudgetDef) -> Result<Budget, String> {
    let micro_usd = match def.usd {
        None => None,
        Some(usd) if usd.is_finite() && (0.0..=1e9).contains(&usd) => {
            Some((usd * 1_000_000.0).round() as u64)
        }
        Some(usd) => {
            return Err(format!(
                "`budget.usd` is {usd}; it must be a number of dollars, 0 or more"
            ));
        }
    };
    if micro_usd.is_none() && def.tokens.is_none() {
        return Err("`budget` needs `usd`, `tokens` or both".into());
    }
    Ok(Budget {
        micro_usd,
        tokens: def.tokens,
    })
}

impl StepContext<'_, '_> {
    pub(super) fn llm_action(&mut self, def: &ActionDef) -> Option<LlmAction> {
        match def {
            ActionDef::Prompt {
                model,
                prompt,
                messages,
                system,
                temperature,
                max_tokens,
                output_schema,
                schema_retries,
            } => {
                let model = self.model(model);
                let mut compiled = Vec::new();
                if let Some(system) = system {
                    compiled.push((Role::System, self.template("system", system)?));
                }
                match (prompt, messages) {
                    (Some(prompt), None) => {
                        compiled.push((Role::User, self.template("prompt", prompt)?));
                    }
                    (None, Some(messages)) if !messages.is_empty() => {
                        for MessageDef { role, content } in messages {
                            compiled.push((role_of(*role), self.template("messages", content)?));
                        }
                    }
                    (None, Some(_)) => {
                        self.error("messages", "`messages` must not be empty");
                        return None;
                    }
                    (Some(_), Some(_)) => {
                        self.error("prompt", "give `prompt` or `messages`, not both");
                        return None;
                    }
                    (None, None) => {
                        self.error("model", "a `prompt` step needs `prompt` or `messages`");
                        return None;
                    }
                }
                let output_schema = match output_schema {
                    Some(schema) => Some(self.output_schema(schema)?),
                    None => None,
                };
                let schema_retries = schema_retries.unwrap_or(DEFAULT_SCHEMA_RETRIES);
                if schema_retries > MAX_SCHEMA_RETRIES {
                    self.error(
                        "schema_retries",
                        format!("`schema_retries` is at most {MAX_SCHEMA_RETRIES}"),
                    );
                    return None;
                }
                Some(LlmAction {
                    type_name: "prompt",
                    model: model?,
                    messages: compiled,
                    temperature: self.temperature(*temperature)?,
                    max_tokens: self.max_tokens(*max_tokens)?,
                    output_schema,
                    schema_retries,
                    plan: None,
                    agent: None,
                })
            }
            ActionDef::Summarize {
                model,
                text,
                instructions,
                max_words,
                temperature,
                max_tokens,
            } => {
                let model = self.model(model);
                let length = match max_words {
                    Some(0) => {
                        self.error("max_words", "`max_words` must be at least 1");
                        return None;
                    }
                    Some(n) => format!(" in at most {n} words"),
                    None => String::new(),
                };
                let instructions = instructions
                    .as_deref()
                    .map(|i| format!(" {}", i.trim()))
                    .unwrap_or_default();
                // The text is a template of its own; the request around it is plain text, so
                // the whole user message is one template.
                let user = format!(
                    "Summarize the following text{length}. Keep to what it says.{instructions}\n\n{text}"
                );
                let system = "You write concise, faithful summaries.";
                Some(LlmAction {
                    type_name: "summarize",
                    model: model?,
                    messages: vec![
                        (Role::System, self.template("model", system)?),
                        (Role::User, self.template("text", &user)?),
                    ],
                    temperature: self.temperature(*temperature)?,
                    max_tokens: self.max_tokens(*max_tokens)?,
                    output_schema: None,
                    schema_retries: 0,
                    plan: None,
                    agent: None,
                })
            }
            ActionDef::Plan {
                model,
                goal,
                context,
                max_steps,
                temperature,
                max_tokens,
            } => {
                let model = self.model(model);
                let max_steps = max_steps.unwrap_or(super::plan::DEFAULT_MAX_STEPS);
                if !(1..=super::plan::MAX_STEPS_CEILING).contains(&max_steps) {
                    self.error(
                        "max_steps",
                        format!(
                            "`max_steps` is {max_steps}; it must be from 1 to {}",
                            super::plan::MAX_STEPS_CEILING
                        ),
                    );
                    return None;
                }
                let context = context
                    .as_deref()
                    .map(|c| format!("\n\nWhat you know:\n{c}"))
                    .unwrap_or_default();
                let user = format!("Goal: {goal}{context}");
                let system = super::plan::instructions(max_steps);
                Some(LlmAction {
                    type_name: "plan",
                    model: model?,
                    messages: vec![
                        (
                            Role::System,
                            self.template("model", &system.replace("${", "$${"))?,
                        ),
                        (Role::User, self.template("goal", &user)?),
                    ],
                    temperature: self.temperature(*temperature)?,
                    max_tokens: self.max_tokens(*max_tokens)?,
                    output_schema: Some(plan_schema(max_steps)),
                    schema_retries: DEFAULT_SCHEMA_RETRIES,
                    plan: Some(max_steps),
                    agent: None,
                })
            }
            _ => None,
        }
    }

    /// A model alias: plain text (it is resolved from the settings when a run starts).
    pub(super) fn model(&mut self, model: &str) -> Option<String> {
        let ok = !model.is_empty()
            && model.len() <= 128
            && model
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._:/-".contains(c));
        if !ok {
            self.error(
                "model",
                format!(
                    "`model` is `{model}`; it must be a model alias from the settings (letters, digits and . _ : / -, no templates)"
                ),
            );
            return None;
        }
        Some(model.to_string())
    }

    pub(super) fn temperature(&mut self, temperature: Option<f64>) -> Option<Option<Temperature>> {
        match temperature {
            None => Some(None),
            Some(t) if t.is_finite() && (0.0..=2.0).contains(&t) => Some(Some(Temperature(t))),
            Some(t) => {
                self.error(
                    "temperature",
                    format!("`temperature` is {t}; it must be from 0 to 2"),
                );
                None
            }
        }
    }

    pub(super) fn max_tokens(&mut self, max_tokens: Option<u32>) -> Option<u32> {
        match max_tokens {
            None => Some(DEFAULT_MAX_TOKENS),
            Some(n) if (1..=MAX_TOKENS_CEILING).contains(&n) => Some(n),
            Some(n) => {
                self.error(
                    "max_tokens",
                    format!("`max_tokens` is {n}; it must be from 1 to {MAX_TOKENS_CEILING}"),
                );
                None
            }
        }
    }

    /// The schema must be one a validator can be built from.
    pub(super) fn output_schema(
        &mut self,
        schema: &serde_json::Value,
    ) -> Option<serde_json::Value> {
        match jsonschema::validator_for(schema) {
            Ok(_) => Some(schema.clone()),
            Err(e) => {
                self.error(
                    "output_schema",
                    format!("`output_schema` is not a usable JSON Schema: {e}"),
                );
                None
            }
        }
    }
}

fn role_of(role: RoleDef) -> Role {
    match role {
        RoleDef::System => Role::System,
        RoleDef::User => Role::User,
        RoleDef::Assistant => Role::Assistant,
    }
}
