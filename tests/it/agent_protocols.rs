//! An agent's loop in Anthropic's and Gemini's own protocols, against loopback servers: tool
//! calls streamed in pieces, a read, an edit that waits and is approved (Anthropic, ending
//! with a structured answer) or rejected with a reason the next request carries (Gemini), a
//! command a rule allows, and each run replayed without the server. (OpenAI's is `agent.rs`
//! and `agent_edits.rs`.)

use serde_json::{Value, json};

use crate::fake_llm::{FakeProvider, Reply};
use crate::llm::env_with_provider;
use crate::support::{Env, step};

fn replays_offline(env: &Env, server: &FakeProvider, run: &str) {
    let before = server.seen().len();
    let replayed = env.stepwise(&["replay", run]);
    assert_eq!(replayed.code, 0, "{replayed}");
    assert_eq!(server.seen().len(), before, "replay asked the model");
}

const AGENT: &str = "name: agent\nsteps:\n  - id: shop\n    type: agent\n    model: m\n    instructions: Fix the list.\n    tools: [read_file, edit_file, run_command]\n";

/// An environment on `kind`'s protocol at `base`, where agents may run `cat` without asking.
fn env_for(kind: &str, base: &str) -> Env {
    let env = env_with_provider(kind, base);
    env.workspace_policy("  - allow: agent_command\n    command: \"cat *\"\n");
    env.write("list.txt", "bread\nmilk\n");
    env
}

#[test]
fn an_anthropic_agent_streams_its_calls_edits_with_approval_and_answers_in_shape() {
    let sse = |events: &[Value]| {
        Reply::sse(
            events.iter().map(Value::to_string).collect(),
            std::time::Duration::ZERO,
        )
    };
    let server = FakeProvider::start(vec![
        // The read, streamed in pieces.
        sse(&[
            json!({"type": "message_start", "message": {"usage": {"input_tokens": 40}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Reading it."}}),
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "read_file", "input": {}}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"path\": \"li"}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "st.txt\"}"}}),
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 12}}),
            json!({"type": "message_stop"}),
        ]),
        Reply::json(
            200,
            json!({"content": [{"type": "tool_use", "id": "toolu_2", "name": "edit_file", "input": {"path": "list.txt", "old_text": "bread", "new_text": "rye bread"}}], "stop_reason": "tool_use", "usage": {"input_tokens": 60, "output_tokens": 20}}),
        ),
        Reply::json(
            200,
            json!({"content": [{"type": "tool_use", "id": "toolu_3", "name": "run_command", "input": {"argv": ["cat", "list.txt"]}}], "stop_reason": "tool_use", "usage": {"input_tokens": 70, "output_tokens": 10}}),
        ),
        Reply::json(
            200,
            json!({"content": [{"type": "text", "text": "{\"changed\": true}"}], "stop_reason": "end_turn", "usage": {"input_tokens": 80, "output_tokens": 5}}),
        ),
    ]);
    let env = env_for("anthropic", &format!("http://127.0.0.1:{}", server.port));
    let wf = env.workflow(
        "agent.yaml",
        &format!(
            "{AGENT}    output_schema:\n      type: object\n      properties: {{changed: {{type: boolean}}}}\n      required: [changed]\n"
        ),
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 3, "the edit waits: {out}");
    let run = out.run_id();
    // The second request carries the model's turn and the tool's result as Anthropic blocks.
    let second = &server.seen()[1].body["messages"];
    assert_eq!(
        second[1]["content"][1],
        json!({"type": "tool_use", "id": "toolu_1", "name": "read_file", "input": {"path": "list.txt"}})
    );
    assert_eq!(second[2]["content"][0]["type"], "tool_result");
    assert_eq!(second[2]["content"][0]["tool_use_id"], "toolu_1");
    assert_eq!(second[2]["content"][0]["content"], "bread\nmilk\n");
    let out = env.approve(&run, "shop", &[]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(env.read("list.txt").as_deref(), Some("rye bread\nmilk\n"));
    let third = &server.seen()[2].body["messages"];
    let last = third
        .as_array()
        .and_then(|m| m.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(last["content"][0]["tool_use_id"], "toolu_2");
    assert_eq!(
        last["content"][0]["content"],
        "`list.txt` was written as proposed"
    );
    // The command ran (a rule allows it) and its output went back as the call's result.
    let fourth = &server.seen()[3].body["messages"];
    let last = fourth
        .as_array()
        .and_then(|m| m.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(last["content"][0]["tool_use_id"], "toolu_3");
    let printed = last["content"][0]["content"].as_str().unwrap_or("");
    assert!(
        printed.starts_with("exit code 0") && printed.contains("rye bread"),
        "{printed}"
    );
    assert_eq!(
        step(&env.show(&run), "shop")["output"],
        json!({"changed": true})
    );
    replays_offline(&env, &server, &run);
}

#[test]
fn a_gemini_agent_hears_why_its_edit_was_rejected() {
    let server = FakeProvider::start(vec![
        Reply::json(
            200,
            json!({"candidates": [{"content": {"role": "model", "parts": [{"functionCall": {"name": "read_file", "args": {"path": "list.txt"}}}]}, "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 30, "candidatesTokenCount": 5}}),
        ),
        Reply::json(
            200,
            json!({"candidates": [{"content": {"role": "model", "parts": [{"functionCall": {"name": "edit_file", "args": {"path": "list.txt", "old_text": "milk", "new_text": "beer"}}}]}, "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 50, "candidatesTokenCount": 5}}),
        ),
        Reply::json(
            200,
            json!({"candidates": [{"content": {"role": "model", "parts": [{"functionCall": {"name": "run_command", "args": {"argv": ["cat", "list.txt"]}}}]}, "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 60, "candidatesTokenCount": 5}}),
        ),
        Reply::json(
            200,
            json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Understood: no alcohol."}]}, "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 70, "candidatesTokenCount": 5}}),
        ),
    ]);
    let env = env_for(
        "gemini",
        &format!("http://127.0.0.1:{}/v1beta", server.port),
    );
    let wf = env.workflow("agent.yaml", AGENT);
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 3, "the edit waits: {out}");
    let run = out.run_id();
    let second = &server.seen()[1].body;
    assert_eq!(
        second["contents"][2]["parts"][0]["functionResponse"],
        json!({"name": "read_file", "response": {"content": "bread\nmilk\n"}})
    );
    assert!(second["tools"][0]["functionDeclarations"].is_array());
    let out = env.stepwise(&["reject", &run, "shop", "--reason", "no alcohol on the list"]);
    assert_eq!(out.code, 0, "the agent goes on and finishes: {out}");
    let third = &server.seen()[2].body["contents"];
    let last = third
        .as_array()
        .and_then(|c| c.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        last["parts"][0]["functionResponse"],
        json!({"name": "edit_file", "response": {"content": "error: a person rejected this: no alcohol on the list"}})
    );
    assert_eq!(env.read("list.txt").as_deref(), Some("bread\nmilk\n"));
    let fourth = &server.seen()[3].body["contents"];
    let last = fourth
        .as_array()
        .and_then(|c| c.last())
        .cloned()
        .unwrap_or_default();
    let printed = last["parts"][0]["functionResponse"]["response"]["content"]
        .as_str()
        .unwrap_or("");
    assert!(
        printed.starts_with("exit code 0") && printed.contains("bread\nmilk"),
        "{printed}"
    );
    assert_eq!(
        step(&env.show(&run), "shop")["output"]["text"],
        "Understood: no alcohol."
    );
    replays_offline(&env, &server, &run);
}
