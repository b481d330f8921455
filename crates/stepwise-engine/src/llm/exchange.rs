//! The round trip every HTTP protocol shares, written once: build the request in its first
//! form, send it (retrying a busy or unreachable server, `http::send`), read the reply whole or
//! as a stream within the ceilings of `body.rs` and `stream.rs`, pass a streamed reply's pieces
//! on as progress, and add them up. When the server says it does not take a form of the
//! request, the next form is tried; what a form is, and what a server's error means, is the
//! protocol's to say.

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderValue};
use stepwise_core::llm::{LlmRequest, TokenUsage};

use super::error::{BadReply, ProviderError};
use super::http::{self, Secret};
use super::protocol::{Delta, KeyHeader, Protocol, WireRequest};
use super::stream::{Sse, is_event_stream};
use super::tool_calls::ToolCalls;
use super::{Answer, body};
use crate::progress::ProgressSink;

/// What a provider's round trip works with, besides the request.
pub(crate) struct Caller<'a> {
    pub(crate) client: &'a reqwest::Client,
    pub(crate) secret: &'a Secret,
    /// Where a streamed reply's pieces go as they arrive (to followers, not to the log).
    pub(crate) progress: &'a ProgressSink,
    /// The longest wait for the next bytes of a reply.
    pub(crate) idle: Duration,
}

/// Makes `request` with `protocol`: each of its forms in turn while the server says it does
/// not accept the form, and the reply of the first it accepts.
///
/// `first`, when given, is the request in its first form as [`first_form`] wrote it ahead.
pub(crate) async fn call<P: Protocol>(
    protocol: &P,
    caller: &Caller<'_>,
    request: &LlmRequest,
    mut first: Option<WireRequest>,
) -> Result<Answer, ProviderError> {
    let base = base_url::<P>(request);
    let who = format!("provider `{}` ({base})", request.spec.provider);
    let forms = protocol.forms(base);
    let mut forms = forms.iter().peekable();
    while let Some(&form) = forms.next() {
        let wire = match first.take() {
            Some(wire) => wire,
            None => protocol.request(base, form).map_err(|e| e.from(&who))?,
        };
        let sent = http::send(
            || build::<P>(caller, &wire),
            &who,
            |status, body| protocol.classify_error(form, status, body),
            caller.idle,
        )
        .await;
        match sent {
            Ok((response, attempts)) => {
                return read(protocol, caller, response, &who, attempts).await;
            }
            // Another form may be accepted; a refused key, an unknown model or a server that
            // keeps failing would meet the next form just the same.
            Err(e) if e.form_unsupported() && forms.peek().is_some() => {}
            Err(e) => return Err(e),
        }
    }
    Err(BadReply::new("no request form was accepted").from(&who))
}

/// `request` in the first form `protocol` sends it in, written ahead of the call; `None` if it
/// cannot be written (the call then says why). [`call`] takes it as its first form's: both ask
/// `forms` with the same request and base, and a protocol's forms depend on nothing else.
pub(crate) fn first_form<P: Protocol>(protocol: &P, request: &LlmRequest) -> Option<WireRequest> {
    let base = base_url::<P>(request);
    let form = *protocol.forms(base).first()?;
    protocol.request(base, form).ok()
}

/// Where `request`'s provider is, without a trailing `/`.
fn base_url<P: Protocol>(request: &LlmRequest) -> &str {
    request
        .spec
        .base_url
        .as_deref()
        .unwrap_or(P::DEFAULT_BASE)
        .trim_end_matches('/')
}

fn build<P: Protocol>(caller: &Caller<'_>, wire: &WireRequest) -> reqwest::RequestBuilder {
    let mut builder = caller
        .client
        .post(&wire.url)
        .header(CONTENT_TYPE, "application/json")
        .body(wire.body.clone());
    for &(name, value) in &wire.headers {
        builder = builder.header(name, value);
    }
    let Some(key) = caller.secret.value() else {
        return builder;
    };
    match P::KEY_HEADER {
        KeyHeader::Bearer => builder.bearer_auth(key),
        KeyHeader::Named(name) => match HeaderValue::from_str(key) {
            // Marked sensitive, so that no debug output of the request shows it.
            Ok(mut value) => {
                value.set_sensitive(true);
                builder.header(name, value)
            }
            // Not a valid header value: the builder fails the call without quoting it.
            Err(_) => builder.header(name, key),
        },
    }
}

/// Reads a 2xx response: a stream of events, or one JSON body.
async fn read<P: Protocol>(
    protocol: &P,
    caller: &Caller<'_>,
    response: reqwest::Response,
    who: &str,
    attempts: u32,
) -> Result<Answer, ProviderError> {
    let mut reply = Reply::default();
    if is_event_stream(&response) {
        let mut sse = Sse::new(response, caller.idle);
        while let Some(data) = sse.next(who).await? {
            match protocol.parse_event(&data).map_err(|e| e.from(who))? {
                Some(delta) => reply.add(delta, caller, who)?,
                None => break,
            }
        }
    } else {
        let bytes = body::read_reply(response, caller.idle, who).await?;
        let json: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| BadReply::new(format!("it is not JSON ({e})")).from(who))?;
        let delta = protocol.parse_reply(&json).map_err(|e| e.from(who))?;
        // A whole reply is bounded by the body's ceiling; it is not progress, it is the end.
        reply.text = delta.text;
        for piece in delta.tool_calls {
            reply.tool_calls.add(piece).map_err(|e| e.from(who))?;
        }
        reply.take_rest(delta.finish_reason, delta.input_tokens, delta.output_tokens);
    }
    reply.answer(attempts).map_err(|e| e.from(who))
}

/// A reply added up from its pieces.
#[derive(Default)]
struct Reply {
    text: String,
    tool_calls: ToolCalls,
    finish_reason: Option<String>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
}

impl Reply {
    /// Adds a streamed piece, and passes its text on to followers. A reply longer than
    /// [`body::MAX_REPLY_BYTES`] (its text and its tool calls' arguments) fails the call.
    fn add(&mut self, delta: Delta, caller: &Caller<'_>, who: &str) -> Result<(), ProviderError> {
        let arguments: usize = delta.tool_calls.iter().map(|p| p.arguments.len()).sum();
        if self.text.len() + self.tool_calls.bytes() + delta.text.len() + arguments
            > body::MAX_REPLY_BYTES
        {
            return Err(body::too_large(
                who,
                "the streamed reply",
                body::MAX_REPLY_BYTES as u64,
            ));
        }
        for piece in delta.tool_calls {
            self.tool_calls.add(piece).map_err(|e| e.from(who))?;
        }
        if !delta.text.is_empty() {
            if self.text.len() + delta.text.len() > body::MAX_REPLY_BYTES {
                return Err(body::too_large(
                    who,
                    "the streamed reply",
                    body::MAX_REPLY_BYTES as u64,
                ));
            }
            self.text.push_str(&delta.text);
            caller.progress.send(&delta.text);
        }
        self.take_rest(delta.finish_reason, delta.input_tokens, delta.output_tokens);
        Ok(())
    }

    /// What a piece says besides its text: each given value replaces the one before.
    fn take_rest(&mut self, finish: Option<String>, input: Option<u64>, output: Option<u64>) {
        self.finish_reason = finish.or(self.finish_reason.take());
        self.input_tokens = input.or(self.input_tokens);
        self.output_tokens = output.or(self.output_tokens);
    }

    fn answer(self, attempts: u32) -> Result<Answer, BadReply> {
        Ok(Answer {
            tool_calls: self.tool_calls.finish()?,
            text: self.text,
            finish_reason: self.finish_reason.unwrap_or_else(|| "unknown".into()),
            // Counts are believed only as a pair: one alone says nothing of the cost.
            usage: self.input_tokens.zip(self.output_tokens).map(
                |(input_tokens, output_tokens)| TokenUsage {
                    input_tokens,
                    output_tokens,
                },
            ),
            attempts,
        })
    }
}
