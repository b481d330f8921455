//! The tools of MCP servers, as an agent is offered them: each listed tool under a name the
//! providers accept (`SERVER__tool`, only letters, digits, `_` and `-`, at most 64 bytes), a
//! call of it as an `mcp_call` operation, and what it returned as the model is told it. Policy
//! rules and people name a tool `SERVER.tool`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::llm::{ToolCall, ToolSpec};
use crate::operation::{McpToolInfo, OperationRequest};

use super::ToolAction;

/// The longest tool name providers accept (OpenAI's limit; Anthropic's and Gemini's are
/// longer).
const MAX_WIRE_NAME: usize = 64;
/// How deeply an MCP call's arguments may nest, and how long they may be as JSON: what the
/// model sends is recorded, shown to a person and handed to the server.
const MAX_ARGUMENT_DEPTH: usize = 32;
const MAX_ARGUMENT_BYTES: usize = 1024 * 1024;

/// A tool of an MCP server, as an agent step is offered it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McpTool {
    pub server: String,
    /// The tool's name on its server.
    pub name: String,
    /// What the model is told of it (its name there is the wire name).
    pub spec: ToolSpec,
}

impl McpTool {
    /// `SERVER.tool`, as policy rules and people name it.
    pub fn full_name(&self) -> String {
        format!("{}.{}", self.server, self.name)
    }
}

/// The tools `server` listed, as offered to the model, leaving out any whose name on the wire
/// would be taken already (by a built-in tool or an earlier one).
pub fn offered_tools(server: &str, listed: &[McpToolInfo], taken: &[ToolSpec]) -> Vec<McpTool> {
    let mut offered: Vec<McpTool> = Vec::new();
    for tool in listed {
        let wire = wire_name(server, &tool.name);
        let clash =
            taken.iter().any(|t| t.name == wire) || offered.iter().any(|t| t.spec.name == wire);
        if clash {
            continue;
        }
        let parameters = match &tool.input_schema {
            schema @ Value::Object(_) => schema.clone(),
            _ => serde_json::json!({"type": "object"}),
        };
        offered.push(McpTool {
            server: server.to_string(),
            name: tool.name.clone(),
            spec: ToolSpec {
                name: wire,
                description: format!(
                    "{} (tool `{}` of MCP server `{server}`)",
                    tool.description.trim(),
                    tool.name
                ),
                parameters,
            },
        });
    }
    offered
}

/// `SERVER__tool` with every other character `_`, cut to the providers' limit.
fn wire_name(server: &str, tool: &str) -> String {
    let mut name: String = format!("{server}__{tool}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    name.truncate(MAX_WIRE_NAME);
    name
}

/// The `mcp_call` a call of `tool` asks for, or what is wrong with it.
pub(super) fn mcp_call_request(call: &ToolCall, tool: &McpTool) -> Result<ToolAction, String> {
    if let Some(problem) = &call.malformed {
        return Err(format!(
            "error: {problem}; send them again as one JSON object"
        ));
    }
    let arguments = match &call.arguments {
        Value::Object(_) => call.arguments.clone(),
        Value::Null => Value::Object(Default::default()),
        _ => return Err("error: the arguments must be a JSON object".into()),
    };
    if crate::json_depth::deeper_than(&arguments, MAX_ARGUMENT_DEPTH) {
        return Err(format!(
            "error: the arguments nest deeper than {MAX_ARGUMENT_DEPTH} levels"
        ));
    }
    if arguments.to_string().len() > MAX_ARGUMENT_BYTES {
        return Err(format!(
            "error: the arguments are longer than {MAX_ARGUMENT_BYTES} bytes as JSON"
        ));
    }
    Ok(ToolAction::Operation(OperationRequest::McpCall {
        server: tool.server.clone(),
        tool: tool.name.clone(),
        arguments,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn listed_tools_get_names_providers_accept_and_never_take_another_tools_name() {
        let info = |name: &str| McpToolInfo {
            name: name.into(),
            description: "Reads.".into(),
            input_schema: json!({"type": "object", "properties": {"path": {"type": "string"}}}),
        };
        let builtin = vec![crate::agent_tools::tool_spec("read_file").unwrap()];
        let offered = offered_tools(
            "files",
            &[
                info("read.text/file"),
                info("read_text_file"),
                info(&"x".repeat(100)),
            ],
            &builtin,
        );
        let names: Vec<&str> = offered.iter().map(|t| t.spec.name.as_str()).collect();
        assert_eq!(names[0], "files__read_text_file");
        assert_eq!(offered[0].full_name(), "files.read.text/file");
        // The second tool's name on the wire is the first's: it is left out.
        assert_eq!(names.len(), 2);
        assert_eq!(names[1].len(), MAX_WIRE_NAME);
        assert!(offered[0].spec.description.contains("MCP server `files`"));
        let call = ToolCall {
            id: "c".into(),
            name: "files__read_text_file".into(),
            arguments: json!({"path": "a"}),
            signature: None,
            malformed: None,
        };
        assert_eq!(
            mcp_call_request(&call, &offered[0]),
            Ok(ToolAction::Operation(OperationRequest::McpCall {
                server: "files".into(),
                tool: "read.text/file".into(),
                arguments: json!({"path": "a"})
            }))
        );
        let wrong = ToolCall {
            arguments: json!([1]),
            ..call.clone()
        };
        assert!(mcp_call_request(&wrong, &offered[0]).is_err());
        // Arguments too deep or too long are the model's to fix, never the server's to see.
        let mut deep = json!("x");
        for _ in 0..=MAX_ARGUMENT_DEPTH {
            deep = json!({ "a": deep });
        }
        let deep = ToolCall {
            arguments: deep,
            ..call.clone()
        };
        let told = mcp_call_request(&deep, &offered[0]).unwrap_err();
        assert!(told.contains("nest deeper"), "{told}");
        let long = ToolCall {
            arguments: json!({ "path": "a".repeat(MAX_ARGUMENT_BYTES) }),
            ..call
        };
        let told = mcp_call_request(&long, &offered[0]).unwrap_err();
        assert!(told.contains("longer than"), "{told}");
    }
}
