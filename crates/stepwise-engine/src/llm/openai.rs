//! OpenAI's chat completions, as OpenAI, llama.cpp, Ollama, vLLM and LM Studio serve them.
//!
//! Structured output is asked for in the server's native JSON mode. Servers disagree on its
//! form: OpenAI wants `{"type": "json_schema", ...}`, llama.cpp's server wants
//! `{"type": "json_object", "schema": ...}` (and fails with HTTP 500 on the other). Each form
//! is tried once, the likelier first, then the request is sent without one (the reply is
//! validated against the schema either way).

use serde_json::{Value, json};
use stepwise_core::llm::{ChatMessage, LlmRequest, Role, TokenUsage};

use super::error::{BadReply, Refusal};
use super::protocol::{
    Delta, KeyHeader, Protocol, ToolCallPiece, WireRequest, error_field, event_json, stream_error,
};
use super::tool_calls::arguments_text;

const OPENAI_BASE: &str = "https://api.openai.com/v1";

/// OpenAI's chat completions for one request.
pub(crate) struct OpenAi<'a> {
    pub(crate) request: &'a LlmRequest,
}

/// How a request asks for JSON.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum JsonMode {
    /// OpenAI's structured outputs.
    JsonSchema,
    /// llama.cpp's JSON mode with a schema.
    JsonObjectWithSchema,
    /// No JSON mode: the schema is in the conversation only.
    Plain,
}

impl Protocol for OpenAi<'_> {
    type Form = JsonMode;
    const DEFAULT_BASE: &'static str = OPENAI_BASE;
    const KEY_HEADER: KeyHeader = KeyHeader::Bearer;

    fn forms(&self, base: &str) -> Vec<JsonMode> {
        match (&self.request.output_schema, base == OPENAI_BASE) {
            (None, _) => vec![JsonMode::Plain],
            (Some(_), true) => vec![
                JsonMode::JsonSchema,
                JsonMode::JsonObjectWithSchema,
                JsonMode::Plain,
            ],
            (Some(_), false) => vec![
                JsonMode::JsonObjectWithSchema,
                JsonMode::JsonSchema,
                JsonMode::Plain,
            ],
        }
    }

    fn request(&self, base: &str, mode: JsonMode) -> WireRequest {
        let mut body = body(self.request, mode);
        if self.request.spec.stream {
            body["stream"] = json!(true);
            // OpenAI adds the usage to the last chunk only when asked; other servers may not
            // know the option, so it is sent to OpenAI alone.
            if base == OPENAI_BASE {
                body["stream_options"] = json!({ "include_usage": true });
            }
        }
        WireRequest {
            url: format!("{base}/chat/completions"),
            headers: Vec::new(),
            body,
        }
    }

    fn parse_reply(&self, reply: &Value) -> Result<Delta, BadReply> {
        let choice = reply
            .get("choices")
            .and_then(|c| c.get(0))
            .ok_or_else(|| BadReply::new("no `choices[0]`"))?;
        let text = match choice.pointer("/message/content") {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Null) | None => String::new(),
            Some(_) => return Err(BadReply::new("`message.content` is not text")),
        };
        Ok(Delta {
            text,
            finish_reason: finish_reason(choice),
            tool_calls: tool_call_pieces(choice.pointer("/message/tool_calls"), false)?,
            ..Delta::default()
        }
        .with_usage(usage(reply.get("usage"))))
    }

    /// A streamed reply: `choices[0].delta.content` pieces, the finish reason, and the usage
    /// (in the last chunk, when the server reports it), until `[DONE]`.
    fn parse_event(&self, data: &str) -> Result<Option<Delta>, BadReply> {
        if data.trim() == "[DONE]" {
            return Ok(None);
        }
        let chunk = event_json(data, "a streamed chunk")?;
        if let Some(error) = chunk.get("error") {
            return Err(stream_error(error));
        }
        let mut delta = Delta::default();
        if let Some(choice) = chunk.get("choices").and_then(|c| c.get(0)) {
            if let Some(piece) = choice.pointer("/delta/content").and_then(Value::as_str) {
                delta.text = piece.to_string();
            }
            delta.tool_calls = tool_call_pieces(choice.pointer("/delta/tool_calls"), true)?;
            delta.finish_reason = finish_reason(choice);
        }
        Ok(Some(delta.with_usage(usage(chunk.get("usage")))))
    }

    /// OpenAI, llama.cpp and vLLM name a refused key in the body, some with HTTP 400. Beyond
    /// that, servers disagree on the form of JSON mode and say so in no common way: llama.cpp
    /// fails with HTTP 500 on a form it does not know, others with a 400 or 422. So while a
    /// JSON form is tried, any refusal of the request that is not about the key, the model or
    /// being busy is taken to be about the form.
    fn classify_error(&self, mode: JsonMode, status: u16, body: &str) -> Refusal {
        let kind = error_field(body, "/error/type");
        let code = error_field(body, "/error/code");
        let refusal = match (kind.as_deref(), code.as_deref()) {
            (Some("authentication_error" | "permission_error"), _)
            | (_, Some("invalid_api_key")) => Refusal::Auth,
            _ => Refusal::of_status(status),
        };
        match (mode, refusal) {
            (JsonMode::Plain, _) => refusal,
            (_, Refusal::Rejected | Refusal::ServerFailed) => Refusal::FormUnsupported,
            _ => refusal,
        }
    }
}

fn body(request: &LlmRequest, mode: JsonMode) -> Value {
    let messages: Vec<Value> = request.messages.iter().map(message).collect();
    let mut body = json!({
        "model": request.spec.model,
        "messages": messages,
        "max_tokens": request.max_tokens,
    });
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|t| {
                json!({
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": t.parameters,
                    },
                })
            })
            .collect();
        body["tools"] = json!(tools);
    }
    if let Some(t) = request.temperature {
        body["temperature"] = json!(t.0);
    }
    if let Some(schema) = &request.output_schema {
        match mode {
            JsonMode::JsonSchema => {
                body["response_format"] = json!({
                    "type": "json_schema",
                    "json_schema": { "name": "output", "schema": schema },
                });
            }
            JsonMode::JsonObjectWithSchema => {
                body["response_format"] = json!({ "type": "json_object", "schema": schema });
            }
            JsonMode::Plain => {}
        }
    }
    body
}

/// A message as chat completions write it: a model's turn with the tools it called, and a
/// tool's result answering one call by its id.
fn message(m: &ChatMessage) -> Value {
    match m.role {
        Role::Tool => json!({
            "role": "tool",
            "tool_call_id": m.tool_call_id,
            "content": m.content,
        }),
        Role::Assistant if !m.tool_calls.is_empty() => {
            let calls: Vec<Value> = m
                .tool_calls
                .iter()
                .map(|c| {
                    json!({
                        "id": c.id,
                        "type": "function",
                        "function": { "name": c.name, "arguments": c.arguments.to_string() },
                    })
                })
                .collect();
            let content = if m.content.is_empty() {
                Value::Null
            } else {
                json!(m.content)
            };
            json!({ "role": "assistant", "content": content, "tool_calls": calls })
        }
        role => json!({ "role": role.as_str(), "content": m.content }),
    }
}

/// `tool_calls` of a whole message or of a streamed delta: each with its `index` (in a
/// stream, where a server gives it; a whole message's are numbered by their place), `id` and
/// `function` (`name`, `arguments` as JSON text, or a fragment of it).
fn tool_call_pieces(calls: Option<&Value>, streamed: bool) -> Result<Vec<ToolCallPiece>, BadReply> {
    let calls = match calls {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(calls)) => calls,
        Some(_) => return Err(BadReply::new("`tool_calls` is not a list")),
    };
    let mut pieces = Vec::with_capacity(calls.len().min(64));
    for (place, call) in calls.iter().enumerate() {
        let text = |pointer: &str| {
            call.pointer(pointer)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        pieces.push(ToolCallPiece {
            index: call
                .get("index")
                .and_then(Value::as_u64)
                .or((!streamed).then_some(place as u64)),
            id: text("/id"),
            name: text("/function/name"),
            arguments: arguments_text(call.pointer("/function/arguments")),
            signature: None,
        });
    }
    Ok(pieces)
}

fn finish_reason(choice: &Value) -> Option<String> {
    choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// `usage` as OpenAI reports it.
fn usage(usage: Option<&Value>) -> Option<TokenUsage> {
    let usage = usage?;
    Some(TokenUsage {
        input_tokens: usage.get("prompt_tokens")?.as_u64()?,
        output_tokens: usage.get("completion_tokens")?.as_u64()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_is_read_with_its_usage() {
        let json = json!({"choices": [{"message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 7, "completion_tokens": 2}});
        let request = super::super::tests::request(None);
        let openai = OpenAi { request: &request };
        let reply = openai.parse_reply(&json).expect("parses");
        assert_eq!(reply.text, "hi");
        assert_eq!(reply.finish_reason.as_deref(), Some("stop"));
        assert_eq!(
            (reply.input_tokens, reply.output_tokens),
            (Some(7), Some(2))
        );
        assert!(openai.parse_reply(&json!({"oops": 1})).is_err());
    }
}
