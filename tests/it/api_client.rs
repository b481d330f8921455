//! A client of the local API for the tests: `stepwise serve` started with the test's database
//! and an XDG runtime directory of its own (where the token file is made), and requests with
//! or without the token, over reqwest (which the workspace already builds).

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Background, Env, Lines};

/// A running `stepwise serve`.
pub struct Server {
    pub process: Background,
    /// Its standard output, read on (so that it never blocks on a full pipe).
    pub _lines: Lines,
    pub api: Api,
    pub token_file: PathBuf,
}

/// Starts `stepwise serve --port 0 --json --workspace WS` and reads where it listens.
pub fn serve(env: &mut Env) -> Server {
    let runtime_dir = env.root().join("run");
    // As the XDG spec has it: the user's own, closed to others.
    std::fs::create_dir_all(&runtime_dir).expect("a runtime dir");
    std::fs::set_permissions(
        &runtime_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("chmod 700");
    env.vars
        .push(("XDG_RUNTIME_DIR".into(), runtime_dir.display().to_string()));
    let ws = env.ws.display().to_string();
    let (process, lines) = env.spawn_piped(&["serve", "--port", "0", "--json", "--workspace", &ws]);
    let (_, first) = lines
        .next(Duration::from_secs(30))
        .expect("stepwise serve says where it listens");
    let said: Value = serde_json::from_str(&first).expect("a JSON line");
    let token_file = PathBuf::from(said["token_file"].as_str().expect("token_file"));
    assert_eq!(token_file, runtime_dir.join("stepwise").join("token"));
    let token = std::fs::read_to_string(&token_file)
        .expect("the token file")
        .trim()
        .to_string();
    let url = said["url"].as_str().expect("url").to_string();
    Server {
        process,
        _lines: lines,
        api: Api::new(&url, Some(&token)),
        token_file,
    }
}

/// Requests to one server.
pub struct Api {
    pub url: String,
    pub token: Option<String>,
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

/// An answer: its status, headers and body (JSON when it is JSON, else its text as a string).
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Api {
    pub fn new(url: &str, token: Option<&str>) -> Api {
        Api {
            url: url.to_string(),
            token: token.map(str::to_string),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("an HTTP client"),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime"),
        }
    }

    /// The same server with another token (or none).
    pub fn with_token(&self, token: Option<&str>) -> Api {
        Api::new(&self.url, token)
    }

    pub fn get(&self, path: &str) -> Reply {
        self.send(reqwest::Method::GET, path, None, &[])
    }

    pub fn post(&self, path: &str, body: Value) -> Reply {
        self.send(reqwest::Method::POST, path, Some(body), &[])
    }

    /// Any request, with extra headers.
    pub fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let url = format!("{}{path}", self.url);
        self.runtime.block_on(async {
            let mut request = self.http.request(method, &url);
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request
                .send()
                .await
                .unwrap_or_else(|e| panic!("{url}: {e}"));
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let text = response.text().await.unwrap_or_default();
            let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
            Reply {
                status,
                headers,
                body,
            }
        })
    }

    /// Opens a server-sent event stream: its events (name, data, when it arrived) come on the
    /// receiver as they arrive, read by a thread of their own; the status it answered with
    /// first.
    pub fn stream(&self, path: &str) -> (u16, mpsc::Receiver<SseEvent>) {
        let url = format!("{}{path}", self.url);
        let token = self.token.clone();
        let (tx, rx) = mpsc::channel();
        let (status_tx, status_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                use futures_util::StreamExt;
                let mut request = reqwest::Client::new().get(&url);
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                let Ok(response) = request.send().await else {
                    let _ = status_tx.send(0);
                    return;
                };
                let _ = status_tx.send(response.status().as_u16());
                let mut body = response.bytes_stream();
                let mut pending = String::new();
                while let Some(Ok(chunk)) = body.next().await {
                    pending.push_str(&String::from_utf8_lossy(&chunk));
                    while let Some(end) = pending.find("\n\n") {
                        let frame: String = pending.drain(..end + 2).collect();
                        if let Some(event) = SseEvent::parse(&frame)
                            && tx.send(event).is_err()
                        {
                            return;
                        }
                    }
                }
            });
        });
        let status = status_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the stream answers");
        (status, rx)
    }
}

/// One server-sent event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub name: String,
    pub id: Option<String>,
    pub data: Value,
    pub at: Instant,
}

impl SseEvent {
    fn parse(frame: &str) -> Option<SseEvent> {
        let mut name = "message".to_string();
        let mut id = None;
        let mut data = String::new();
        for line in frame.lines() {
            if let Some(value) = line.strip_prefix("event:") {
                name = value.trim().to_string();
            } else if let Some(value) = line.strip_prefix("id:") {
                id = Some(value.trim().to_string());
            } else if let Some(value) = line.strip_prefix("data:") {
                data.push_str(value.trim_start());
            }
        }
        if data.is_empty() {
            return None; // a keep-alive comment
        }
        Some(SseEvent {
            name,
            id,
            data: serde_json::from_str(&data).unwrap_or(Value::String(data)),
            at: Instant::now(),
        })
    }
}

/// Waits (up to `limit`) for an event that satisfies `wanted`.
pub fn next_event(
    events: &mpsc::Receiver<SseEvent>,
    limit: Duration,
    wanted: impl Fn(&SseEvent) -> bool,
) -> Option<SseEvent> {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = events.recv_timeout(left).ok()?;
        if wanted(&event) {
            return Some(event);
        }
    }
}
