//! A provider's key never leaves for another origin: a `base_url` answering a redirect to
//! another server (another port on loopback here) fails the call with an error naming the
//! redirect, and that server hears nothing, for every provider kind and every redirect status;
//! a redirect within the configured origin is followed, with the key.

use serde_json::json;

use crate::fake_llm::{FakeProvider, Reply, env_with_fake_provider, openai_reply};
use crate::support::{Env, step};

const KEY: &str = "sk-planted-redirect-5e1b";

fn env_with(kind: &str, base_url: &str) -> Env {
    env_with_fake_provider(kind, base_url, KEY, "", "")
}

/// A reply the protocol `kind` accepts: were a redirect followed, the call would succeed.
fn good_reply(kind: &str) -> Reply {
    match kind {
        "openai" => openai_reply("hello from elsewhere", 3, 3),
        "anthropic" => Reply::json(
            200,
            json!({"content": [{"type": "text", "text": "hello from elsewhere"}], "stop_reason": "end_turn", "usage": {"input_tokens": 3, "output_tokens": 3}}),
        ),
        _ => Reply::json(
            200,
            json!({"candidates": [{"content": {"parts": [{"text": "hello from elsewhere"}]}, "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 3}}),
        ),
    }
}

/// The base URL of a fake provider for `kind`, and the path a call to it asks for.
fn base_and_path(kind: &str, port: u16) -> (String, &'static str) {
    match kind {
        "openai" => (
            format!("http://127.0.0.1:{port}/v1"),
            "/v1/chat/completions",
        ),
        "anthropic" => (format!("http://127.0.0.1:{port}"), "/v1/messages"),
        _ => (
            format!("http://127.0.0.1:{port}/v1beta"),
            "/v1beta/models/tiny-1:streamGenerateContent?alt=sse",
        ),
    }
}

const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "x-api-key",
    "x-goog-api-key",
    "proxy-authorization",
    "cookie",
];

#[test]
fn a_redirect_to_another_origin_is_refused_and_the_key_never_leaves() {
    for kind in ["openai", "anthropic", "gemini"] {
        for status in [301, 302, 303, 307, 308] {
            let elsewhere = FakeProvider::start(vec![good_reply(kind)]);
            let (_, path) = base_and_path(kind, elsewhere.port);
            let target = format!("http://127.0.0.1:{}{path}", elsewhere.port);
            let origin = FakeProvider::start(vec![
                Reply::json(status, json!({})).with_header("Location", &target),
            ]);
            let (base, _) = base_and_path(kind, origin.port);
            let env = env_with(kind, &base);
            let wf = env.workflow(
                "ask.yaml",
                "name: ask\nsteps:\n  - id: ask\n    type: prompt\n    model: m\n    prompt: hello\n",
            );
            let out = env.run(&wf, &[]);
            let case = format!("{kind}, HTTP {status}");
            assert_eq!(out.code, 1, "{case}: {out}");
            // The configured server was asked, with the key.
            assert_eq!(origin.seen().len(), 1, "{case}");
            // The other one heard nothing at all, so neither the key nor any credential.
            let heard = elsewhere.seen();
            for request in &heard {
                for name in CREDENTIAL_HEADERS {
                    assert_eq!(
                        request.header(name),
                        None,
                        "{case}: {name} was sent elsewhere"
                    );
                }
                assert!(
                    !request.headers.iter().any(|(_, v)| v.contains(KEY)),
                    "{case}: the key was sent elsewhere"
                );
            }
            assert!(heard.is_empty(), "{case}: the redirect was followed");
            let error = step(&env.show(&out.run_id()), "ask")["error"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            for words in [
                format!("redirected the call (HTTP {status}) to {target}"),
                "was not followed".to_string(),
            ] {
                assert!(error.contains(&words), "{case}: {error}");
            }
            assert!(!error.contains(KEY), "{case}: {error}");
        }
    }

    // Within the configured origin, a redirect is followed, with the key: it goes nowhere new.
    for (kind, header, value) in [
        ("openai", "authorization", format!("Bearer {KEY}")),
        ("anthropic", "x-api-key", KEY.to_string()),
        ("gemini", "x-goog-api-key", KEY.to_string()),
    ] {
        let server = FakeProvider::start(vec![
            Reply::json(307, json!({})).with_header("Location", "/moved/here"),
            good_reply(kind),
        ]);
        let (base, path) = base_and_path(kind, server.port);
        let env = env_with(kind, &base);
        let wf = env.workflow(
            "ask.yaml",
            "name: ask\nsteps:\n  - id: ask\n    type: prompt\n    model: m\n    prompt: hello\n",
        );
        let out = env.run(&wf, &[]);
        assert_eq!(out.code, 0, "{kind}: {out}");
        let seen = server.seen();
        assert_eq!(seen.len(), 2, "{kind}");
        assert_eq!(seen[0].path, path, "{kind}");
        assert_eq!(seen[1].path, "/moved/here", "{kind}");
        assert_eq!(seen[1].header(header), Some(value.as_str()), "{kind}");
        let show = env.show(&out.run_id());
        assert_eq!(
            step(&show, "ask")["output"]["text"],
            "hello from elsewhere",
            "{kind}"
        );
    }
}
