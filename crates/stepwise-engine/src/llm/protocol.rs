//! What a provider's protocol is: its wire format and nothing else. Each protocol (OpenAI's
//! chat completions, Anthropic's Messages, Gemini's `generateContent`) says how a request is
//! written, how a whole reply and one streamed event are read, and what an error status and
//! body mean; sending, retrying, reading within bounds, progress and trying the next form of a
//! request live once, in `exchange.rs`.

use serde_json::Value;
use stepwise_core::llm::TokenUsage;

use super::error::{BadReply, Refusal};

/// A provider's wire format.
pub(crate) trait Protocol {
    /// A form the request can take when servers disagree on what they accept (a JSON mode,
    /// say). A protocol with one form uses `()`.
    type Form: Copy;

    /// The base URL when the settings name none.
    const DEFAULT_BASE: &'static str;

    /// Where the key goes.
    const KEY_HEADER: KeyHeader;

    /// The forms to try, in order: each next one only when the server answered that it does
    /// not accept the one before ([`Refusal::FormUnsupported`]), for a server at `base`.
    /// Never empty.
    fn forms(&self, base: &str) -> Vec<Self::Form>;

    /// The request in `form`, sent to `base` (the settings' `base_url` without a trailing
    /// `/`), without the key.
    fn request(&self, base: &str, form: Self::Form) -> Result<WireRequest, BadReply>;

    /// A whole (not streamed) reply.
    fn parse_reply(&self, reply: &Value) -> Result<Delta, BadReply>;

    /// One server-sent event's data: what it adds to the reply, or `None` when it marks the
    /// end of the stream.
    fn parse_event(&self, data: &str) -> Result<Option<Delta>, BadReply>;

    /// What an error status and (the start of) its body mean for a request in `form`.
    fn classify_error(&self, form: Self::Form, status: u16, body: &str) -> Refusal {
        let _ = (form, body);
        Refusal::of_status(status)
    }
}

/// A request as it goes on the wire, the key apart.
pub(crate) struct WireRequest {
    pub(crate) url: String,
    pub(crate) headers: Vec<(&'static str, &'static str)>,
    /// The body, as JSON text.
    pub(crate) body: Vec<u8>,
}

/// `body` as the JSON text of a request.
pub(crate) fn json_text(body: &impl serde::Serialize) -> Result<Vec<u8>, BadReply> {
    serde_json::to_vec(body)
        .map_err(|e| BadReply::new(format!("the request could not be written as JSON ({e})")))
}

/// How a protocol sends the key.
#[derive(Clone, Copy)]
pub(crate) enum KeyHeader {
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// The key alone, in this header.
    Named(&'static str),
}

/// What a reply, or one event of a streamed reply, says. A streamed reply is the sum of its
/// events: their texts joined, their tool calls put together, and the last finish reason and
/// token counts given.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Delta {
    pub(crate) text: String,
    pub(crate) finish_reason: Option<String>,
    pub(crate) input_tokens: Option<u64>,
    pub(crate) output_tokens: Option<u64>,
    pub(crate) tool_calls: Vec<ToolCallPiece>,
}

/// A tool call, or a piece of one, as a reply or one streamed event gives it (see
/// `tool_calls.rs`, which puts them together).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ToolCallPiece {
    /// Which call of the reply it belongs to, where the protocol numbers them (OpenAI,
    /// Anthropic); `None`: a whole call of its own (Gemini).
    pub(crate) index: Option<u64>,
    pub(crate) id: Option<String>,
    pub(crate) name: Option<String>,
    /// More of the arguments' JSON text.
    pub(crate) arguments: String,
    /// An opaque token to send back with the call (Gemini's thought signature).
    pub(crate) signature: Option<String>,
}

impl Delta {
    pub(crate) fn with_usage(mut self, usage: Option<TokenUsage>) -> Delta {
        if let Some(usage) = usage {
            self.input_tokens = Some(usage.input_tokens);
            self.output_tokens = Some(usage.output_tokens);
        }
        self
    }
}

/// Reads `data` (one event) as JSON.
pub(crate) fn event_json(data: &str, what: &str) -> Result<Value, BadReply> {
    serde_json::from_str(data).map_err(|e| BadReply::new(format!("{what} is not JSON ({e})")))
}

/// A stream's own error event (OpenAI and Gemini send `{"error": ...}`).
pub(crate) fn stream_error(said: impl std::fmt::Display) -> BadReply {
    BadReply::new(format!("the stream ended in an error: {said}"))
}

/// The text at `pointer` in an error body, when the body is JSON and has it.
pub(crate) fn error_field(body: &str, pointer: &str) -> Option<String> {
    let body: Value = serde_json::from_str(body).ok()?;
    body.pointer(pointer)?.as_str().map(str::to_string)
}
