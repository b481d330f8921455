//! OpenAI's chat completions, as OpenAI, llama.cpp, Ollama, vLLM and LM Studio serve them.
//!
//! Structured output is asked for in the server's native JSON mode. Servers disagree on its
//! form: OpenAI wants `{"type": "json_schema", ...}`, llama.cpp's server wants
//! `{"type": "json_object", "schema": ...}` (and fails with HTTP 500 on the other). Each form
//! is tried once, the likelier first, then the request is sent without one (the reply is
//! validated against the schema either way).

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::Value;
use stepwise_core::llm::{ChatMessage, LlmRequest, Role, TokenUsage, ToolCall, ToolSpec};

use super::error::{BadReply, Refusal};
use super::protocol::{
    Delta, KeyHeader, Protocol, ToolCallPiece, WireRequest, error_field, event_json, json_text,
    stream_error,
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

    fn request(&self, base: &str, mode: JsonMode) -> Result<WireRequest, BadReply> {
        Ok(WireRequest {
            url: format!("{base}/chat/completions"),
            headers: Vec::new(),
            body: json_text(&body(self.request, mode, base))?,
        })
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

/// The request body, written straight from the request (no JSON tree in between: a long
/// conversation is sent at every turn, and building it as `Value`s cost more than sending it).
#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    #[serde(serialize_with = "messages")]
    messages: &'a [ChatMessage],
    max_tokens: u32,
    #[serde(skip_serializing_if = "<[_]>::is_empty", serialize_with = "tools")]
    tools: &'a [ToolSpec],
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<ResponseFormat<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ResponseFormat<'a> {
    JsonSchema { json_schema: NamedSchema<'a> },
    JsonObject { schema: &'a Value },
}

#[derive(Serialize)]
struct NamedSchema<'a> {
    name: &'static str,
    schema: &'a Value,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

fn body<'a>(request: &'a LlmRequest, mode: JsonMode, base: &str) -> Body<'a> {
    let response_format = request
        .output_schema
        .as_ref()
        .and_then(|schema| match mode {
            JsonMode::JsonSchema => Some(ResponseFormat::JsonSchema {
                json_schema: NamedSchema {
                    name: "output",
                    schema,
                },
            }),
            JsonMode::JsonObjectWithSchema => Some(ResponseFormat::JsonObject { schema }),
            JsonMode::Plain => None,
        });
    let stream = request.spec.stream;
    Body {
        model: &request.spec.model,
        messages: &request.messages,
        max_tokens: request.max_tokens,
        tools: &request.tools,
        temperature: request.temperature.map(|t| t.0),
        response_format,
        stream,
        // OpenAI adds the usage to the last chunk only when asked; other servers may not know
        // the option, so it is sent to OpenAI alone.
        stream_options: (stream && base == OPENAI_BASE).then_some(StreamOptions {
            include_usage: true,
        }),
    }
}

fn messages<S: Serializer>(messages: &&[ChatMessage], out: S) -> Result<S::Ok, S::Error> {
    out.collect_seq(messages.iter().map(Message))
}

fn tools<S: Serializer>(tools: &&[ToolSpec], out: S) -> Result<S::Ok, S::Error> {
    out.collect_seq(tools.iter().map(|tool| Tool {
        kind: "function",
        function: Function {
            name: &tool.name,
            description: &tool.description,
            parameters: &tool.parameters,
        },
    }))
}

#[derive(Serialize)]
struct Tool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: Function<'a>,
}

#[derive(Serialize)]
struct Function<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a Value,
}

/// A message as chat completions write it: a model's turn with the tools it called, and a
/// tool's result answering one call by its id.
struct Message<'a>(&'a ChatMessage);

impl Serialize for Message<'_> {
    fn serialize<S: Serializer>(&self, out: S) -> Result<S::Ok, S::Error> {
        let m = self.0;
        match m.role {
            Role::Tool => {
                let mut map = out.serialize_map(Some(3))?;
                map.serialize_entry("role", "tool")?;
                map.serialize_entry("tool_call_id", &m.tool_call_id)?;
                map.serialize_entry("content", &m.content)?;
                map.end()
            }
            Role::Assistant if !m.tool_calls.is_empty() => {
                let mut map = out.serialize_map(Some(3))?;
                map.serialize_entry("role", "assistant")?;
                // A turn that only calls tools has no text: `null`, as OpenAI writes it.
                let content = (!m.content.is_empty()).then_some(&m.content);
                map.serialize_entry("content", &content)?;
                map.serialize_entry("tool_calls", &ToolCalls(&m.tool_calls))?;
                map.end()
            }
            role => {
                let mut map = out.serialize_map(Some(2))?;
                map.serialize_entry("role", role.as_str())?;
                map.serialize_entry("content", &m.content)?;
                map.end()
            }
        }
    }
}

/// An assistant turn's calls: each with its id, and its arguments as JSON text.
struct ToolCalls<'a>(&'a [ToolCall]);

impl Serialize for ToolCalls<'_> {
    fn serialize<S: Serializer>(&self, out: S) -> Result<S::Ok, S::Error> {
        out.collect_seq(self.0.iter().map(|call| CalledTool {
            id: &call.id,
            kind: "function",
            function: CalledFunction {
                name: &call.name,
                arguments: &call.arguments,
            },
        }))
    }
}

#[derive(Serialize)]
struct CalledTool<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: CalledFunction<'a>,
}

#[derive(Serialize)]
struct CalledFunction<'a> {
    name: &'a str,
    /// JSON text, as chat completions take the arguments (`Value`'s `Display` is that text).
    #[serde(serialize_with = "as_json_text")]
    arguments: &'a Value,
}

fn as_json_text<S: Serializer>(value: &&Value, out: S) -> Result<S::Ok, S::Error> {
    out.collect_str(value)
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
    use serde_json::json;

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

    /// The body as chat completions take it, field by field: a conversation with a tool call
    /// and its result, the tools offered, a temperature, JSON mode, and a stream to OpenAI.
    #[test]
    fn a_request_is_written_as_chat_completions_take_it() {
        let mut request = super::super::tests::request(Some(json!({"type": "object"})));
        request.spec.stream = true;
        request.temperature = Some(stepwise_core::llm::Temperature(0.5));
        request.messages.push(ChatMessage {
            role: Role::Assistant,
            content: String::new(),
            tool_calls: vec![ToolCall {
                id: "c1".into(),
                name: "read_file".into(),
                arguments: json!({"path": "a \"b\".txt"}),
                signature: None,
                malformed: None,
            }],
            tool_call_id: None,
        });
        request
            .messages
            .push(ChatMessage::tool_result("c1", "line\n"));
        request.messages.push(ChatMessage {
            role: Role::Assistant,
            content: "and so".into(),
            tool_calls: vec![ToolCall {
                id: "c2".into(),
                name: "list_files".into(),
                arguments: json!({}),
                signature: None,
                malformed: None,
            }],
            tool_call_id: None,
        });
        request.tools.push(ToolSpec {
            name: "read_file".into(),
            description: "Reads.".into(),
            parameters: json!({"type": "object", "properties": {"path": {"type": "string"}}}),
        });
        let openai = OpenAi { request: &request };
        let wire = openai
            .request(OPENAI_BASE, JsonMode::JsonSchema)
            .expect("written");
        let body: Value = serde_json::from_slice(&wire.body).expect("JSON");
        assert_eq!(
            body,
            json!({
                "model": "tiny",
                "messages": [
                    {"role": "user", "content": "hello"},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "c1", "type": "function",
                         "function": {"name": "read_file", "arguments": "{\"path\":\"a \\\"b\\\".txt\"}"}}]},
                    {"role": "tool", "tool_call_id": "c1", "content": "line\n"},
                    {"role": "assistant", "content": "and so", "tool_calls": [
                        {"id": "c2", "type": "function",
                         "function": {"name": "list_files", "arguments": "{}"}}]},
                ],
                "max_tokens": 10,
                "tools": [{"type": "function", "function": {
                    "name": "read_file", "description": "Reads.",
                    "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}}],
                "temperature": 0.5,
                "response_format": {"type": "json_schema",
                                    "json_schema": {"name": "output", "schema": {"type": "object"}}},
                "stream": true,
                "stream_options": {"include_usage": true},
            })
        );
        // Another server is not sent OpenAI's stream option; a plain request has no JSON mode,
        // no tools when none are offered, and no stream when none is asked for.
        let other = openai
            .request("http://127.0.0.1:1/v1", JsonMode::JsonObjectWithSchema)
            .expect("written");
        let body: Value = serde_json::from_slice(&other.body).expect("JSON");
        assert_eq!(
            body["response_format"],
            json!({"type": "json_object", "schema": {"type": "object"}})
        );
        assert_eq!(body.get("stream_options"), None);
        let plain = super::super::tests::request(None);
        let wire = OpenAi { request: &plain }
            .request(OPENAI_BASE, JsonMode::Plain)
            .expect("written");
        let body: Value = serde_json::from_slice(&wire.body).expect("JSON");
        assert_eq!(
            body,
            json!({"model": "tiny", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 10})
        );
    }
}
