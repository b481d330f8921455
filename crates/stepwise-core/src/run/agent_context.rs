//! Fitting an agent's conversation in its model's context (`context_tokens`, counted as
//! `estimate` counts): when the next request would not leave room for the reply, the oldest
//! tool results are shortened, one after another, each to its first bytes and a note saying
//! so, never dropped. Pure, and applied to a request that is then recorded, so that what was
//! shortened stays shortened in every later turn and replay rebuilds it exactly.

use crate::llm::{DEFAULT_CONTEXT_TOKENS, LlmRequest, Role, estimate, message_tokens};

/// What a shortened result keeps of its start, in bytes.
const KEPT_BYTES: usize = 512;

/// Shortens the oldest tool results of `request` until it fits its model's context with room
/// for the reply (or none is left to shorten).
pub(super) fn fit_context(request: &mut LlmRequest) {
    let context = u64::from(
        request
            .spec
            .context_tokens
            .unwrap_or(DEFAULT_CONTEXT_TOKENS),
    );
    let room = context.saturating_sub(u64::from(request.max_tokens));
    let mut tokens = estimate(request).input_tokens;
    for message in &mut request.messages {
        if tokens <= room {
            return;
        }
        if message.role != Role::Tool || message.content.len() <= KEPT_BYTES * 2 {
            continue;
        }
        let before = message_tokens(message);
        message.content = shortened(&message.content);
        tokens = tokens
            .saturating_sub(before)
            .saturating_add(message_tokens(message));
    }
}

/// The first [`KEPT_BYTES`] of `text` (cut at a character), with a note.
fn shortened(text: &str) -> String {
    let mut end = KEPT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}\n[shortened to fit the model's context: the first {end} of {} bytes of this result; call the tool again to see the rest]",
        &text[..end],
        text.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{ChatMessage, ModelSpec, Price, ProviderKind};

    fn request(results: &[usize], context_tokens: u32) -> LlmRequest {
        let mut messages = vec![ChatMessage::text(Role::User, "Do it.")];
        for (i, &len) in results.iter().enumerate() {
            messages.push(ChatMessage::tool_result(
                format!("c{i}"),
                "é".repeat(len / 2),
            ));
        }
        LlmRequest {
            model: "m".into(),
            spec: ModelSpec {
                provider: "p".into(),
                kind: ProviderKind::Openai,
                base_url: None,
                model: "m".into(),
                api_key_env: None,
                price: Price::default(),
                stream: true,
                timeout_s: None,
                idle_timeout_s: None,
                context_tokens: Some(context_tokens),
            },
            messages,
            temperature: None,
            max_tokens: 1000,
            output_schema: None,
            timeout_ms: None,
            tools: Vec::new(),
        }
    }

    #[test]
    fn the_oldest_results_are_shortened_with_a_note_until_the_request_fits() {
        // Three results of ~3000 tokens each; room for about two of them.
        let mut fitted = request(&[9000, 9000, 9000], 8000);
        fit_context(&mut fitted);
        let contents: Vec<&str> = fitted.messages[1..]
            .iter()
            .map(|m| m.content.as_str())
            .collect();
        assert!(
            contents[0]
                .contains("[shortened to fit the model's context: the first 512 of 9000 bytes")
        );
        assert!(!contents[1].contains("[shortened") && !contents[2].contains("[shortened"));
        assert!(estimate(&fitted).input_tokens <= 7000);
        // Shortened again, it is the same: nothing further to take.
        let again = {
            let mut again = fitted.clone();
            fit_context(&mut again);
            again
        };
        assert_eq!(again.messages, fitted.messages);
        // A request that fits is left alone; the user's words are never shortened.
        let mut small = request(&[100], 8000);
        let before = small.messages.clone();
        fit_context(&mut small);
        assert_eq!(small.messages, before);
        let mut tight = request(&[9000, 9000], 1500);
        fit_context(&mut tight);
        assert_eq!(tight.messages[0].content, "Do it.");
        assert!(
            tight.messages[2].content.contains("[shortened"),
            "the newest too, when it must"
        );
    }
}
