//! Tool calling in each protocol, against a scripted server on loopback: the tools and a
//! conversation with a tool turn written as each protocol wants them, and the calls a reply
//! asks for read back, whole or streamed in pieces.

use serde_json::{Value, json};
use stepwise_core::llm::{ChatMessage, LlmRequest, ProviderKind, Role, ToolCall, ToolSpec};

use super::anthropic::Anthropic;
use super::gemini::Gemini;
use super::openai::OpenAi;
use super::protocol::Protocol;
use super::tests::{Body, Scripted, call, request};

fn read_file_tool() -> ToolSpec {
    ToolSpec {
        name: "read_file".into(),
        description: "Reads a text file of the workspace.".into(),
        parameters: json!({"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}),
    }
}

/// A request offering `read_file`, after a turn that called it and its result.
fn tool_request(kind: ProviderKind, stream: bool) -> LlmRequest {
    let mut request = request(None);
    request.spec.kind = kind;
    request.spec.stream = stream;
    request.tools = vec![read_file_tool()];
    request.messages = vec![
        ChatMessage::text(Role::System, "Be brief."),
        ChatMessage::text(Role::User, "What is in notes.txt?"),
        ChatMessage {
            role: Role::Assistant,
            content: "Let me look.".into(),
            tool_calls: vec![ToolCall {
                id: "call_7".into(),
                name: "read_file".into(),
                arguments: json!({"path": "notes.txt"}),
                signature: None,
                malformed: None,
            }],
            tool_call_id: None,
        },
        ChatMessage::tool_result("call_7", "buy milk"),
    ];
    request
}

fn wanted() -> Vec<ToolCall> {
    vec![
        ToolCall {
            id: "t1".into(),
            name: "read_file".into(),
            arguments: json!({"path": "a.txt"}),
            signature: None,
            malformed: None,
        },
        ToolCall {
            id: "t2".into(),
            name: "read_file".into(),
            arguments: json!({"path": "b.txt"}),
            signature: None,
            malformed: None,
        },
    ]
}

/// A written request's body, read back as JSON.
fn wire_json(
    wire: Result<super::protocol::WireRequest, super::error::BadReply>,
) -> serde_json::Value {
    let wire = wire.unwrap_or_else(|e| panic!("the request was not written: {}", e.0));
    serde_json::from_slice(&wire.body).expect("the body is JSON")
}

#[test]
fn openai_writes_tools_a_calling_turn_and_its_result() {
    let request = tool_request(ProviderKind::Openai, false);
    let body =
        wire_json(OpenAi { request: &request }.request("http://x", super::openai::JsonMode::Plain));
    assert_eq!(body["tools"][0]["type"], "function");
    assert_eq!(body["tools"][0]["function"]["name"], "read_file");
    assert_eq!(
        body["tools"][0]["function"]["parameters"]["required"][0],
        "path"
    );
    let turn = &body["messages"][2];
    assert_eq!(turn["role"], "assistant");
    assert_eq!(turn["tool_calls"][0]["id"], "call_7");
    // Arguments go as JSON text.
    let arguments: Value = serde_json::from_str(
        turn["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .expect("text"),
    )
    .expect("JSON");
    assert_eq!(arguments, json!({"path": "notes.txt"}));
    assert_eq!(
        body["messages"][3],
        json!({"role": "tool", "tool_call_id": "call_7", "content": "buy milk"})
    );
}

#[test]
fn anthropic_writes_tool_use_and_tool_result_blocks() {
    let request = tool_request(ProviderKind::Anthropic, false);
    let body = wire_json(Anthropic { request: &request }.request("http://x", ()));
    assert_eq!(body["tools"][0]["input_schema"]["type"], "object");
    assert_eq!(body["system"], "Be brief.");
    let turn = &body["messages"][1];
    assert_eq!(
        turn["content"][0],
        json!({"type": "text", "text": "Let me look."})
    );
    assert_eq!(
        turn["content"][1],
        json!({"type": "tool_use", "id": "call_7", "name": "read_file", "input": {"path": "notes.txt"}})
    );
    assert_eq!(
        body["messages"][2],
        json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_7", "content": "buy milk"}]})
    );
}

#[test]
fn gemini_writes_function_declarations_calls_and_responses_by_name() {
    let request = tool_request(ProviderKind::Gemini, false);
    let body = wire_json(Gemini { request: &request }.request("http://x", ()));
    assert_eq!(
        body["tools"][0]["functionDeclarations"][0]["name"],
        "read_file"
    );
    let turn = &body["contents"][1];
    assert_eq!(turn["role"], "model");
    assert_eq!(
        turn["parts"][1],
        json!({"functionCall": {"name": "read_file", "args": {"path": "notes.txt"}}})
    );
    assert_eq!(
        body["contents"][2]["parts"][0],
        json!({"functionResponse": {"name": "read_file", "response": {"content": "buy milk"}}})
    );
}

/// Answers `request` with `protocol` from a server giving `body`.
async fn answered<P: Protocol>(protocol: &P, request: &LlmRequest, body: Body) -> Vec<ToolCall> {
    let server = Scripted::start_with(vec![(200, body)]);
    let answer = call(protocol, &server, request).await.expect("an answer");
    assert!(server.seen()[0]["tools"].is_array(), "the tools were sent");
    answer.tool_calls
}

#[tokio::test]
async fn each_protocol_reads_the_calls_of_a_whole_reply() {
    let openai = json!({"choices": [{"message": {"content": null, "tool_calls": [
        {"id": "t1", "type": "function", "function": {"name": "read_file", "arguments": "{\"path\": \"a.txt\"}"}},
        {"id": "t2", "type": "function", "function": {"name": "read_file", "arguments": "{\"path\": \"b.txt\"}"}}
    ]}, "finish_reason": "tool_calls"}]});
    let request = tool_request(ProviderKind::Openai, false);
    assert_eq!(
        answered(&OpenAi { request: &request }, &request, Body::Json(openai)).await,
        wanted()
    );

    let anthropic = json!({"content": [
        {"type": "text", "text": "Reading both."},
        {"type": "tool_use", "id": "t1", "name": "read_file", "input": {"path": "a.txt"}},
        {"type": "tool_use", "id": "t2", "name": "read_file", "input": {"path": "b.txt"}}
    ], "stop_reason": "tool_use"});
    let request = tool_request(ProviderKind::Anthropic, false);
    assert_eq!(
        answered(
            &Anthropic { request: &request },
            &request,
            Body::Json(anthropic)
        )
        .await,
        wanted()
    );

    // Gemini gives no ids: they are numbered in the reply's order.
    let gemini = json!({"candidates": [{"content": {"parts": [
        {"functionCall": {"name": "read_file", "args": {"path": "a.txt"}}},
        {"functionCall": {"name": "read_file", "args": {"path": "b.txt"}}}
    ]}, "finishReason": "STOP"}]});
    let request = tool_request(ProviderKind::Gemini, false);
    let calls = answered(&Gemini { request: &request }, &request, Body::Json(gemini)).await;
    let ids: Vec<&str> = calls.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["call_0", "call_1"]);
    assert_eq!(calls[1].arguments, json!({"path": "b.txt"}));
}

#[tokio::test]
async fn each_protocol_puts_streamed_calls_together() {
    let events = |list: &[&str]| Body::Events(list.iter().map(|e| e.to_string()).collect());
    let openai = events(&[
        r#"{"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "t1", "type": "function", "function": {"name": "read_file", "arguments": ""}}]}}]}"#,
        r#"{"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"path\": "}}]}}]}"#,
        r#"{"choices": [{"delta": {"tool_calls": [{"index": 1, "id": "t2", "function": {"name": "read_file", "arguments": "{\"path\": \"b.txt\"}"}}]}}]}"#,
        r#"{"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "\"a.txt\"}"}}]}}]}"#,
        r#"{"choices": [{"delta": {}, "finish_reason": "tool_calls"}]}"#,
        "[DONE]",
    ]);
    let request = tool_request(ProviderKind::Openai, true);
    assert_eq!(
        answered(&OpenAi { request: &request }, &request, openai).await,
        wanted()
    );

    let anthropic = events(&[
        r#"{"type": "message_start", "message": {"usage": {"input_tokens": 9}}}"#,
        r#"{"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "t1", "name": "read_file", "input": {}}}"#,
        r#"{"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"path\": \"a"}}"#,
        r#"{"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": ".txt\"}"}}"#,
        r#"{"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "t2", "name": "read_file", "input": {}}}"#,
        r#"{"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"path\": \"b.txt\"}"}}"#,
        r#"{"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 30}}"#,
        r#"{"type": "message_stop"}"#,
    ]);
    let request = tool_request(ProviderKind::Anthropic, true);
    assert_eq!(
        answered(&Anthropic { request: &request }, &request, anthropic).await,
        wanted()
    );

    let gemini = events(&[
        r#"{"candidates": [{"content": {"parts": [{"functionCall": {"name": "read_file", "args": {"path": "a.txt"}}}]}}]}"#,
        r#"{"candidates": [{"content": {"parts": [{"functionCall": {"name": "read_file", "args": {"path": "b.txt"}}}]}, "finishReason": "STOP"}]}"#,
    ]);
    let request = tool_request(ProviderKind::Gemini, true);
    let calls = answered(&Gemini { request: &request }, &request, gemini).await;
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].arguments, json!({"path": "a.txt"}));
}

#[tokio::test]
async fn a_call_cut_off_by_the_token_limit_is_kept_saying_what_is_wrong_and_a_hostile_reply_fails()
{
    let reply = json!({"choices": [{"message": {"tool_calls": [
        {"id": "t1", "type": "function", "function": {"name": "read_file", "arguments": "{\"path\": "}}
    ]}, "finish_reason": "length"}]});
    let request = tool_request(ProviderKind::Openai, false);
    let server = Scripted::start_with(vec![(200, Body::Json(reply))]);
    let answer = call(&OpenAi { request: &request }, &server, &request)
        .await
        .expect("the reply stands");
    assert_eq!(answer.tool_calls[0].arguments, json!({}));
    let problem = answer.tool_calls[0].malformed.clone().unwrap_or_default();
    assert!(problem.contains("not JSON"), "{problem}");

    // A call without a tool's name cannot be answered: the reply fails, naming the provider.
    let reply = json!({"choices": [{"message": {"tool_calls": [
        {"id": "t1", "type": "function", "function": {"arguments": "{}"}}
    ]}, "finish_reason": "tool_calls"}]});
    let server = Scripted::start_with(vec![(200, Body::Json(reply))]);
    let error = call(&OpenAi { request: &request }, &server, &request)
        .await
        .err()
        .expect("refused");
    let said = error.to_string();
    assert!(said.contains("provider `p`"), "{said}");
    assert!(said.contains("without a tool's name"), "{said}");
}

#[test]
fn gemini_gets_every_result_of_a_turn_in_one_turn_and_each_signature_back() {
    let mut request = tool_request(ProviderKind::Gemini, false);
    request.messages.truncate(2);
    request.messages.push(ChatMessage {
        role: Role::Assistant,
        content: String::new(),
        tool_calls: vec![
            ToolCall {
                id: "call_0".into(),
                name: "read_file".into(),
                arguments: json!({"path": "a.txt"}),
                signature: Some("sig-a".into()),
                malformed: None,
            },
            ToolCall {
                id: "call_1".into(),
                name: "list_files".into(),
                arguments: json!({}),
                signature: None,
                malformed: None,
            },
        ],
        tool_call_id: None,
    });
    request
        .messages
        .push(ChatMessage::tool_result("call_0", "A"));
    request
        .messages
        .push(ChatMessage::tool_result("call_1", "B"));
    request.output_schema = Some(json!({"type": "object"}));
    let body = wire_json(Gemini { request: &request }.request("http://x", ()));
    let contents = body["contents"].as_array().expect("contents");
    assert_eq!(contents.len(), 3, "{contents:?}");
    assert_eq!(contents[1]["parts"][0]["thoughtSignature"], "sig-a");
    assert!(contents[1]["parts"][1].get("thoughtSignature").is_none());
    let results = contents[2]["parts"].as_array().expect("parts");
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["functionResponse"]["name"], "read_file");
    assert_eq!(results[1]["functionResponse"]["name"], "list_files");
    // JSON mode and function calling do not go together on Gemini.
    assert!(body["generationConfig"].get("responseMimeType").is_none());

    // A signature given with a call is kept with it.
    let reply = json!({"candidates": [{"content": {"parts": [
        {"functionCall": {"name": "read_file", "args": {"path": "a.txt"}}, "thoughtSignature": "sig-z"}
    ]}, "finishReason": "STOP"}]});
    let delta = Gemini { request: &request }
        .parse_reply(&reply)
        .expect("parses");
    assert_eq!(delta.tool_calls[0].signature.as_deref(), Some("sig-z"));
}
