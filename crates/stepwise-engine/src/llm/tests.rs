//! The shared round trip against a scripted server on loopback: which failures make it ask
//! again, and in which form, is decided by the error's kind, never by its words.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::{Value, json};
use stepwise_core::llm::{ChatMessage, LlmRequest, ModelSpec, Price, ProviderKind, Role};

use super::error::{ProviderError, Refusal};
use super::exchange::{self, Caller};
use super::http::Secret;
use super::protocol::Protocol;
use super::{Answer, anthropic::Anthropic, client, gemini::Gemini, openai::OpenAi};
use crate::progress::ProgressSink;

/// A request for model `tiny` of provider `p`, with `schema` as its output schema.
pub(super) fn request(schema: Option<Value>) -> LlmRequest {
    LlmRequest {
        model: "m".into(),
        spec: ModelSpec {
            provider: "p".into(),
            kind: ProviderKind::Openai,
            base_url: None,
            model: "tiny".into(),
            api_key_env: None,
            price: Price::default(),
            stream: false,
            timeout_s: None,
            idle_timeout_s: None,
            context_tokens: None,
        },
        messages: vec![ChatMessage::text(Role::User, "hello")],
        temperature: None,
        max_tokens: 10,
        output_schema: schema,
        timeout_ms: None,
        tools: Vec::new(),
    }
}

/// A server on loopback answering each request with the next of its script (status, JSON
/// body, or a stream of server-sent events), one connection per request, and keeping the
/// bodies it was sent.
pub(super) struct Scripted {
    pub(super) base: String,
    seen: Arc<Mutex<Vec<Value>>>,
}

/// What a scripted server answers with.
#[derive(Clone)]
pub(super) enum Body {
    Json(Value),
    /// Each string one event's data.
    Events(Vec<String>),
}

impl Scripted {
    fn start(script: Vec<(u16, Value)>) -> Scripted {
        Scripted::start_with(
            script
                .into_iter()
                .map(|(status, body)| (status, Body::Json(body)))
                .collect(),
        )
    }

    pub(super) fn start_with(script: Vec<(u16, Body)>) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let base = format!("http://{}/v1", listener.local_addr().expect("an address"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&seen);
        std::thread::spawn(move || {
            for (status, body) in script {
                let Ok((stream, _)) = listener.accept() else {
                    return;
                };
                let _ = answer(stream, status, &body, &kept);
            }
        });
        Scripted { base, seen }
    }

    pub(super) fn seen(&self) -> Vec<Value> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Reads one request and answers it; returns the request's body.
/// Reads a request, keeps its body (before answering, so that whoever got the answer finds
/// it kept), and answers.
fn answer(
    stream: TcpStream,
    status: u16,
    body: &Body,
    kept: &Mutex<Vec<Value>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut length = 0;
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
    let mut sent = vec![0; length];
    reader.read_exact(&mut sent)?;
    kept.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(serde_json::from_slice(&sent).unwrap_or(Value::Null));
    let (kind, text) = match body {
        Body::Json(body) => ("application/json", body.to_string()),
        Body::Events(events) => (
            "text/event-stream",
            events.iter().map(|e| format!("data: {e}\n\n")).collect(),
        ),
    };
    let mut out = stream;
    // `Retry-After: 0`, so that a retried answer costs no wait.
    write!(
        out,
        "HTTP/1.1 {status} X\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nretry-after: 0\r\nconnection: close\r\n\r\n{text}",
        text.len()
    )?;
    out.flush()
}

fn ok_reply() -> (u16, Value) {
    (
        200,
        json!({"choices": [{"message": {"content": "{\"n\": 1}"}, "finish_reason": "stop"}]}),
    )
}

fn schema() -> Option<Value> {
    Some(json!({"type": "object"}))
}

/// Makes `request` with `protocol` against `server`.
pub(super) async fn call<P: Protocol>(
    protocol: &P,
    server: &Scripted,
    request: &LlmRequest,
) -> Result<Answer, ProviderError> {
    let dir = tempfile::tempdir().expect("a directory");
    let client = client::client().expect("a client");
    let secret = Secret::from_env(None).expect("no key");
    let progress = ProgressSink::create(dir.path().join("progress"));
    let caller = Caller {
        client: &client,
        secret: &secret,
        progress: &progress,
        idle: Duration::from_secs(10),
    };
    let mut request = request.clone();
    request.spec.base_url = Some(server.base.clone());
    // As the executor makes it: the first form written ahead.
    let first = exchange::first_form(protocol, &request);
    exchange::call(protocol, &caller, &request, first).await
}

fn refusal(error: &ProviderError) -> Option<Refusal> {
    match error {
        ProviderError::Status { refusal, .. } => Some(*refusal),
        _ => None,
    }
}

#[tokio::test]
async fn a_form_refused_in_words_about_the_key_is_still_only_a_form() {
    // The words "API key" in the server's message once stopped the next form being tried.
    let server = Scripted::start(vec![
        (
            400,
            json!({"error": {"message": "this API key's plan cannot use response_format json_object"}}),
        ),
        ok_reply(),
    ]);
    let request = request(schema());
    let answer = call(&OpenAi { request: &request }, &server, &request)
        .await
        .expect("the next form is accepted");
    assert_eq!(answer.text, "{\"n\": 1}");
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0]["response_format"]["type"], "json_object");
    assert_eq!(seen[1]["response_format"]["type"], "json_schema");
}

#[tokio::test]
async fn a_refused_key_is_never_asked_again_in_another_form() {
    for (status, body) in [
        // Whatever the message says about the form.
        (
            401,
            json!({"error": {"message": "response_format (HTTP 400) is not supported"}}),
        ),
        // OpenAI-compatible servers name a bad key in the body, some with HTTP 400.
        (
            400,
            json!({"error": {"message": "Incorrect key", "code": "invalid_api_key"}}),
        ),
        (
            400,
            json!({"error": {"message": "no", "type": "authentication_error"}}),
        ),
    ] {
        let server = Scripted::start(vec![(status, body.clone()), ok_reply(), ok_reply()]);
        let request = request(schema());
        let error = call(&OpenAi { request: &request }, &server, &request)
            .await
            .err()
            .unwrap_or_else(|| panic!("{body}: answered"));
        assert_eq!(refusal(&error), Some(Refusal::Auth), "{body}: {error}");
        assert!(
            error
                .to_string()
                .contains(&format!("refused the API key (HTTP {status})")),
            "{error}"
        );
        assert_eq!(server.seen().len(), 1, "{body}: asked again");
    }
}

#[tokio::test]
async fn a_server_error_on_a_form_moves_on_and_on_the_last_form_is_retried() {
    // llama.cpp fails with 500 on a JSON form it does not know: the next form, at once.
    let server = Scripted::start(vec![(500, json!({"error": "no"})), ok_reply()]);
    let request = request(schema());
    call(&OpenAi { request: &request }, &server, &request)
        .await
        .expect("the next form is accepted");
    assert_eq!(server.seen().len(), 2);

    // With no form left to try, a failing server is asked again, up to four times.
    let server = Scripted::start(vec![(500, json!({"error": "boom"})); 4]);
    let request = super::tests::request(None);
    let error = call(&OpenAi { request: &request }, &server, &request)
        .await
        .err()
        .expect("fails");
    assert_eq!(refusal(&error), Some(Refusal::ServerFailed));
    assert_eq!(
        error.to_string(),
        format!(
            "provider `p` ({}) failed with HTTP 500 (4 attempts): boom",
            server.base
        )
    );
    assert_eq!(server.seen().len(), 4);
}

#[test]
fn each_protocol_reads_a_refused_key_from_its_own_error_body() {
    let request = request(None);
    let gemini = Gemini { request: &request };
    let bad_key = r#"{"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]}}"#;
    assert_eq!(gemini.classify_error((), 400, bad_key), Refusal::Auth);
    let bad_argument =
        r#"{"error": {"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"}}"#;
    assert_eq!(
        gemini.classify_error((), 400, bad_argument),
        Refusal::Rejected
    );

    let anthropic = Anthropic { request: &request };
    let overloaded =
        r#"{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}"#;
    assert_eq!(anthropic.classify_error((), 529, overloaded), Refusal::Busy);
    let denied = r#"{"type": "error", "error": {"type": "permission_error", "message": "no"}}"#;
    assert_eq!(anthropic.classify_error((), 400, denied), Refusal::Auth);
    // A body that is not JSON says nothing: the status alone counts.
    assert_eq!(
        anthropic.classify_error((), 500, "HOSTILE"),
        Refusal::ServerFailed
    );
}

#[test]
fn a_streamed_reply_is_the_sum_of_its_events_in_every_protocol() {
    let request = request(None);
    let openai = OpenAi { request: &request };
    let event = openai
        .parse_event(r#"{"choices": [{"delta": {"content": "Hi"}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}"#)
        .expect("an event")
        .expect("not the end");
    assert_eq!(event.text, "Hi");
    assert_eq!(event.finish_reason.as_deref(), Some("stop"));
    assert_eq!(
        (event.input_tokens, event.output_tokens),
        (Some(3), Some(1))
    );
    assert_eq!(openai.parse_event(" [DONE] "), Ok(None));
    let error = openai
        .parse_event(r#"{"error": {"message": "context length exceeded"}}"#)
        .expect_err("an error");
    assert!(error.0.contains("context length exceeded"), "{error:?}");

    let anthropic = Anthropic { request: &request };
    let start = anthropic
        .parse_event(r#"{"type": "message_start", "message": {"usage": {"input_tokens": 9}}}"#)
        .expect("an event")
        .expect("not the end");
    assert_eq!((start.input_tokens, start.output_tokens), (Some(9), None));

    let gemini = Gemini { request: &request };
    let usage_only = gemini
        .parse_event(r#"{"usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 2}}"#)
        .expect("an event")
        .expect("not the end");
    assert_eq!(usage_only.text, "");
    assert_eq!(
        (usage_only.input_tokens, usage_only.output_tokens),
        (Some(4), Some(2))
    );
}

/// What the executor is given for operation 2 of run `r`, whose request is recorded when
/// `recorded` says so (cancelled when `cancel`'s sender says so or is dropped).
fn op_context(
    workspace: crate::sandbox::Workspace,
    lock_dir: &std::path::Path,
    recorded: crate::exec::Recorded,
    cancel: tokio::sync::watch::Receiver<bool>,
) -> crate::exec::OpContext {
    let run_id = stepwise_core::ids::RunId::from("r");
    crate::exec::OpContext {
        workspace: Arc::new(workspace),
        commands_lock: Arc::new(crate::lock::CommandsLock::new(lock_dir, &run_id)),
        run_id,
        op: stepwise_core::ids::EventSeq::new(2),
        step: stepwise_core::ids::StepId::from("ask"),
        lock_dir: lock_dir.to_path_buf(),
        cancel,
        recovering: false,
        recorded,
        checkpoint: None,
        engine: std::sync::Weak::new(),
    }
}

#[tokio::test]
async fn a_call_written_while_its_request_commits_is_sent_only_once_it_is_durable() {
    use crate::exec::{Commit, Executor};
    use stepwise_core::operation::OperationRequest;

    let server = Scripted::start(vec![ok_reply()]);
    let mut asked = request(None);
    asked.spec.base_url = Some(server.base.clone());
    let asked = OperationRequest::LlmCall(Arc::new(asked));
    let locks = tempfile::tempdir().expect("a directory");
    let executor = super::LlmCall::new();
    let (_keep, cancel) = tokio::sync::watch::channel(false);

    let (commit, recorded) = Commit::new();
    let (_ws_dir, workspace) = crate::sandbox::temp_workspace();
    let call = tokio::spawn(executor.perform(
        op_context(workspace, locks.path(), recorded, cancel.clone()),
        asked.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        server.seen(),
        Vec::<Value>::new(),
        "sent before it was recorded"
    );
    commit.done();
    let outcome = call.await.expect("the call's task");
    assert!(outcome.is_ok(), "{outcome:?}");
    assert_eq!(server.seen().len(), 1);

    // A commit that failed: the call is never made.
    let (failed, recorded) = Commit::new();
    let (_ws_dir, workspace) = crate::sandbox::temp_workspace();
    let call = tokio::spawn(executor.perform(
        op_context(workspace, locks.path(), recorded, cancel.clone()),
        asked,
    ));
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(failed);
    let error = call
        .await
        .expect("the call's task")
        .expect_err("a call whose request is not recorded");
    assert_eq!(
        error.message,
        "the call to model `m` was not made: its request could not be recorded"
    );
    assert_eq!(server.seen().len(), 1, "a request never recorded was sent");
}
