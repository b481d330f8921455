//! Model calls: the `llm_call` operation kind's executor, over plain HTTP (`reqwest`, no
//! vendor SDKs). `openai` speaks OpenAI's chat completions (llama.cpp, Ollama, vLLM, LM Studio,
//! OpenAI), `anthropic` the Messages API, `gemini` `generateContent`, and `simulated` makes up
//! deterministic replies for demos and tests. `http` holds what they share: retries with
//! backoff and jitter on 429, 5xx and connection errors (honouring `Retry-After`), and the
//! errors people read, with the key never in them.
//!
//! A call has no effect on the world, so after a crash it is simply made again (the reply says
//! `after_crash`, since its cost may have been paid twice).

mod anthropic;
mod gemini;
mod http;
mod openai;
mod simulated;
mod stream;

use std::time::{Duration, Instant};

use stepwise_core::llm::{LlmReply, LlmRequest, ProviderKind, TokenUsage};
use stepwise_core::operation::{
    OperationError, OperationErrorKind, OperationRequest, OperationResult,
};

use crate::exec::{AfterCrash, BoxFuture, Executor, OpContext, Outcome};

pub(crate) use http::Secret;

/// How long a call may take when its step sets no `timeout`, retries included.
const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(300);

/// Where a streamed reply's pieces go as they arrive (to followers, not to the log).
pub(crate) type Progress = Option<tokio::sync::mpsc::UnboundedSender<String>>;

/// Passes a piece of a streamed reply on.
fn report(progress: &Progress, piece: &str) {
    if let Some(tx) = progress
        && !piece.is_empty()
    {
        let _ = tx.send(piece.to_string());
    }
}

/// What one provider round trip produced, before cost and timing are added.
pub(crate) struct Answer {
    pub(crate) text: String,
    pub(crate) finish_reason: String,
    /// `None` when the provider reported no token counts.
    pub(crate) usage: Option<TokenUsage>,
    pub(crate) attempts: u32,
}

/// The executor of model calls.
pub(crate) struct LlmCall {
    client: reqwest::Client,
}

impl LlmCall {
    pub(crate) fn new() -> LlmCall {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        LlmCall { client }
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
            let mut cancel = ctx.cancel.clone();
            let limit = request
                .timeout_ms
                .map_or(DEFAULT_CALL_TIMEOUT, Duration::from_millis);
            let progress = Some(crate::progress::progress_sink(
                crate::progress::progress_path(&ctx.lock_dir, &ctx.run_id, ctx.op),
            ));
            let call = call(&client, &request, ctx.recovering, progress);
            tokio::select! {
                outcome = tokio::time::timeout(limit, call) => outcome.unwrap_or_else(|_| {
                    Err(OperationError::new(
                        OperationErrorKind::Provider,
                        format!("the call to model `{}` took longer than {}s", request.model, limit.as_secs()),
                    ))
                }),
                () = cancelled(&mut cancel) => Err(OperationError::new(
                    OperationErrorKind::Cancelled,
                    format!("the call to model `{}` was cancelled", request.model),
                )),
            }
        })
    }

    fn after_crash(&self) -> AfterCrash {
        AfterCrash::Repeat
    }
}

/// Makes the call with the provider the request names.
async fn call(
    client: &reqwest::Client,
    request: &LlmRequest,
    after_crash: bool,
    progress: Progress,
) -> Outcome {
    let started = Instant::now();
    let secret = Secret::from_env(request.spec.api_key_env.as_deref())?;
    let answer = match request.spec.kind {
        ProviderKind::Openai => openai::call(client, request, &secret, &progress).await,
        ProviderKind::Anthropic => anthropic::call(client, request, &secret, &progress).await,
        ProviderKind::Gemini => gemini::call(client, request, &secret, &progress).await,
        ProviderKind::Simulated => {
            let answer = simulated::reply(request);
            report(&progress, &answer.text);
            Ok(answer)
        }
    }
    .map_err(|e| secret.redact_error(e))?;
    // A server's token counts are believed only within what a call can use: past that they
    // would poison every sum made of them (cost, budget, the runs listing).
    if let Some(problem) = answer.usage.as_ref().and_then(TokenUsage::implausible) {
        return Err(http::malformed(
            &format!("provider `{}`", request.spec.provider),
            &problem,
        ));
    }
    let (usage, usage_estimated) = match answer.usage {
        Some(usage) => (usage, false),
        None => (estimated_usage(request, &answer.text), true),
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
    })))
}

/// Token counts from text lengths, for a provider that reports none.
fn estimated_usage(request: &LlmRequest, reply: &str) -> TokenUsage {
    TokenUsage {
        input_tokens: stepwise_core::llm::estimate(request).input_tokens,
        output_tokens: (reply.len() as u64).div_ceil(3),
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
