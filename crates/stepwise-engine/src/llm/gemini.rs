//! Google's Gemini `generateContent`. The key goes in a header (never in the URL, where it
//! could end up in an error message); structured output uses the JSON response type, with the
//! schema in the instructions.

use serde_json::{Value, json};
use stepwise_core::llm::{LlmRequest, Role, TokenUsage};
use stepwise_core::operation::OperationError;

use super::http::{self, OnServerError};
use super::stream::{Sse, is_event_stream};
use super::{Answer, Caller};

const GEMINI_BASE: &str = "https://generativelanguage.googleapis.com/v1beta";

pub(super) async fn call(
    caller: &Caller<'_>,
    request: &LlmRequest,
) -> Result<Answer, OperationError> {
    let base = request
        .spec
        .base_url
        .as_deref()
        .unwrap_or(GEMINI_BASE)
        .trim_end_matches('/');
    let url = if request.spec.stream {
        format!(
            "{base}/models/{}:streamGenerateContent?alt=sse",
            request.spec.model
        )
    } else {
        format!("{base}/models/{}:generateContent", request.spec.model)
    };
    let who = format!("provider `{}` ({base})", request.spec.provider);
    let body = body(request);
    let (response, attempts) = http::send(
        || {
            let builder = caller.client.post(&url).json(&body);
            match caller.secret.value() {
                Some(key) => builder.header("x-goog-api-key", key),
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

/// A streamed reply: each event a partial response; the last carries the finish reason and
/// the usage.
async fn read_stream(
    mut sse: Sse,
    who: &str,
    attempts: u32,
    caller: &Caller<'_>,
) -> Result<Answer, OperationError> {
    let mut answer = Answer {
        text: String::new(),
        finish_reason: "unknown".into(),
        usage: None,
        attempts,
    };
    while let Some(data) = sse.next(who).await? {
        let chunk: Value = serde_json::from_str(&data)
            .map_err(|e| http::malformed(who, &format!("a streamed chunk is not JSON ({e})")))?;
        if let Some(error) = chunk.get("error") {
            return Err(http::malformed(
                who,
                &format!("the stream ended in an error: {error}"),
            ));
        }
        // A chunk may carry only the usage (no candidate).
        if chunk.get("candidates").is_none() {
            answer.usage = usage(&chunk).or(answer.usage);
            continue;
        }
        let part = parse(&chunk, who, attempts)?;
        caller.append(&mut answer.text, &part.text, who)?;
        if part.finish_reason != "unknown" {
            answer.finish_reason = part.finish_reason;
        }
        answer.usage = part.usage.or(answer.usage);
    }
    Ok(answer)
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
        config["responseMimeType"] = json!("application/json");
        system.push(format!(
            "Reply with only a JSON value that matches this JSON Schema:\n{schema}"
        ));
    }
    let contents: Vec<Value> = request
        .messages
        .iter()
        .filter(|m| m.role != Role::System)
        .map(|m| {
            let role = if m.role == Role::Assistant {
                "model"
            } else {
                "user"
            };
            json!({ "role": role, "parts": [{ "text": m.content }] })
        })
        .collect();
    let mut body = json!({ "contents": contents, "generationConfig": config });
    if !system.is_empty() {
        body["systemInstruction"] = json!({ "parts": [{ "text": system.join("\n\n") }] });
    }
    body
}

fn parse(json: &Value, who: &str, attempts: u32) -> Result<Answer, OperationError> {
    let candidate = json
        .get("candidates")
        .and_then(|c| c.get(0))
        .ok_or_else(|| http::malformed(who, "no `candidates[0]`"))?;
    let text: String = candidate
        .pointer("/content/parts")
        .and_then(Value::as_array)
        .map(|parts| {
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    let finish_reason = candidate
        .get("finishReason")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_string();
    Ok(Answer {
        text,
        finish_reason,
        usage: usage(json),
        attempts,
    })
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
        let answer = parse(&json, "p", 1).expect("parses");
        assert_eq!(answer.text, "xy");
        assert_eq!(answer.finish_reason, "STOP");
        assert_eq!(answer.usage.map(|u| u.total()), Some(7));
    }
}
