//! Compiling an `agent` step: its model fields as a `prompt` step's, its task as the user's
//! first message, and the tools it may call, each error placed at its field.

use super::def::ActionDef;
use super::fields::StepContext;
use super::llm_fields::DEFAULT_SCHEMA_RETRIES;
use super::{AgentSpec, LlmAction};
use crate::agent_tools::{BUILT_IN_TOOLS, MEMORY_TOOLS, tool_spec};
use crate::llm::Role;

/// Model turns an agent step may take unless it says otherwise, and at most.
const DEFAULT_MAX_TURNS: u32 = 30;
const MAX_TURNS_CEILING: u32 = 200;
/// The longest name of an MCP server (names make the tools' names the model sees).
const MAX_SERVER_NAME: usize = 32;
/// The longest name of a memory.
const MAX_MEMORY_NAME: usize = 64;

fn is_memory_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_MEMORY_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

impl StepContext<'_, '_> {
    pub(super) fn agent_action(&mut self, def: &ActionDef) -> Option<LlmAction> {
        let ActionDef::Agent {
            model,
            instructions,
            system,
            tools,
            mcp,
            max_turns,
            memory,
            output_schema,
            temperature,
            max_tokens,
        } = def
        else {
            return None;
        };
        let model = self.model(model);
        let mut servers: Vec<String> = Vec::new();
        for name in mcp.iter().flatten() {
            let valid = !name.is_empty()
                && name.len() <= MAX_SERVER_NAME
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid {
                self.error(
                    "mcp",
                    format!(
                        "`{name}` is not an MCP server's name: letters, digits, `_` and `-`, at most {MAX_SERVER_NAME}"
                    ),
                );
                return None;
            }
            if servers.contains(name) {
                self.error("mcp", format!("MCP server `{name}` is listed twice"));
                return None;
            }
            servers.push(name.clone());
        }
        let max_turns = max_turns.unwrap_or(DEFAULT_MAX_TURNS);
        if !(1..=MAX_TURNS_CEILING).contains(&max_turns) {
            self.error(
                "max_turns",
                format!("`max_turns` is {max_turns}; it must be from 1 to {MAX_TURNS_CEILING}"),
            );
            return None;
        }
        let memory = match memory.as_deref().map(str::trim) {
            None => None,
            Some(name) if is_memory_name(name) => Some(name.to_string()),
            Some(name) => {
                self.error(
                    "memory",
                    format!(
                        "`{name}` is not a memory's name: letters, digits, `_`, `-` and `.`, at most {MAX_MEMORY_NAME}"
                    ),
                );
                return None;
            }
        };
        let mut names: Vec<&str> = match tools {
            Some(names) => names.iter().map(String::as_str).collect(),
            None => BUILT_IN_TOOLS.to_vec(),
        };
        if let Some(tool) = names.iter().find(|n| MEMORY_TOOLS.contains(n)) {
            self.error(
                "tools",
                format!("`{tool}` comes with `memory: NAME`; it is not listed under `tools`"),
            );
            return None;
        }
        if memory.is_some() {
            names.extend(MEMORY_TOOLS);
        }
        let mut specs = Vec::new();
        for name in names {
            if specs.iter().any(|s: &crate::llm::ToolSpec| s.name == name) {
                self.error("tools", format!("tool `{name}` is listed twice"));
                return None;
            }
            match tool_spec(name) {
                Some(spec) => specs.push(spec),
                None => {
                    self.error(
                        "tools",
                        format!(
                            "there is no tool `{name}`; the built-in tools are: {}",
                            BUILT_IN_TOOLS.join(", ")
                        ),
                    );
                    return None;
                }
            }
        }
        let mut messages = Vec::new();
        if let Some(system) = system {
            messages.push((Role::System, self.template("system", system)?));
        }
        messages.push((Role::User, self.template("instructions", instructions)?));
        let output_schema = match output_schema {
            Some(schema) => Some(self.output_schema(schema)?),
            None => None,
        };
        Some(LlmAction {
            type_name: "agent",
            model: model?,
            messages,
            temperature: self.temperature(*temperature)?,
            max_tokens: self.max_tokens(*max_tokens)?,
            output_schema,
            schema_retries: DEFAULT_SCHEMA_RETRIES,
            plan: None,
            agent: Some(AgentSpec {
                tools: specs,
                max_turns,
                mcp: servers,
                memory,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::agent_tools::{BUILT_IN_TOOLS, MEMORY_TOOLS};

    /// The `properties` of the agent step in the published schema.
    fn agent_properties(value: &Value) -> Option<&Value> {
        match value {
            Value::Object(map) => map
                .get("properties")
                .filter(|p| p.get("max_turns").is_some())
                .or_else(|| map.values().find_map(agent_properties)),
            Value::Array(items) => items.iter().find_map(agent_properties),
            _ => None,
        }
    }

    #[test]
    fn the_published_schema_holds_an_agent_step_to_what_validation_does() {
        let schema = crate::workflow::workflow_json_schema();
        let agent = agent_properties(&schema).expect("the agent step's properties");
        assert_eq!(agent["max_turns"]["minimum"], json!(1));
        assert_eq!(agent["max_turns"]["maximum"], json!(MAX_TURNS_CEILING));
        let tools: Vec<&str> = BUILT_IN_TOOLS.iter().chain(MEMORY_TOOLS).copied().collect();
        assert_eq!(agent["tools"]["items"]["enum"], json!(tools));
        assert_eq!(agent["tools"]["uniqueItems"], json!(true));
        assert_eq!(
            agent["mcp"]["items"]["pattern"],
            json!(format!("^[A-Za-z0-9_-]{{1,{MAX_SERVER_NAME}}}$"))
        );
    }
}
