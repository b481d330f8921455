//! Google's Gemini `generateContent`. The key goes in a header (never in the URL, where it
//! could end up in an error message); structured output uses the JSON response type, with the
//! schema in the instructions.

use serde_json::{Value, json};
use stepwise_core::llm::{ChatMessage, LlmRequest, Role, TokenUsage};

use super::error::{BadReply, Refusal};
use super::protocol::{
    Delta, KeyHeader, Protocol, ToolCallPiece, WireRequest, event_json, json_text, stream_error,
};
use super::tool_calls::arguments_text;

/// Gemini's `generateContent` for one request.
pub(crate) struct Gemini<'a> {
    pub(crate) request: &'a LlmRequest,
}

impl Protocol for Gemini<'_> {
    type Form = ();
    const DEFAULT_BASE: &'static str = "https://generativelanguage.googleapis.com/v1beta";
    const KEY_HEADER: KeyHeader = KeyHeader::Named("x-goog-api-key");

    fn forms(&self, _base: &str) -> Vec<()> {
        vec![()]
    }

    fn request(&self, base: &str, (): ()) -> Result<WireRequest, BadReply> {
        let model = &self.request.spec.model;
        let url = if self.request.spec.stream {
            format!("{base}/models/{model}:streamGenerateContent?alt=sse")
        } else {
            format!("{base}/models/{model}:generateContent")
        };
        Ok(WireRequest {
            url,
            headers: Vec::new(),
            body: json_text(&body(self.request))?,
        })
    }

    fn parse_reply(&self, reply: &Value) -> Result<Delta, BadReply> {
        let candidate = reply
            .get("candidates")
            .and_then(|c| c.get(0))
            .ok_or_else(|| BadReply::new("no `candidates[0]`"))?;
        let parts = candidate
            .pointer("/content/parts")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let text: String = parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect();
        // Gemini gives each call whole, without an id (one is made up when the reply ends),
        // and for thinking models with a signature beside it, which must go back with it.
        let tool_calls = parts
            .iter()
            .filter_map(|p| Some((p.get("functionCall")?, p.get("thoughtSignature"))))
            .map(|(call, signature)| ToolCallPiece {
                index: None,
                id: call.get("id").and_then(Value::as_str).map(str::to_string),
                name: call.get("name").and_then(Value::as_str).map(str::to_string),
                arguments: arguments_text(call.get("args")),
                signature: signature.and_then(Value::as_str).map(str::to_string),
            })
            .collect();
        let finish_reason = candidate
            .get("finishReason")
            .and_then(Value::as_str)
            .map(str::to_string);
        Ok(Delta {
            text,
            finish_reason,
            tool_calls,
            ..Delta::default()
        }
        .with_usage(usage(reply)))
    }

    /// A streamed reply: each event a partial response; the last carries the finish reason
    /// and the usage.
    fn parse_event(&self, data: &str) -> Result<Option<Delta>, BadReply> {
        let chunk = event_json(data, "a streamed chunk")?;
        if let Some(error) = chunk.get("error") {
            return Err(stream_error(error));
        }
        // A chunk may carry only the usage (no candidate).
        if chunk.get("candidates").is_none() {
            return Ok(Some(Delta::default().with_usage(usage(&chunk))));
        }
        self.parse_reply(&chunk).map(Some)
    }

    /// Google's errors carry a status name and, for a bad key, the reason `API_KEY_INVALID`
    /// with HTTP 400, which would otherwise read as a bad request.
    fn classify_error(&self, (): (), status: u16, body: &str) -> Refusal {
        let said: Option<Value> = serde_json::from_str(body).ok();
        let details = said
            .as_ref()
            .and_then(|b| b.pointer("/error/details"))
            .and_then(Value::as_array);
        let key_invalid = details.is_some_and(|details| {
            details
                .iter()
                .any(|d| d.get("reason").and_then(Value::as_str) == Some("API_KEY_INVALID"))
        });
        if key_invalid {
            return Refusal::Auth;
        }
        let status_name = said
            .as_ref()
            .and_then(|b| b.pointer("/error/status"))
            .and_then(Value::as_str);
        match status_name {
            Some("UNAUTHENTICATED" | "PERMISSION_DENIED") => Refusal::Auth,
            Some("NOT_FOUND") => Refusal::UnknownModel,
            Some("RESOURCE_EXHAUSTED") => Refusal::Busy,
            _ => Refusal::of_status(status),
        }
    }
}

fn body(request: &LlmRequest) -> Value {
    let mut system: Vec<String> = request
        .messages
        .iter()
        .filter(|m| m.role == Role::System)
        .map(|m| m.content.clone())
        .collect();
    let mut config = json!({ "maxOutputTokens": request.max_tokens });
    if let Some(t) = request.temperature {
        config["temperature"] = json!(t.0);
    }
    if let Some(schema) = &request.output_schema {
        // Gemini refuses JSON mode together with function calling: with tools, the schema is
        // in the instructions alone (the reply is validated either way).
        if request.tools.is_empty() {
            config["responseMimeType"] = json!("application/json");
        }
        system.push(format!(
            "Reply with only a JSON value that matches this JSON Schema:\n{schema}"
        ));
    }
    let mut body = json!({ "contents": contents(&request.messages), "generationConfig": config });
    if !request.tools.is_empty() {
        let declarations: Vec<Value> = request
            .tools
            .iter()
            .map(|t| json!({ "name": t.name, "description": t.description, "parameters": t.parameters }))
            .collect();
        body["tools"] = json!([{ "functionDeclarations": declarations }]);
    }
    if !system.is_empty() {
        body["systemInstruction"] = json!({ "parts": [{ "text": system.join("\n\n") }] });
    }
    body
}

/// The conversation as `generateContent` takes it: the model's turns with the functions it
/// called (`functionCall` parts, each with its signature when it had one), and the tools'
/// results as `functionResponse` parts of the one user turn that follows (Gemini wants as many
/// responses in it as the turn made calls), each named by the function it answers: Gemini
/// matches them by name, and ids are made up per reply, so only the turn just before is
/// looked in.
fn contents(conversation: &[ChatMessage]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut last_calls: &[stepwise_core::llm::ToolCall] = &[];
    let mut results_open = false;
    for m in conversation {
        match m.role {
            Role::System => continue,
            Role::Assistant => {
                let mut parts = Vec::new();
                if !m.content.is_empty() || m.tool_calls.is_empty() {
                    parts.push(json!({ "text": m.content }));
                }
                for call in &m.tool_calls {
                    let mut part =
                        json!({ "functionCall": { "name": call.name, "args": call.arguments } });
                    if let Some(signature) = &call.signature {
                        part["thoughtSignature"] = json!(signature);
                    }
                    parts.push(part);
                }
                last_calls = &m.tool_calls;
                out.push(json!({ "role": "model", "parts": parts }));
            }
            Role::Tool => {
                let name = last_calls
                    .iter()
                    .find(|c| Some(c.id.as_str()) == m.tool_call_id.as_deref())
                    .map(|c| c.name.clone())
                    .unwrap_or_default();
                let part = json!({ "functionResponse": { "name": name, "response": { "content": m.content } } });
                match out.last_mut().and_then(|last| last["parts"].as_array_mut()) {
                    Some(parts) if results_open => parts.push(part),
                    _ => out.push(json!({ "role": "user", "parts": [part] })),
                }
                results_open = true;
                continue;
            }
            Role::User => out.push(json!({ "role": "user", "parts": [{ "text": m.content }] })),
        }
        results_open = false;
    }
    out
}

/// `usageMetadata` as Gemini reports it.
fn usage(json: &Value) -> Option<TokenUsage> {
    let u = json.get("usageMetadata")?;
    Some(TokenUsage {
        input_tokens: u.get("promptTokenCount")?.as_u64()?,
        output_tokens: u
            .get("candidatesTokenCount")
            .and_then(Value::as_u64)
            .unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_joined_and_usage_read() {
        let json = json!({"candidates": [{"content": {"parts": [{"text": "x"}, {"text": "y"}]}, "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2}});
        let request = super::super::tests::request(None);
        let reply = Gemini { request: &request }
            .parse_reply(&json)
            .expect("parses");
        assert_eq!(reply.text, "xy");
        assert_eq!(reply.finish_reason.as_deref(), Some("STOP"));
        assert_eq!(
            (reply.input_tokens, reply.output_tokens),
            (Some(5), Some(2))
        );
    }
}
