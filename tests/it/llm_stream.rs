//! Streamed replies: each protocol's events are read into the recorded reply (text, finish
//! reason, usage), and a reply streaming in is shown live by `events --follow` in another
//! process as progress, never recorded as events.

use std::time::Duration;

use serde_json::json;

use crate::fake_llm::{FakeProvider, Reply, env_with_fake_provider, openai_stream};
use crate::support::{Env, step};

fn env_with(kind: &str, base_url: &str) -> Env {
    env_with_fake_provider(
        kind,
        base_url,
        "sk-stream-test",
        "",
        "    price: { input_per_mtok_usd: 1.0, output_per_mtok_usd: 1.0 }\n",
    )
}

fn ask(env: &Env) -> std::path::PathBuf {
    env.workflow(
        "ask.yaml",
        "name: ask\nsteps:\n  - id: ask\n    type: prompt\n    model: m\n    prompt: count to three\n",
    )
}

fn openai_chunks(pieces: &[&str]) -> Vec<String> {
    openai_stream(pieces, 9, 6)
}

#[test]
fn each_protocols_stream_is_read_into_the_recorded_reply() {
    // OpenAI-compatible.
    let server = FakeProvider::start(vec![Reply::sse(
        openai_chunks(&["one, ", "two, ", "three"]),
        Duration::ZERO,
    )]);
    let env = env_with("openai", &server.base_url());
    let out = env.run(&ask(&env), &[]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(server.seen()[0].body["stream"], true);
    let show = env.show(&out.run_id());
    let output = &step(&show, "ask")["output"];
    assert_eq!(output["text"], "one, two, three");
    assert_eq!(output["finish_reason"], "stop");
    assert_eq!(
        output["usage"],
        json!({"input_tokens": 9, "output_tokens": 6})
    );

    // Anthropic.
    let events = vec![
        json!({"type": "message_start", "message": {"usage": {"input_tokens": 11, "output_tokens": 1}}}).to_string(),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}).to_string(),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}).to_string(),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " there"}}).to_string(),
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 4}}).to_string(),
        json!({"type": "message_stop"}).to_string(),
    ];
    let server = FakeProvider::start(vec![Reply::sse(events, Duration::ZERO)]);
    let env = env_with("anthropic", &format!("http://127.0.0.1:{}", server.port));
    let out = env.run(&ask(&env), &[]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(server.seen()[0].body["stream"], true);
    let show = env.show(&out.run_id());
    let output = &step(&show, "ask")["output"];
    assert_eq!(output["text"], "Hello there");
    assert_eq!(output["finish_reason"], "end_turn");
    assert_eq!(
        output["usage"],
        json!({"input_tokens": 11, "output_tokens": 4})
    );

    // Gemini.
    let chunks = vec![
        json!({"candidates": [{"content": {"parts": [{"text": "Hi"}], "role": "model"}}]}).to_string(),
        json!({"candidates": [{"content": {"parts": [{"text": " you"}], "role": "model"}, "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 2}}).to_string(),
    ];
    let server = FakeProvider::start(vec![Reply::sse(chunks, Duration::ZERO)]);
    let env = env_with(
        "gemini",
        &format!("http://127.0.0.1:{}/v1beta", server.port),
    );
    let out = env.run(&ask(&env), &[]);
    assert_eq!(out.code, 0, "{out}");
    let show = env.show(&out.run_id());
    let output = &step(&show, "ask")["output"];
    assert_eq!(output["text"], "Hi you");
    assert_eq!(
        output["usage"],
        json!({"input_tokens": 7, "output_tokens": 2})
    );

    // A stream that ends in an error fails the step in words.
    let broken = vec![
        json!({"choices": [{"index": 0, "delta": {"content": "par"}}]}).to_string(),
        json!({"error": {"message": "context length exceeded"}}).to_string(),
    ];
    let server = FakeProvider::start(vec![Reply::sse(broken, Duration::ZERO)]);
    let env = env_with("openai", &server.base_url());
    let out = env.run(&ask(&env), &[]);
    assert_eq!(out.code, 1, "{out}");
    let error = step(&env.show(&out.run_id()), "ask")["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(error.contains("context length exceeded"), "{error}");
}

#[test]
fn a_reply_streaming_in_is_shown_live_by_another_process_and_never_recorded() {
    let pieces: Vec<String> = (1..=8).map(|i| format!("word{i} ")).collect();
    let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
    let server = FakeProvider::start(vec![Reply::sse(
        openai_chunks(&refs),
        Duration::from_millis(250),
    )]);
    let env = env_with("openai", &server.base_url());
    let engine = env.spawn_run(&ask(&env));
    let run = env
        .first_run_id(Duration::from_secs(10))
        .expect("the run never started");
    let (follower, lines) = env.spawn_piped(&["events", &run, "--follow", "--json"]);
    let mut progress_before_reply = false;
    let mut texts = String::new();
    while let Some((_, line)) = lines.next(Duration::from_secs(20)) {
        let value: serde_json::Value = serde_json::from_str(&line).expect("json");
        if let Some(text) = value["progress"]["text"].as_str() {
            texts.push_str(text);
            progress_before_reply = true;
        }
        if value["type"] == "OperationSucceeded" {
            break;
        }
    }
    assert!(
        progress_before_reply,
        "no progress was shown before the reply"
    );
    assert!(texts.contains("word1"), "{texts}");
    let out = engine.finish(Duration::from_secs(20));
    assert_eq!(out.code, 0, "{out}");
    drop(follower);
    let recorded = env
        .database
        .events()
        .iter()
        .filter(|(_, event)| {
            ![
                "RunStarted",
                "StepStarted",
                "OperationStarted",
                "OperationSucceeded",
                "StepSucceeded",
                "RunSucceeded",
            ]
            .contains(&event.event_type.as_str())
        })
        .count();
    assert_eq!(recorded, 0, "progress is never an event");
    let show = env.show(&run);
    assert_eq!(
        step(&show, "ask")["output"]["text"]
            .as_str()
            .map(str::trim_end),
        Some("word1 word2 word3 word4 word5 word6 word7 word8")
    );
}
