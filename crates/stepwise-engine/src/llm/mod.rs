//! Model calls: the `llm_call` operation kind's executor, over plain HTTP (`reqwest`, no
//! vendor SDKs). A provider's protocol (`protocol::Protocol`) is its wire format only:
//! `openai` speaks OpenAI's chat completions (llama.cpp, Ollama, vLLM, LM Studio, OpenAI),
//! `anthropic` the Messages API, `gemini` `generateContent`. What they share is written once:
//! `exchange` makes the round trip (forms of a request tried in turn, the reply read whole or
//! streamed, progress), `http` sends with retries (backoff and jitter on a busy server, a
//! failing one and a lost connection, honouring `Retry-After`) and holds the key, `body` and
//! `stream` read within ceilings of size and silence, `client` follows redirects only within
//! the configured origin. Every failure is a `ProviderError` (`error`), branched on by type and
//! worded once, with the key never in it. `simulated` makes up deterministic replies for demos
//! and tests.
//!
//! Time is bounded twice: a call ends after its provider's `timeout_s` (10 minutes by default,
//! or the step's `timeout` when shorter), and a reply that stays silent for its provider's
//! `idle_timeout_s` (60 s by default) fails it.
//!
//! A call has no effect on the world, so after a crash it is simply made again (the reply says
//! `after_crash`, since its cost may have been paid twice). It is spent money, though, so it is
//! sent only once its request is durable; its first request on the wire is written while that
//! commit is under way (`Executor::prepares_early`).

mod anthropic;
mod body;
mod client;
mod error;
mod exchange;
mod gemini;
mod http;
mod openai;
mod protocol;
mod simulated;
mod stream;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tool_call_tests;
mod tool_calls;

use std::time::{Duration, Instant};

use stepwise_core::llm::{LlmReply, LlmRequest, ProviderKind, TokenUsage};
use stepwise_core::operation::{
    OperationError, OperationErrorKind, OperationRequest, OperationResult,
};

use crate::exec::{AfterCrash, BoxFuture, Executor, OpContext, Outcome};
use crate::progress::ProgressSink;
use anthropic::Anthropic;
use error::ProviderError;
use exchange::Caller;
use gemini::Gemini;
use http::Secret;
use openai::OpenAi;
use protocol::WireRequest;

/// How long a call may take in all, retries included, unless its provider's `timeout_s` says
/// otherwise; a step's shorter `timeout` wins.
const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a reply may stay silent (no headers, no next bytes) unless its provider's
/// `idle_timeout_s` says otherwise.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// What one provider round trip produced, before cost and timing are added.
pub(crate) struct Answer {
    pub(crate) text: String,
    /// The tools the model called.
    pub(crate) tool_calls: Vec<stepwise_core::llm::ToolCall>,
    pub(crate) finish_reason: String,
    /// `None` when the provider reported no token counts.
    pub(crate) usage: Option<TokenUsage>,
    pub(crate) attempts: u32,
}

/// The executor of model calls.
pub(crate) struct LlmCall {
    /// The reason when no client could be set up: then every call fails with it.
    client: Result<reqwest::Client, String>,
}

impl LlmCall {
    pub(crate) fn new() -> LlmCall {
        LlmCall {
            client: client::client(),
        }
    }
}

impl Executor for LlmCall {
    fn perform(&self, ctx: OpContext, request: OperationRequest) -> BoxFuture<'static, Outcome> {
        let client = self.client.clone();
        Box::pin(async move {
            let OperationRequest::LlmCall(request) = request else {
                return Err(OperationError::new(
                    OperationErrorKind::Io,
                    "internal error: a request that is not llm_call was given to its executor",
                ));
            };
            let client = client.map_err(|reason| {
                ProviderError::NoClient { reason }.into_operation_error(str::to_string)
            })?;
            let mut cancel = ctx.cancel.clone();
            let (limit, why) = call_limit(&request);
            let first = first_form(&request);
            // Nothing is sent before the request is durable; the time a call may take starts
            // then (a commit may wait out a database server's restart).
            if !ctx.recorded.clone().wait().await {
                return Err(OperationError::new(
                    OperationErrorKind::Cancelled,
                    format!(
                        "the call to model `{}` was not made: its request could not be recorded",
                        request.model
                    ),
                ));
            }
            let progress = ProgressSink::create(crate::progress::progress_path(
                &ctx.lock_dir,
                &ctx.run_id,
                ctx.op,
            ));
            let call = call(&client, &request, first, ctx.recovering, &progress);
            // A call cancelled before it starts is not sent.
            let outcome = tokio::select! {
                biased;
                () = cancelled(&mut cancel) => Err(ProviderError::Cancelled { model: request.model.clone() }
                    .into_operation_error(str::to_string)),
                outcome = tokio::time::timeout(limit, call) => outcome.unwrap_or_else(|_| {
                    Err(ProviderError::TookTooLong { model: request.model.clone(), limit, why }
                        .into_operation_error(str::to_string))
                }),
            };
            progress.finish().await;
            outcome
        })
    }

    fn prepares_early(&self) -> bool {
        true
    }

    fn after_crash(&self) -> AfterCrash {
        AfterCrash::Repeat
    }
}

/// The request as its provider's protocol first sends it, written ahead (`None` for the
/// simulated provider, or when it cannot be written: then the call finds out again and says
/// why).
fn first_form(request: &LlmRequest) -> Option<WireRequest> {
    match request.spec.kind {
        ProviderKind::Openai => exchange::first_form(&OpenAi { request }, request),
        ProviderKind::Anthropic => exchange::first_form(&Anthropic { request }, request),
        ProviderKind::Gemini => exchange::first_form(&Gemini { request }, request),
        ProviderKind::Simulated => None,
    }
}

/// How long a call may take in all, and why, in words for the error that says it took longer.
fn call_limit(request: &LlmRequest) -> (Duration, String) {
    let provider = &request.spec.provider;
    let (ceiling, why) = match request.spec.timeout_s {
        Some(s) => (
            Duration::from_secs(u64::from(s)),
            format!(", the `timeout_s` of provider `{provider}`"),
        ),
        None => (
            DEFAULT_CALL_TIMEOUT,
            format!(
                ", the most a call may take (set `timeout_s` on provider `{provider}` in the settings to change it)"
            ),
        ),
    };
    match request.timeout_ms.map(Duration::from_millis) {
        Some(step) if step <= ceiling => (step, ", the step's `timeout`".to_string()),
        _ => (ceiling, why),
    }
}

/// Makes the call with the provider the request names. This is the edge where a
/// `ProviderError` becomes the recorded error, with the key taken out of its words.
async fn call(
    client: &reqwest::Client,
    request: &LlmRequest,
    first: Option<WireRequest>,
    after_crash: bool,
    progress: &ProgressSink,
) -> Outcome {
    let secret = Secret::from_env(request.spec.api_key_env.as_deref())
        .map_err(|e| e.into_operation_error(str::to_string))?;
    reply(client, request, first, after_crash, progress, &secret)
        .await
        .map_err(|e| e.into_operation_error(|text| secret.redact(text)))
}

async fn reply(
    client: &reqwest::Client,
    request: &LlmRequest,
    first: Option<WireRequest>,
    after_crash: bool,
    progress: &ProgressSink,
    secret: &Secret,
) -> Result<OperationResult, ProviderError> {
    let started = Instant::now();
    let caller = Caller {
        client,
        secret,
        progress,
        idle: request
            .spec
            .idle_timeout_s
            .map_or(DEFAULT_IDLE_TIMEOUT, |s| Duration::from_secs(u64::from(s))),
    };
    let answer = match request.spec.kind {
        ProviderKind::Openai => {
            exchange::call(&OpenAi { request }, &caller, request, first).await?
        }
        ProviderKind::Anthropic => {
            exchange::call(&Anthropic { request }, &caller, request, first).await?
        }
        ProviderKind::Gemini => {
            exchange::call(&Gemini { request }, &caller, request, first).await?
        }
        ProviderKind::Simulated => {
            let answer = simulated::reply(request);
            progress.send(&answer.text);
            answer
        }
    };
    // A server's token counts are believed only within what a call can use: past that they
    // would poison every sum made of them (cost, budget, the runs listing).
    if let Some(problem) = answer.usage.as_ref().and_then(TokenUsage::implausible) {
        return Err(ProviderError::Malformed {
            who: format!("provider `{}`", request.spec.provider),
            what: problem,
        });
    }
    let (usage, usage_estimated) = match answer.usage {
        Some(usage) => (usage, false),
        None => (estimated_usage(request, &answer), true),
    };
    let cost_micro_usd = request
        .spec
        .price
        .cost_micro_usd(usage.input_tokens, usage.output_tokens);
    Ok(OperationResult::LlmReplied(Box::new(LlmReply {
        text: answer.text,
        finish_reason: answer.finish_reason,
        usage,
        latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        cost_micro_usd,
        simulated: request.spec.kind == ProviderKind::Simulated,
        after_crash,
        attempts: answer.attempts,
        usage_estimated,
        tool_calls: answer.tool_calls,
    })))
}

/// Token counts from text lengths, for a provider that reports none.
fn estimated_usage(request: &LlmRequest, answer: &Answer) -> TokenUsage {
    let calls: usize = answer
        .tool_calls
        .iter()
        .map(|c| c.name.len() + c.arguments.to_string().len())
        .sum();
    TokenUsage {
        input_tokens: stepwise_core::llm::estimate(request).input_tokens,
        output_tokens: ((answer.text.len() + calls) as u64).div_ceil(3),
    }
}

async fn cancelled(cancel: &mut tokio::sync::watch::Receiver<bool>) {
    loop {
        if *cancel.borrow_and_update() {
            return;
        }
        if cancel.changed().await.is_err() {
            return;
        }
    }
}
