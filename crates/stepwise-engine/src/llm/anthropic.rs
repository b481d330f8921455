//! Anthropic's Messages API. System messages go into `system`; structured output is asked for
//! in words (the reply is validated against the schema).

use serde_json::{Value, json};
use stepwise_core::llm::{ChatMessage, LlmRequest, Role, TokenUsage};

use super::error::{BadReply, Refusal};
use super::protocol::{
    Delta, KeyHeader, Protocol, ToolCallPiece, WireRequest, error_field, event_json, json_text,
    stream_error,
};
use super::tool_calls::arguments_text;

const API_VERSION: &str = "2023-06-01";

/// Anthropic's Messages API for one request.
pub(crate) struct Anthropic<'a> {
    pub(crate) request: &'a LlmRequest,
}

impl Protocol for Anthropic<'_> {
    type Form = ();
    const DEFAULT_BASE: &'static str = "https://api.anthropic.com";
    const KEY_HEADER: KeyHeader = KeyHeader::Named("x-api-key");

    fn forms(&self, _base: &str) -> Vec<()> {
        vec![()]
    }

    fn request(&self, base: &str, (): ()) -> Result<WireRequest, BadReply> {
        let mut body = body(self.request);
        if self.request.spec.stream {
            body["stream"] = json!(true);
        }
        Ok(WireRequest {
            url: format!("{base}/v1/messages"),
            headers: vec![("anthropic-version", API_VERSION)],
            body: json_text(&body)?,
        })
    }

    fn parse_reply(&self, reply: &Value) -> Result<Delta, BadReply> {
        let content = reply
            .get("content")
            .and_then(Value::as_array)
            .ok_or_else(|| BadReply::new("no `content` list"))?;
        let text: String = content
            .iter()
            .filter(|block| block.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|block| block.get("text").and_then(Value::as_str))
            .collect();
        let tool_calls = content
            .iter()
            .enumerate()
            .filter(|(_, block)| block.get("type").and_then(Value::as_str) == Some("tool_use"))
            .map(|(index, block)| ToolCallPiece {
                index: Some(index as u64),
                id: text_at(block, "/id"),
                name: text_at(block, "/name"),
                arguments: arguments_text(block.get("input")),
                signature: None,
            })
            .collect();
        let usage = reply.get("usage").and_then(|u| {
            Some(TokenUsage {
                input_tokens: u.get("input_tokens")?.as_u64()?,
                output_tokens: u.get("output_tokens")?.as_u64()?,
            })
        });
        Ok(Delta {
            text,
            finish_reason: text_at(reply, "/stop_reason"),
            tool_calls,
            ..Delta::default()
        }
        .with_usage(usage))
    }

    /// A streamed reply: `message_start` (input tokens), `content_block_start` (a tool call's
    /// id and name, by the block's index), `content_block_delta` (text, or a fragment of a
    /// tool call's input as JSON text), `message_delta` (stop reason, output tokens), `error`.
    fn parse_event(&self, data: &str) -> Result<Option<Delta>, BadReply> {
        let event = event_json(data, "a streamed event")?;
        let mut delta = Delta::default();
        match event.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                delta.input_tokens = event
                    .pointer("/message/usage/input_tokens")
                    .and_then(Value::as_u64);
            }
            Some("content_block_start") => {
                let block = event.get("content_block");
                if block.and_then(|b| b.get("type")).and_then(Value::as_str) == Some("tool_use") {
                    let block = block.unwrap_or(&Value::Null);
                    delta.tool_calls.push(ToolCallPiece {
                        index: event.get("index").and_then(Value::as_u64),
                        id: text_at(block, "/id"),
                        name: text_at(block, "/name"),
                        // The input comes in the deltas that follow (`{}` here).
                        arguments: String::new(),
                        signature: None,
                    });
                }
            }
            Some("content_block_delta") => {
                if let Some(json) = text_at(&event, "/delta/partial_json") {
                    delta.tool_calls.push(ToolCallPiece {
                        index: event.get("index").and_then(Value::as_u64),
                        arguments: json,
                        ..ToolCallPiece::default()
                    });
                } else {
                    delta.text = text_at(&event, "/delta/text").unwrap_or_default();
                }
            }
            Some("message_delta") => {
                delta.finish_reason = text_at(&event, "/delta/stop_reason");
                delta.output_tokens = event
                    .pointer("/usage/output_tokens")
                    .and_then(Value::as_u64);
            }
            Some("error") => {
                let said = text_at(&event, "/error/message");
                return Err(stream_error(said.as_deref().unwrap_or("an error")));
            }
            _ => {}
        }
        Ok(Some(delta))
    }

    /// Anthropic names the kind of every error (`error.type`), whatever the status.
    fn classify_error(&self, (): (), status: u16, body: &str) -> Refusal {
        match error_field(body, "/error/type").as_deref() {
            Some("authentication_error" | "permission_error") => Refusal::Auth,
            Some("not_found_error") => Refusal::UnknownModel,
            Some("rate_limit_error" | "overloaded_error") => Refusal::Busy,
            _ => Refusal::of_status(status),
        }
    }
}

fn text_at(value: &Value, pointer: &str) -> Option<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn body(request: &LlmRequest) -> Value {
    let mut system: Vec<String> = request
        .messages
        .iter()
        .filter(|m| m.role == Role::System)
        .map(|m| m.content.clone())
        .collect();
    if let Some(schema) = &request.output_schema {
        system.push(format!(
            "Reply with only a JSON value that matches this JSON Schema, and nothing else:\n{schema}"
        ));
    }
    let mut body = json!({
        "model": request.spec.model,
        "max_tokens": request.max_tokens,
        "messages": messages(&request.messages),
    });
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|t| json!({ "name": t.name, "description": t.description, "input_schema": t.parameters }))
            .collect();
        body["tools"] = json!(tools);
    }
    if !system.is_empty() {
        body["system"] = json!(system.join("\n\n"));
    }
    if let Some(t) = request.temperature {
        body["temperature"] = json!(t.0.min(1.0));
    }
    body
}

/// The conversation as the Messages API takes it: a model's turn with its text and the tools
/// it called as `tool_use` blocks; tools' results as `tool_result` blocks of the user's turn
/// that follows (results in a row go in one turn).
fn messages(conversation: &[ChatMessage]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for m in conversation {
        match m.role {
            Role::System => {}
            Role::User => out.push(json!({ "role": "user", "content": m.content })),
            Role::Assistant if m.tool_calls.is_empty() => {
                out.push(json!({ "role": "assistant", "content": m.content }));
            }
            Role::Assistant => {
                let mut blocks = Vec::new();
                if !m.content.is_empty() {
                    blocks.push(json!({ "type": "text", "text": m.content }));
                }
                for call in &m.tool_calls {
                    blocks.push(json!({ "type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments }));
                }
                out.push(json!({ "role": "assistant", "content": blocks }));
            }
            Role::Tool => {
                let block = json!({ "type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content });
                let follows_results = out.last().is_some_and(|last| {
                    last["role"] == "user"
                        && last["content"]
                            .as_array()
                            .is_some_and(|blocks| blocks.iter().all(|b| b["type"] == "tool_result"))
                });
                match out
                    .last_mut()
                    .and_then(|last| last["content"].as_array_mut())
                {
                    Some(blocks) if follows_results => blocks.push(block),
                    _ => out.push(json!({ "role": "user", "content": [block] })),
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_blocks_are_joined_and_usage_read() {
        let json = json!({"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], "stop_reason": "end_turn", "usage": {"input_tokens": 3, "output_tokens": 4}});
        let request = super::super::tests::request(None);
        let reply = Anthropic { request: &request }
            .parse_reply(&json)
            .expect("parses");
        assert_eq!(reply.text, "ab");
        assert_eq!(reply.finish_reason.as_deref(), Some("end_turn"));
        assert_eq!(
            (reply.input_tokens, reply.output_tokens),
            (Some(3), Some(4))
        );
    }
}
