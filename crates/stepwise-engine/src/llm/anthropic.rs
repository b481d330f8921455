//! Anthropic's Messages API. System messages go into `system`; structured output is asked for
//! in words (the reply is validated against the schema).

use serde_json::{Value, json};
use stepwise_core::llm::{LlmRequest, Role, TokenUsage};
use stepwise_core::operation::OperationError;

use super::http::{self, OnServerError};
use super::stream::{Sse, is_event_stream};
use super::{Answer, Caller};

const ANTHROPIC_BASE: &str = "https://api.anthropic.com";
const API_VERSION: &str = "2023-06-01";

pub(super) async fn call(
    caller: &Caller<'_>,
    request: &LlmRequest,
) -> Result<Answer, OperationError> {
    let base = request
        .spec
        .base_url
        .as_deref()
        .unwrap_or(ANTHROPIC_BASE)
        .trim_end_matches('/');
    let url = format!("{base}/v1/messages");
    let who = format!("provider `{}` ({base})", request.spec.provider);
    let mut body = body(request);
    if request.spec.stream {
        body["stream"] = json!(true);
    }
    let (response, attempts) = http::send(
        || {
            let builder = caller
                .client
                .post(&url)
                .header("anthropic-version", API_VERSION)
                .json(&body);
            match caller.secret.value() {
                Some(key) => builder.header("x-api-key", key),
                None => builder,
            }
        },
        &who,
        OnServerError::Retry,
        caller.idle,
    )
    .await?;
    if is_event_stream(&response) {
        return read_stream(Sse::new(response, caller.idle), &who, attempts, caller).await;
    }
    let json = http::json_body(response, &who, caller.idle).await?;
    parse(&json, &who, attempts)
}

/// A streamed reply: `message_start` (input tokens), `content_block_delta` (text),
/// `message_delta` (stop reason, output tokens), `error`.
async fn read_stream(
    mut sse: Sse,
    who: &str,
    attempts: u32,
    caller: &Caller<'_>,
) -> Result<Answer, OperationError> {
    let mut text = String::new();
    let mut finish_reason = String::from("unknown");
    let (mut input, mut output) = (None, None);
    while let Some(data) = sse.next(who).await? {
        let event: Value = serde_json::from_str(&data)
            .map_err(|e| http::malformed(who, &format!("a streamed event is not JSON ({e})")))?;
        match event.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                input = event
                    .pointer("/message/usage/input_tokens")
                    .and_then(Value::as_u64);
            }
            Some("content_block_delta") => {
                if let Some(piece) = event.pointer("/delta/text").and_then(Value::as_str) {
                    caller.append(&mut text, piece, who)?;
                }
            }
            Some("message_delta") => {
                if let Some(reason) = event.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    finish_reason = reason.to_string();
                }
                output = event
                    .pointer("/usage/output_tokens")
                    .and_then(Value::as_u64)
                    .or(output);
            }
            Some("error") => {
                let said = event
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("an error");
                return Err(http::malformed(
                    who,
                    &format!("the stream ended in an error: {said}"),
                ));
            }
            _ => {}
        }
    }
    let usage = input
        .zip(output)
        .map(|(input_tokens, output_tokens)| TokenUsage {
            input_tokens,
            output_tokens,
        });
    Ok(Answer {
        text,
        finish_reason,
        usage,
        attempts,
    })
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
    let messages: Vec<Value> = request
        .messages
        .iter()
        .filter(|m| m.role != Role::System)
        .map(|m| {
            let role = if m.role == Role::Assistant {
                "assistant"
            } else {
                "user"
            };
            json!({ "role": role, "content": m.content })
        })
        .collect();
    let mut body = json!({
        "model": request.spec.model,
        "max_tokens": request.max_tokens,
        "messages": messages,
    });
    if !system.is_empty() {
        body["system"] = json!(system.join("\n\n"));
    }
    if let Some(t) = request.temperature {
        body["temperature"] = json!(t.0.min(1.0));
    }
    body
}

fn parse(json: &Value, who: &str, attempts: u32) -> Result<Answer, OperationError> {
    let content = json
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| http::malformed(who, "no `content` list"))?;
    let text: String = content
        .iter()
        .filter(|block| block.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|block| block.get("text").and_then(Value::as_str))
        .collect();
    let finish_reason = json
        .get("stop_reason")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_string();
    let usage = json.get("usage").and_then(|u| {
        Some(TokenUsage {
            input_tokens: u.get("input_tokens")?.as_u64()?,
            output_tokens: u.get("output_tokens")?.as_u64()?,
        })
    });
    Ok(Answer {
        text,
        finish_reason,
        usage,
        attempts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_blocks_are_joined_and_usage_read() {
        let json = json!({"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], "stop_reason": "end_turn", "usage": {"input_tokens": 3, "output_tokens": 4}});
        let answer = parse(&json, "p", 2).expect("parses");
        assert_eq!(answer.text, "ab");
        assert_eq!(answer.finish_reason, "end_turn");
        assert_eq!(answer.usage.map(|u| u.total()), Some(7));
        assert_eq!(answer.attempts, 2);
    }
}
