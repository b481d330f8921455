//! LLM calls as operations: what a run knows of a model (`ModelSpec`, recorded when the run
//! starts), the exact request (`LlmRequest`) and reply (`LlmReply`) that are recorded, money as
//! integer micro-dollars, and the budget a run may spend (`Budget`) with the estimate a call is
//! judged by before it is made.
//!
//! Everything here is data and arithmetic: performing a call is the engine's business.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Which protocol a provider speaks.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// OpenAI's chat completions, as llama.cpp, Ollama, vLLM, LM Studio and OpenAI serve it.
    Openai,
    /// Anthropic's Messages API.
    Anthropic,
    /// Google's Gemini `generateContent`.
    Gemini,
    /// Deterministic made-up replies, for demos and tests; always labelled as simulated.
    Simulated,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Openai => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gemini",
            ProviderKind::Simulated => "simulated",
        }
    }
}

/// The most money any figure holds, in micro-dollars (about $4.6 trillion): costs and sums
/// saturate here, so that they fit SQLite's signed 64-bit integers, even added to one another.
pub const MAX_MICRO_USD: u64 = (1 << 62) - 1;

/// The most tokens a provider may say one call used, in either direction. No model reads or
/// writes a hundred million tokens in one call: a reply that says so is refused as malformed
/// before anything of it is stored.
pub const MAX_TOKENS_PER_CALL: u64 = 100_000_000;

/// Prices in integer micro-dollars per million tokens.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Price {
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub input_micro_usd_per_mtok: u64,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub output_micro_usd_per_mtok: u64,
}

impl Price {
    /// What `input` and `output` tokens cost, rounded up to a whole micro-dollar, at most
    /// [`MAX_MICRO_USD`].
    pub fn cost_micro_usd(&self, input: u64, output: u64) -> u64 {
        let scaled = (u128::from(input) * u128::from(self.input_micro_usd_per_mtok))
            .saturating_add(u128::from(output) * u128::from(self.output_micro_usd_per_mtok));
        u64::try_from(scaled.div_ceil(1_000_000))
            .unwrap_or(u64::MAX)
            .min(MAX_MICRO_USD)
    }
}

/// A model alias as it was resolved when the run started: recorded in `RunStarted`, so that a
/// run resumes and replays with the model it started with. Holds the *name* of the variable the
/// API key comes from, never the key.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// The provider's name in the settings.
    pub provider: String,
    pub kind: ProviderKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The provider's name for the model.
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    #[serde(default)]
    pub price: Price,
    /// Whether replies are streamed (so that they can be watched as they come). Some servers
    /// report no token counts when streaming; then they are estimated.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub stream: bool,
    /// The most one call may take, in seconds, retries included (the provider's `timeout_s`;
    /// none: the engine's default). A step's shorter `timeout` still wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u32>,
    /// The most a reply may stay silent, in seconds (the provider's `idle_timeout_s`; none:
    /// the engine's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_s: Option<u32>,
    /// How many tokens the model's context holds (the model's `context_tokens`; none:
    /// [`DEFAULT_CONTEXT_TOKENS`]). An agent's conversation is shortened to fit it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_tokens: Option<u32>,
}

/// The context a model is taken to hold when its settings do not say.
pub const DEFAULT_CONTEXT_TOKENS: u32 = 8_192;

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// Who says a message.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    System,
    User,
    Assistant,
    /// What a tool the model called returned (`tool_call_id` says which call).
    Tool,
}

impl Role {
    /// The role as people and most protocols name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// One message of a conversation.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
    /// The tools a model's turn called (an assistant message).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The call a tool message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    /// A message of text alone.
    pub fn text(role: Role, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }

    /// What a tool returned for the call `id`.
    pub fn tool_result(id: impl Into<String>, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: Role::Tool,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: Some(id.into()),
        }
    }
}

/// A tool a model may call: its name, what it does, and a JSON Schema of its arguments (an
/// object).
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub parameters: serde_json::Value,
}

/// A tool call a model asked for: the provider's id for it (made up where the protocol has
/// none), the tool's name and its arguments (a JSON object).
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: serde_json::Value,
    /// An opaque token the provider gave with the call, to be sent back with it (Gemini's
    /// thought signature, without which its thinking models refuse the next turn).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// What was wrong with the call as the model gave it (arguments that are not a JSON
    /// object, or cut off): the call is answered with this, so that the model can try again,
    /// rather than the whole reply refused. Its `arguments` are then `{}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub malformed: Option<String>,
}

/// The longest opaque token a provider may give with a tool call, in bytes.
pub const MAX_TOOL_SIGNATURE_BYTES: usize = 64 * 1024;

/// The most tool calls one reply may ask for: a reply asking for more is refused as malformed.
pub const MAX_TOOL_CALLS_PER_REPLY: usize = 64;
/// The longest tool name or call id a reply may give, in bytes.
pub const MAX_TOOL_NAME_BYTES: usize = 256;

/// A sampling temperature (0 to 2). Compared bit for bit, so that a recorded request equals
/// itself.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Temperature(pub f64);

impl PartialEq for Temperature {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Temperature {}

/// Replies are limited to this many tokens unless the step says otherwise; it is also what a
/// budget reserves for the reply.
pub const DEFAULT_MAX_TOKENS: u32 = 1024;

/// Exactly what is asked of a model: recorded before the call, answered from the log on replay.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlmRequest {
    /// The alias the workflow names.
    pub model: String,
    /// What the alias meant for this run.
    pub spec: ModelSpec,
    pub messages: Vec<ChatMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<Temperature>,
    pub max_tokens: u32,
    /// A JSON Schema the reply must be a JSON value of (structured output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<serde_json::Value>,
    /// How long the call may take, retries included (the step's `timeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(type = "number | null"))]
    pub timeout_ms: Option<u64>,
    /// The tools the model may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
}

/// Tokens a call used, as the provider reported them.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub input_tokens: u64,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub output_tokens: u64,
}

impl TokenUsage {
    pub fn total(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }

    /// Why a provider's figures cannot be believed: more than [`MAX_TOKENS_PER_CALL`] either
    /// way.
    pub fn implausible(&self) -> Option<String> {
        [("input", self.input_tokens), ("output", self.output_tokens)]
            .into_iter()
            .find(|&(_, tokens)| tokens > MAX_TOKENS_PER_CALL)
            .map(|(what, tokens)| {
                format!(
                    "it reports {tokens} {what} tokens for one call, more than the {MAX_TOKENS_PER_CALL} any call can use"
                )
            })
    }
}

/// `a + b` in micro-dollars, at most [`MAX_MICRO_USD`].
pub fn add_micro_usd(a: u64, b: u64) -> u64 {
    a.saturating_add(b).min(MAX_MICRO_USD)
}

/// What a model replied, and what it cost.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlmReply {
    pub text: String,
    /// Why the model stopped: `stop`, `length`, … as the provider says.
    pub finish_reason: String,
    pub usage: TokenUsage,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub latency_ms: u64,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub cost_micro_usd: u64,
    /// Made up by the simulated provider, not by a model.
    #[serde(default, skip_serializing_if = "is_false")]
    pub simulated: bool,
    /// Made again after a crash left the first call unanswered (its cost may have been paid
    /// twice).
    #[serde(default, skip_serializing_if = "is_false")]
    pub after_crash: bool,
    /// HTTP attempts it took (more than 1 when the provider asked to retry).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub attempts: u32,
    /// The provider reported no token counts; these are estimated from the text.
    #[serde(default, skip_serializing_if = "is_false")]
    pub usage_estimated: bool,
    /// The tools the model called, in the order it gave them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

/// How much a run may spend. Either limit may be absent.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(type = "number | null"))]
    pub micro_usd: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(type = "number | null"))]
    pub tokens: Option<u64>,
}

/// What a call is expected to cost at most, judged before it is made: the prompt's tokens
/// (estimated from its length) plus the whole `max_tokens`, at the model's prices.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CostEstimate {
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub input_tokens: u64,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub output_tokens: u64,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub micro_usd: u64,
}

impl CostEstimate {
    pub fn tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

/// The tokens one message is counted as by [`estimate`]: generously, a token per 3 bytes of its
/// text and its calls, and 4 for the message itself.
pub fn message_tokens(message: &ChatMessage) -> u64 {
    let calls: u64 = message
        .tool_calls
        .iter()
        .map(|c| (c.name.len() as u64).saturating_add(json_len(&c.arguments)))
        .sum();
    (message.content.len() as u64)
        .saturating_add(calls)
        .div_ceil(3)
        .saturating_add(4)
}

/// The length of `value` as compact JSON text, counted without writing the text out (an
/// agent's conversation is estimated at every turn).
fn json_len(value: &serde_json::Value) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 = self.0.saturating_add(bytes.len() as u64);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a `Value` fails only when the writer does, and this one never does.
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => 0,
    }
}

/// The estimate for a request. Prompt tokens are counted generously (a token for every 3
/// bytes, plus 4 per message), so that a budget is not crossed by an underestimate.
pub fn estimate(request: &LlmRequest) -> CostEstimate {
    let messages: u64 = request.messages.iter().map(message_tokens).sum();
    let tools: u64 = request
        .tools
        .iter()
        .map(|t| {
            (t.name.len() as u64 + t.description.len() as u64 + json_len(&t.parameters)).div_ceil(3)
        })
        .sum();
    let input_tokens = messages.saturating_add(tools);
    let output_tokens = u64::from(request.max_tokens);
    CostEstimate {
        input_tokens,
        output_tokens,
        micro_usd: request
            .spec
            .price
            .cost_micro_usd(input_tokens, output_tokens),
    }
}

/// Dollars as people read them: `$0.0123`, `$12.50`, `$0`.
pub fn format_usd(micro_usd: u64) -> String {
    let dollars = micro_usd / 1_000_000;
    let micros = micro_usd % 1_000_000;
    if dollars >= 1 {
        return format!("${dollars}.{:02}", micros / 10_000);
    }
    if micros == 0 {
        return "$0".into();
    }
    let digits = format!("{micros:06}");
    format!("$0.{}", digits.trim_end_matches('0'))
}

/// Built-in prices of well-known hosted models, in micro-dollars per million tokens (input,
/// output), used when the settings give none. Local models cost nothing.
pub fn builtin_price(kind: ProviderKind, model: &str) -> Option<Price> {
    let table: BTreeMap<&str, (u64, u64)> = match kind {
        ProviderKind::Openai => [
            ("gpt-4o", (2_500_000, 10_000_000)),
            ("gpt-4o-mini", (150_000, 600_000)),
            ("gpt-4.1", (2_000_000, 8_000_000)),
            ("gpt-4.1-mini", (400_000, 1_600_000)),
            ("gpt-4.1-nano", (100_000, 400_000)),
        ]
        .into(),
        ProviderKind::Anthropic => [
            ("claude-3-5-haiku-latest", (800_000, 4_000_000)),
            ("claude-3-5-sonnet-latest", (3_000_000, 15_000_000)),
            ("claude-sonnet-4-0", (3_000_000, 15_000_000)),
            ("claude-opus-4-0", (15_000_000, 75_000_000)),
        ]
        .into(),
        ProviderKind::Gemini => [
            ("gemini-1.5-flash", (75_000, 300_000)),
            ("gemini-1.5-pro", (1_250_000, 5_000_000)),
            ("gemini-2.0-flash", (100_000, 400_000)),
        ]
        .into(),
        ProviderKind::Simulated => BTreeMap::new(),
    };
    table.get(model).map(|&(input, output)| Price {
        input_micro_usd_per_mtok: input,
        output_micro_usd_per_mtok: output,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_are_whole_micro_dollars_rounded_up() {
        let price = Price {
            input_micro_usd_per_mtok: 150_000,
            output_micro_usd_per_mtok: 600_000,
        };
        assert_eq!(price.cost_micro_usd(1_000_000, 0), 150_000);
        assert_eq!(
            price.cost_micro_usd(1, 0),
            1,
            "a fraction of a micro-dollar rounds up"
        );
        assert_eq!(price.cost_micro_usd(0, 0), 0);
        assert_eq!(price.cost_micro_usd(1_000, 1_000), 750);
        assert_eq!(Price::default().cost_micro_usd(u64::MAX, u64::MAX), 0);
        let dear = Price {
            input_micro_usd_per_mtok: u64::MAX,
            output_micro_usd_per_mtok: u64::MAX,
        };
        assert_eq!(dear.cost_micro_usd(u64::MAX, u64::MAX), MAX_MICRO_USD);
        assert!(i64::try_from(add_micro_usd(MAX_MICRO_USD, MAX_MICRO_USD)).is_ok());
    }

    #[test]
    fn token_figures_no_call_can_reach_are_implausible() {
        let usage = |input_tokens, output_tokens| TokenUsage {
            input_tokens,
            output_tokens,
        };
        assert_eq!(usage(1_000, MAX_TOKENS_PER_CALL).implausible(), None);
        let said = usage(3, u64::MAX).implausible().expect("implausible");
        assert!(
            said.contains("18446744073709551615 output tokens"),
            "{said}"
        );
        assert!(usage(MAX_TOKENS_PER_CALL + 1, 0).implausible().is_some());
    }

    #[test]
    fn a_request_without_tools_is_recorded_as_before_and_tools_count_in_the_estimate() {
        let spec = ModelSpec {
            provider: "p".into(),
            kind: ProviderKind::Openai,
            base_url: None,
            model: "m".into(),
            api_key_env: None,
            price: Price::default(),
            stream: true,
            timeout_s: None,
            idle_timeout_s: None,
            context_tokens: None,
        };
        let mut request = LlmRequest {
            model: "m".into(),
            spec,
            messages: vec![ChatMessage::text(Role::User, "hello")],
            temperature: None,
            max_tokens: 10,
            output_schema: None,
            timeout_ms: None,
            tools: Vec::new(),
        };
        // Recorded requests and their hashes stay what they were before tools existed.
        let recorded = serde_json::to_value(&request).unwrap();
        assert_eq!(
            recorded["messages"],
            serde_json::json!([{"role": "user", "content": "hello"}])
        );
        assert!(recorded.get("tools").is_none());

        let before = estimate(&request).input_tokens;
        request.tools.push(ToolSpec {
            name: "read_file".into(),
            description: "Reads a file of the workspace, by its path.".into(),
            parameters: serde_json::json!({"type": "object", "properties": {"path": {"type": "string"}}}),
        });
        let with_tool = estimate(&request).input_tokens;
        assert!(with_tool > before + 10, "{before} -> {with_tool}");
        request.messages.push(ChatMessage {
            role: Role::Assistant,
            content: String::new(),
            tool_calls: vec![ToolCall {
                id: "c".into(),
                name: "read_file".into(),
                arguments: serde_json::json!({"path": "a/very/long/path/to/some/file.txt"}),
                signature: None,
                malformed: None,
            }],
            tool_call_id: None,
        });
        assert!(estimate(&request).input_tokens > with_tool + 10);
        let back: LlmRequest =
            serde_json::from_value(serde_json::to_value(&request).unwrap()).unwrap();
        assert_eq!(back, request);
    }

    #[test]
    fn dollars_read_as_people_write_them() {
        assert_eq!(format_usd(0), "$0");
        assert_eq!(format_usd(12_300), "$0.0123");
        assert_eq!(format_usd(500_000), "$0.5");
        assert_eq!(format_usd(12_500_000), "$12.50");
    }
}
