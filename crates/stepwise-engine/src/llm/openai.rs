//! OpenAI's chat completions, as OpenAI, llama.cpp, Ollama, vLLM and LM Studio serve them.
//!
//! Structured output is asked for in the server's native JSON mode. Servers disagree on its
//! form: OpenAI wants `{"type": "json_schema", ...}`, llama.cpp's server wants
//! `{"type": "json_object", "schema": ...}` (and fails with HTTP 500 on the other). Each form
//! is tried once, the likelier first, then the request is sent without one (the reply is
//! validated against the schema either way).

use serde_json::{Value, json};
use stepwise_core::llm::{LlmRequest, Role, TokenUsage};
use stepwise_core::operation::{OperationError, OperationErrorKind};

use super::http::{self, OnServerError};
use super::stream::{Sse, is_event_stream};
use super::{Answer, Caller};

const OPENAI_BASE: &str = "https://api.openai.com/v1";

/// How a request asks for JSON.
#[derive(Clone, Copy, PartialEq, Eq)]
enum JsonMode {
    /// OpenAI's structured outputs.
    JsonSchema,
    /// llama.cpp's JSON mode with a schema.
    JsonObjectWithSchema,
    /// No JSON mode: the schema is in the conversation only.
    Plain,
}

pub(super) async fn call(
    caller: &Caller<'_>,
    request: &LlmRequest,
) -> Result<Answer, OperationError> {
    let base = request
        .spec
        .base_url
        .as_deref()
        .unwrap_or(OPENAI_BASE)
        .trim_end_matches('/');
    let url = format!("{base}/chat/completions");
    let who = format!("provider `{}` ({base})", request.spec.provider);
    let modes: &[JsonMode] = match (&request.output_schema, base == OPENAI_BASE) {
        (None, _) => &[JsonMode::Plain],
        (Some(_), true) => &[
            JsonMode::JsonSchema,
            JsonMode::JsonObjectWithSchema,
            JsonMode::Plain,
        ],
        (Some(_), false) => &[
            JsonMode::JsonObjectWithSchema,
            JsonMode::JsonSchema,
            JsonMode::Plain,
        ],
    };
    let mut last_error = None;
    for (i, &mode) in modes.iter().enumerate() {
        let mut body = body(request, mode);
        if request.spec.stream {
            body["stream"] = json!(true);
            // OpenAI adds the usage to the last chunk only when asked; other servers may not
            // know the option, so it is sent to OpenAI alone.
            if base == OPENAI_BASE {
                body["stream_options"] = json!({ "include_usage": true });
            }
        }
        let trying_forms = i + 1 < modes.len();
        let send = http::send(
            || {
                let builder = caller.client.post(&url).json(&body);
                match caller.secret.value() {
                    Some(key) => builder.bearer_auth(key),
                    None => builder,
                }
            },
            &who,
            if trying_forms {
                OnServerError::GiveUp
            } else {
                OnServerError::Retry
            },
            caller.idle,
        )
        .await;
        match send {
            Ok((response, attempts)) if is_event_stream(&response) => {
                return read_stream(Sse::new(response, caller.idle), &who, attempts, caller).await;
            }
            Ok((response, attempts)) => {
                let json = http::json_body(response, &who, caller.idle).await?;
                return parse(&json, &who, attempts);
            }
            // A refused key, an unknown model, a busy server: another form will not help.
            Err(e) if trying_forms && form_may_be_the_problem(&e) => last_error = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_error.unwrap_or_else(|| http::malformed(&who, "no request form was accepted")))
}

/// A failure that another form of the request might not meet: a bad request, or a server
/// error (llama.cpp fails with 500 on a JSON mode it does not know).
fn form_may_be_the_problem(error: &OperationError) -> bool {
    let m = &error.message;
    (error.kind == OperationErrorKind::ProviderRefused
        && m.contains("(HTTP 4")
        && !m.contains("API key")
        && !m.contains("HTTP 404"))
        || (error.kind == OperationErrorKind::Provider && m.contains("failed with HTTP 5"))
}

fn body(request: &LlmRequest, mode: JsonMode) -> Value {
    let messages: Vec<Value> = request
        .messages
        .iter()
        .map(|m| json!({ "role": role(m.role), "content": m.content }))
        .collect();
    let mut body = json!({
        "model": request.spec.model,
        "messages": messages,
        "max_tokens": request.max_tokens,
    });
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

fn role(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

fn parse(json: &Value, who: &str, attempts: u32) -> Result<Answer, OperationError> {
    let choice = json
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or_else(|| http::malformed(who, "no `choices[0]`"))?;
    let text = match choice.pointer("/message/content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => String::new(),
        Some(_) => return Err(http::malformed(who, "`message.content` is not text")),
    };
    let finish_reason = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_string();
    Ok(Answer {
        text,
        finish_reason,
        usage: usage(json.get("usage")),
        attempts,
    })
}

/// A streamed reply: `choices[0].delta.content` pieces, the finish reason, and the usage
/// (in the last chunk, when the server reports it), until `[DONE]`.
async fn read_stream(
    mut sse: Sse,
    who: &str,
    attempts: u32,
    caller: &Caller<'_>,
) -> Result<Answer, OperationError> {
    let mut text = String::new();
    let mut finish_reason = String::from("unknown");
    let mut usage_seen = None;
    while let Some(data) = sse.next(who).await? {
        if data.trim() == "[DONE]" {
            break;
        }
        let chunk: Value = serde_json::from_str(&data)
            .map_err(|e| http::malformed(who, &format!("a streamed chunk is not JSON ({e})")))?;
        if let Some(error) = chunk.get("error") {
            return Err(http::malformed(
                who,
                &format!("the stream ended in an error: {error}"),
            ));
        }
        if let Some(choice) = chunk.get("choices").and_then(|c| c.get(0)) {
            if let Some(piece) = choice.pointer("/delta/content").and_then(Value::as_str) {
                caller.append(&mut text, piece, who)?;
            }
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                finish_reason = reason.to_string();
            }
        }
        if let Some(u) = usage(chunk.get("usage")) {
            usage_seen = Some(u);
        }
    }
    Ok(Answer {
        text,
        finish_reason,
        usage: usage_seen,
        attempts,
    })
}

/// `usage` as OpenAI reports it.
pub(super) fn usage(usage: Option<&Value>) -> Option<TokenUsage> {
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
        let answer = parse(&json, "p", 1).expect("parses");
        assert_eq!(answer.text, "hi");
        assert_eq!(answer.finish_reason, "stop");
        assert_eq!(answer.usage.map(|u| u.total()), Some(9));
        assert!(parse(&json!({"oops": 1}), "p", 1).is_err());
    }
}
