//! An agent step against a model server on loopback that answers at once, each turn calling
//! `read_file` on a small file: what the engine adds to each tool call (deciding, recording,
//! reading, building the next request), next to the floors of one durable commit and one HTTP
//! round trip to the same server, measured in the same process; and next to the store's append
//! of exactly what each call recorded, taken from the run's own log.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use stepwise_core::event::Event;
use stepwise_core::operation::OperationRequest;
use stepwise_engine::Durability;
use stepwise_store::NewEvent;

use crate::bench::{Bench, count, median, micros, us};
use crate::floors::{append_each, commit_floor_steady};
use crate::{BenchResult, Lines, Sizes};

/// A model server on loopback: `/floor` answers a small JSON body; the chat completions answer
/// a call of `read_file` for `turns - 1` requests, then a final text, and again.
pub(crate) struct Loopback {
    pub(crate) base: String,
    /// The chat requests' bodies: their bytes in all, and how many.
    chat_bytes: Arc<AtomicUsize>,
    chats: Arc<AtomicUsize>,
}

impl Loopback {
    pub(crate) fn start(turns: usize) -> BenchResult<Loopback> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let base = format!("http://{}", listener.local_addr()?);
        let asked = Arc::new(AtomicUsize::new(0));
        let chat_bytes = Arc::new(AtomicUsize::new(0));
        let chats = Arc::new(AtomicUsize::new(0));
        let (bytes, count) = (Arc::clone(&chat_bytes), Arc::clone(&chats));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let asked = Arc::clone(&asked);
                let (bytes, count) = (Arc::clone(&bytes), Arc::clone(&count));
                // A thread per connection: a client may keep one open while it opens another.
                std::thread::spawn(move || answer(stream, turns, &asked, (&bytes, &count)));
            }
        });
        Ok(Loopback {
            base,
            chat_bytes,
            chats,
        })
    }

    /// The mean size of the chat requests' bodies since the last call, in bytes.
    pub(crate) fn take_mean_request_bytes(&self) -> usize {
        let bytes = self.chat_bytes.swap(0, Ordering::Relaxed);
        let chats = self.chats.swap(0, Ordering::Relaxed);
        bytes / chats.max(1)
    }
}

fn answer(
    stream: TcpStream,
    turns: usize,
    asked: &AtomicUsize,
    (bytes, chats): (&AtomicUsize, &AtomicUsize),
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    // Requests on one connection, one after another, while the client keeps it.
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let floor = request_line.contains("/floor");
        if !floor {
            bytes.fetch_add(length, Ordering::Relaxed);
            chats.fetch_add(1, Ordering::Relaxed);
        }
        let reply = if floor {
            json!({"ok": true})
        } else if (asked.fetch_add(1, Ordering::Relaxed) + 1).is_multiple_of(turns) {
            json!({"choices": [{"message": {"role": "assistant", "content": "done"}, "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 10, "completion_tokens": 1}})
        } else {
            json!({"choices": [{"message": {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "c", "type": "function", "function": {"name": "read_file", "arguments": "{\"path\": \"input.txt\"}"}}]},
                    "finish_reason": "tool_calls"}],
                   "usage": {"prompt_tokens": 10, "completion_tokens": 5}})
        };
        let text = reply.to_string();
        write!(
            out,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
            text.len()
        )?;
        out.flush()?;
    }
}

/// One HTTP round trip to the loopback server, as the engine's client makes it (a kept
/// connection, a JSON body of `body_bytes` going, a small one coming back): the model's part
/// of a turn, which must at least read the prompt.
pub(crate) async fn http_floor(base: &str, n: usize, body_bytes: usize) -> BenchResult<Duration> {
    let client = reqwest::Client::builder().no_proxy().build()?;
    let url = format!("{base}/floor");
    let body = json!({ "x": "x".repeat(body_bytes.saturating_sub(8)) });
    let mut began = Instant::now();
    // The first, not counted, opens the connection.
    for i in 0..=n {
        if i == 1 {
            began = Instant::now();
        }
        client.post(&url).json(&body).send().await?.bytes().await?;
    }
    Ok(began.elapsed() / count(n))
}

/// How an agent step's run went.
pub(crate) struct AgentRun {
    /// Its operating time per tool call.
    pub(crate) per_call: Duration,
    pub(crate) commits: u64,
    /// What each tool call committed, as the log holds it: the model's reply, the read it
    /// asked for and its result, and the next model call's request (the conversation so far).
    pub(crate) call_commits: Vec<Vec<NewEvent>>,
}

/// An agent step of `turns` model turns, each but the last calling `read_file`.
pub(crate) async fn agent_per_call(
    durability: Durability,
    server: &Loopback,
    turns: usize,
) -> BenchResult<AgentRun> {
    let settings = format!(
        "providers:\n  loop:\n    kind: openai\n    base_url: {}/v1\n    stream: false\nmodels:\n  m:\n    provider: loop\n    model: tiny\n",
        server.base
    );
    let bench = Bench::open_with(durability, false, Some(&settings))?;
    let workflow = format!(
        "name: agent\nsteps:\n  - id: a\n    type: agent\n    model: m\n    instructions: Read input.txt again and again.\n    tools: [read_file]\n    max_turns: {turns}\n"
    );
    let ran = bench.run_to_end("agent", &workflow).await?;
    let calls = turns.saturating_sub(1).max(1);
    let loaded = bench.engine.load_run(ran.run_id.as_str()).await?;
    Ok(AgentRun {
        per_call: ran.operating / count(calls),
        commits: ran.commits,
        call_commits: call_commits(&loaded.events),
    })
}

/// The log cut after each model call's request: what lies between two requests is what one
/// tool call committed (the first piece starts the run, the last ends it: neither is a call).
fn call_commits(events: &[(stepwise_store::StoredEvent, Event)]) -> Vec<Vec<NewEvent>> {
    let mut pieces = vec![Vec::new()];
    for (stored, event) in events {
        if let Some(piece) = pieces.last_mut() {
            piece.push(NewEvent::from(stored.clone()));
        }
        if let Event::OperationStarted {
            request: OperationRequest::LlmCall(_),
            ..
        } = event
        {
            pieces.push(Vec::new());
        }
    }
    pieces.pop();
    if !pieces.is_empty() {
        pieces.remove(0);
    }
    pieces
}

/// An agent step whose model (a loopback server answering at once) calls `read_file` at each
/// turn: what the engine adds to a tool call beyond the model's HTTP round trip and one
/// durable commit, and beyond that round trip and the store's append of what the call
/// recorded, all measured in the same run.
pub(crate) async fn agent_calls(durability: Durability, sizes: Sizes) -> BenchResult<Lines> {
    let turns = sizes.agent_turns;
    let server = Loopback::start(turns)?;
    let mut per_call = Vec::new();
    let mut https = Vec::new();
    let mut commits = Vec::new();
    let mut beyond = Vec::new();
    let mut recordings = Vec::new();
    let mut beyond_recording = Vec::new();
    let mut commits_per_call = 0.0;
    let mut request_bytes = 0;
    for _ in 0..sizes.rounds {
        server.take_mean_request_bytes();
        let ran = agent_per_call(durability, &server, turns).await?;
        let p = ran.per_call;
        // The model's round trip with a prompt as large as the turns' on average.
        request_bytes = server.take_mean_request_bytes();
        let http = http_floor(&server.base, turns, request_bytes).await?;
        let commit = commit_floor_steady(durability, turns)?;
        let recording = append_each(durability, &ran.call_commits)?;
        per_call.push(p);
        https.push(http);
        commits.push(commit);
        recordings.push(recording);
        beyond.push(micros(p) - micros(http + commit));
        beyond_recording.push(micros(p) - micros(http + recording));
        commits_per_call = ran.commits as f64 / (turns.saturating_sub(1).max(1)) as f64;
    }
    Ok(vec![
        (
            format!(
                "agent step, {turns} turns each calling read_file: per tool call (steady state)"
            ),
            us(median(per_call)),
        ),
        (
            "  beyond one HTTP round trip and one durable commit (target ≤ +200 µs at FULL)".into(),
            format!("{:+} µs", median(beyond)),
        ),
        (
            format!(
                "  the HTTP round trip it is judged against (loopback, kept connection, a {request_bytes}-byte request: the turns' mean)"
            ),
            us(median(https)),
        ),
        (
            "  the commit it is judged against (a log at its steady size)".into(),
            us(median(commits)),
        ),
        (
            "  commits per tool call".into(),
            format!("{commits_per_call:.2}"),
        ),
        (
            "  the store's append of what each call recorded (its reply, read and next request, from the run's log; steady log)".into(),
            us(median(recordings)),
        ),
        (
            "  beyond one HTTP round trip and that append".into(),
            format!("{:+} µs", median(beyond_recording)),
        ),
    ])
}
