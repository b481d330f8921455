//! A model provider on loopback for the tests: it answers each request with the next scripted
//! reply (status, headers, body, optional delay) and records what it was asked, so that tests
//! check the wire format Stepwise speaks and every error path, with real HTTP.

use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

/// The variable the fake provider's key is read from.
pub const KEY_VAR: &str = "STEPWISE_TEST_LLM_KEY";

/// An environment whose user settings name one provider, `fake` (`kind`, at `base_url`, its
/// key `key` read from [`KEY_VAR`], and `provider_lines` more), and model `m` on it (`tiny-1`,
/// and `model_lines` more). Lines are YAML at the provider's or model's indent.
pub fn env_with_fake_provider(
    kind: &str,
    base_url: &str,
    key: &str,
    provider_lines: &str,
    model_lines: &str,
) -> crate::support::Env {
    let mut env = crate::support::Env::new();
    let settings = format!(
        "providers:\n  fake:\n    kind: {kind}\n    base_url: {base_url}\n    api_key_env: {KEY_VAR}\n{provider_lines}models:\n  m:\n    provider: fake\n    model: tiny-1\n{model_lines}"
    );
    std::fs::write(env.root().join("config/stepwise/settings.yaml"), settings)
        .expect("write settings");
    env.vars.push((KEY_VAR.into(), key.into()));
    env
}

/// One scripted answer.
#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
    /// Sent as server-sent events, one event at a time with this gap between them.
    pub events: Option<(Vec<String>, Duration)>,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.to_string(),
            delay: Duration::ZERO,
            events: None,
        }
    }

    /// A stream of server-sent events, each `data` a JSON value (or `[DONE]`), `gap` apart.
    pub fn sse(data: Vec<String>, gap: Duration) -> Reply {
        Reply {
            status: 200,
            headers: vec![("Content-Type".into(), "text/event-stream".into())],
            body: String::new(),
            delay: Duration::ZERO,
            events: Some((data, gap)),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// An OpenAI chat completion with this text and usage.
pub fn openai_reply(text: &str, input: u64, output: u64) -> Reply {
    Reply::json(
        200,
        json!({
            "id": "chatcmpl-1", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output},
        }),
    )
}

/// The server-sent events of an OpenAI chat completion streamed in `pieces`, then its finish
/// and usage, then `[DONE]`.
pub fn openai_stream(pieces: &[&str], input: u64, output: u64) -> Vec<String> {
    let mut data: Vec<String> = pieces
        .iter()
        .map(|p| {
            json!({"choices": [{"index": 0, "delta": {"content": p}, "finish_reason": null}]})
                .to_string()
        })
        .collect();
    data.push(json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}).to_string());
    data.push(
        json!({"choices": [], "usage": {"prompt_tokens": input, "completion_tokens": output}})
            .to_string(),
    );
    data.push("[DONE]".into());
    data
}

/// What the server was asked.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A running fake provider; stops when dropped.
pub struct FakeProvider {
    server: Arc<tiny_http::Server>,
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeProvider {
    /// Serves `script` in order; when it runs out, the last reply again.
    pub fn start(script: Vec<Reply>) -> FakeProvider {
        FakeProvider::serve(script, false)
    }

    /// Serves reply `n` of `script` to a request carrying `n` earlier answers of the model
    /// (its `assistant` messages): an agent's turn asked again gets the same answer.
    pub fn by_turn(script: Vec<Reply>) -> FakeProvider {
        FakeProvider::serve(script, true)
    }

    fn serve(script: Vec<Reply>, by_turn: bool) -> FakeProvider {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind loopback"));
        let port = server
            .server_addr()
            .to_ip()
            .map(|a| a.port())
            .expect("a port");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (server2, seen2) = (Arc::clone(&server), Arc::clone(&seen));
        let thread = std::thread::spawn(move || {
            let mut next = 0;
            for mut request in server2.incoming_requests() {
                let mut body = String::new();
                let _ = request.as_reader().read_to_string(&mut body);
                let at = if by_turn {
                    serde_json::from_str::<Value>(&body)
                        .ok()
                        .and_then(|b| b["messages"].as_array().cloned())
                        .map_or(0, |m| m.iter().filter(|m| m["role"] == "assistant").count())
                } else {
                    next
                };
                seen2.lock().expect("seen").push(Seen {
                    method: request.method().to_string(),
                    path: request.url().to_string(),
                    headers: request
                        .headers()
                        .iter()
                        .map(|h| (h.field.to_string(), h.value.to_string()))
                        .collect(),
                    body: serde_json::from_str(&body).unwrap_or(Value::String(body)),
                });

                let Some(reply) = script.get(at).or(script.last()).cloned() else {
                    continue;
                };
                next += 1;
                // Each answer on a thread of its own, so that a slow one holds up no other.
                std::thread::spawn(move || {
                    std::thread::sleep(reply.delay);
                    let headers: Vec<tiny_http::Header> = reply
                        .headers
                        .iter()
                        .filter_map(|(n, v)| {
                            tiny_http::Header::from_bytes(n.as_bytes(), v.as_bytes()).ok()
                        })
                        .collect();
                    if let Some((events, gap)) = reply.events {
                        // Written by hand so that each event leaves at once (tiny_http's
                        // chunked writer would gather them).
                        let mut out = request.into_writer();
                        let _ = write!(
                            out,
                            "HTTP/1.1 {} OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
                            reply.status
                        );
                        let _ = out.flush();
                        for data in events {
                            std::thread::sleep(gap);
                            let event = format!("data: {data}\n\n");
                            let _ = write!(out, "{:x}\r\n{event}\r\n", event.len());
                            let _ = out.flush();
                        }
                        let _ = write!(out, "0\r\n\r\n");
                        let _ = out.flush();
                        return;
                    }
                    let mut response =
                        tiny_http::Response::from_string(reply.body).with_status_code(reply.status);
                    for header in headers {
                        response.add_header(header);
                    }
                    let _ = request.respond(response);
                });
            }
        });
        FakeProvider {
            server,
            port,
            seen,
            thread: Some(thread),
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen").clone()
    }
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
