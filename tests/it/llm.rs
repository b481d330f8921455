//! Model steps against providers on loopback speaking each protocol: what is sent and
//! recorded, every error path, structured output, budgets, keys that never leak, and replay
//! and resume that ask nothing of a server.

use std::time::Duration;

use serde_json::json;

use crate::fake_llm::{FakeProvider, KEY_VAR, Reply, env_with_fake_provider, openai_reply};
use crate::support::{Env, of_type, step};

const KEY: &str = "sk-planted-7f3a9c2e1d";

/// An environment whose settings name one provider (`kind`, at `base_url`) with a key, and
/// model `m` on it priced at $1 / $2 per million tokens.
pub(crate) fn env_with_provider(kind: &str, base_url: &str) -> Env {
    env_with_fake_provider(kind, base_url, KEY, "", PRICE_1_2)
}

/// $1 per million input tokens, $2 per million output tokens, as a model's settings line.
pub(crate) const PRICE_1_2: &str =
    "    price: { input_per_mtok_usd: 1.0, output_per_mtok_usd: 2.0 }\n";

fn prompt_workflow(env: &Env) -> std::path::PathBuf {
    env.workflow(
        "ask.yaml",
        "name: ask\nsteps:\n  - id: ask\n    type: prompt\n    model: m\n    system: Be brief.\n    prompt: \"Say hi to ${inputs.who}\"\n    temperature: 0\n    max_tokens: 50\ninputs:\n  who: {type: string, default: Ada}\n",
    )
}

/// Every byte of the database files, as text.
fn database_text(env: &Env) -> String {
    ["", "-wal", "-shm"]
        .iter()
        .filter_map(|suffix| std::fs::read(format!("{}{suffix}", env.db.display())).ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .collect()
}

#[test]
fn an_openai_call_is_sent_recorded_and_costed_and_the_key_stays_secret() {
    let server = FakeProvider::start(vec![openai_reply("Hi Ada!", 21, 4)]);
    let mut env = env_with_provider("openai", &server.base_url());
    env.vars.push(("STEPWISE_LOG".into(), "debug".into()));
    let out = env.run(&prompt_workflow(&env), &[]);
    assert_eq!(out.code, 0, "{out}");
    let run = out.run_id();

    // The wire: the chat completions endpoint, the key as a bearer token, the exact messages.
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, "/v1/chat/completions");
    assert_eq!(
        seen[0].header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(seen[0].body["model"], "tiny-1");
    assert_eq!(seen[0].body["max_tokens"], 50);
    assert_eq!(seen[0].body["temperature"], 0.0);
    assert_eq!(
        seen[0].body["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi to Ada"}])
    );

    // The record: the request with the model as resolved, the reply with usage and cost.
    let show = env.show(&run);
    let output = &step(&show, "ask")["output"];
    assert_eq!(output["text"], "Hi Ada!");
    assert_eq!(
        output["usage"],
        json!({"input_tokens": 21, "output_tokens": 4})
    );
    assert_eq!(
        output["cost_micro_usd"], 29,
        "21 × $1/M + 4 × $2/M, rounded up"
    );
    let events = env.events(&run);
    let started = of_type(&events, "OperationStarted");
    assert_eq!(started[0]["data"]["request"]["kind"], "llm_call");
    assert_eq!(
        started[0]["data"]["request"]["spec"]["api_key_env"],
        KEY_VAR
    );
    let cost = env.stepwise(&["cost", &run, "--json"]).json();
    assert_eq!(cost["total_micro_usd"], 29);
    assert_eq!(cost["input_tokens"], 21);
    assert_eq!(cost["output_tokens"], 4);
    assert_eq!(cost["by_step"][0]["step"], "ask");
    assert_eq!(cost["by_model"][0]["model"], "m");
    let runs = env.stepwise(&["runs", "--json"]).json();
    assert_eq!(runs[0]["cost_micro_usd"], 29);
    assert!(env.stepwise(&["runs"]).stdout.contains("$0.000029"));

    // The key: nowhere in the database, the output or the logs.
    assert!(
        !database_text(&env).contains(KEY),
        "the key is in the database"
    );
    assert!(
        !out.stdout.contains(KEY) && !out.stderr.contains(KEY),
        "{out}"
    );
    for args in [
        vec!["events", run.as_str()],
        vec!["show", run.as_str()],
        vec!["approvals"],
    ] {
        let listed = env.stepwise(&args);
        assert!(
            !listed.stdout.contains(KEY) && !listed.stderr.contains(KEY),
            "{args:?}"
        );
    }
}

#[test]
fn a_busy_provider_is_retried_as_it_says_and_then_answers() {
    let server = FakeProvider::start(vec![
        Reply::json(429, json!({"error": {"message": "slow down"}}))
            .with_header("Retry-After", "0"),
        Reply::json(503, json!({"error": "overloaded"})),
        openai_reply("fine", 5, 1),
    ]);
    let env = env_with_provider("openai", &server.base_url());
    let out = env.run(&prompt_workflow(&env), &[]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(server.seen().len(), 3);
    let events = env.events(&out.run_id());
    let reply = &of_type(&events, "OperationSucceeded")[0]["data"]["result"];
    assert_eq!(reply["attempts"], 3);
}

#[test]
fn provider_errors_fail_the_step_in_words_without_the_key() {
    let cases = [
        (
            Reply::json(401, json!({"error": {"message": format!("bad key {KEY}")}})),
            "refused the API key (HTTP 401)",
            1,
        ),
        (
            Reply::json(404, json!({"error": {"message": "model tiny-1 not found"}})),
            "does not know this model",
            1,
        ),
        (
            Reply::json(400, json!({"error": {"message": "max_tokens too large"}})),
            "refused the request (HTTP 400): max_tokens too large",
            1,
        ),
        (
            Reply::json(500, json!({"error": "boom"})),
            "failed with HTTP 500 (4 attempts)",
            4,
        ),
        (
            Reply::json(200, json!({"unexpected": true})),
            "malformed answer",
            1,
        ),
    ];
    for (reply, expected, requests) in cases {
        let server = FakeProvider::start(vec![reply]);
        let env = env_with_provider("openai", &server.base_url());
        let out = env.run(&prompt_workflow(&env), &[]);
        assert_eq!(out.code, 1, "{expected}: {out}");
        let show = env.show(&out.run_id());
        let error = step(&show, "ask")["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(error.contains(expected), "{expected}: {error}");
        assert!(!error.contains(KEY), "the key is in the error: {error}");
        assert!(
            !database_text(&env).contains(KEY),
            "{expected}: the key is in the database"
        );
        assert_eq!(server.seen().len(), requests, "{expected}");
    }

    // Unreachable: nothing listens there.
    let env = env_with_provider("openai", "http://127.0.0.1:9/v1");
    let out = env.run(&prompt_workflow(&env), &[]);
    assert_eq!(out.code, 1, "{out}");
    let error = step(&env.show(&out.run_id()), "ask")["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(error.contains("could not reach provider `fake`"), "{error}");

    // No key in the environment.
    let server = FakeProvider::start(vec![openai_reply("x", 1, 1)]);
    let mut env = env_with_provider("openai", &server.base_url());
    env.vars.clear();
    let out = env.run(&prompt_workflow(&env), &[]);
    let error = step(&env.show(&out.run_id()), "ask")["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        error.contains(&format!("`{KEY_VAR}` is not set")),
        "{error}"
    );
    assert!(server.seen().is_empty());
}

#[test]
fn structured_output_is_asked_in_json_mode_validated_and_asked_again_when_wrong() {
    let server = FakeProvider::start(vec![
        openai_reply("I think it is a bug", 30, 6),
        openai_reply("{\"label\": \"question\"}", 60, 5),
        openai_reply(
            "```json\n{\"label\": \"bug\", \"why\": \"crash\"}\n```",
            90,
            9,
        ),
    ]);
    let env = env_with_provider("openai", &server.base_url());
    let wf = env.workflow(
        "triage.yaml",
        "name: triage\nsteps:\n  - id: classify\n    type: analyze\n    model: m\n    prompt: \"Classify: the app crashes\"\n    output_schema:\n      type: object\n      required: [label]\n      properties:\n        label: {enum: [bug, feature]}\n  - id: use\n    type: set\n    needs: [classify]\n    values: {label: \"${steps.classify.output.label}\"}\n",
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 0, "{out}");
    let show = env.show(&out.run_id());
    assert_eq!(step(&show, "use")["output"]["label"], "bug");
    assert_eq!(step(&show, "classify")["output"]["why"], "crash");
    let seen = server.seen();
    assert_eq!(seen.len(), 3);
    // llama.cpp's JSON mode with the schema (a local server is asked that form first).
    assert_eq!(seen[0].body["response_format"]["type"], "json_object");
    assert_eq!(
        seen[0].body["response_format"]["schema"]["required"],
        json!(["label"])
    );
    // Each retry carries the bad reply and what was wrong with it.
    let retry = seen[2].body["messages"]
        .as_array()
        .expect("messages")
        .clone();
    let feedback = retry.last().expect("a message")["content"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(feedback.contains("/label"), "{feedback}");
    assert_eq!(retry.len(), 5, "prompt, reply, feedback, reply, feedback");
    // Three calls, all costed.
    let cost = env.stepwise(&["cost", &out.run_id(), "--json"]).json();
    assert_eq!(cost["calls"], 3);
}

#[test]
fn a_server_that_rejects_one_json_form_is_asked_in_the_next() {
    let server = FakeProvider::start(vec![
        Reply::json(
            500,
            json!({"error": {"message": "Unrecognized response_format"}}),
        ),
        openai_reply("{\"n\": 3}", 10, 3),
    ]);
    let env = env_with_provider("openai", &server.base_url());
    let wf = env.workflow(
        "n.yaml",
        "name: n\nsteps:\n  - id: n\n    type: prompt\n    model: m\n    prompt: three\n    output_schema: {type: object, required: [n], properties: {n: {type: integer}}}\n",
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 0, "{out}");
    let seen = server.seen();
    assert_eq!(
        seen.len(),
        2,
        "one try per form, no retries of a form the server refuses"
    );
    assert_eq!(seen[0].body["response_format"]["type"], "json_object");
    assert_eq!(seen[1].body["response_format"]["type"], "json_schema");
}

/// What a refusal means is read from the server's status and body, never from the words
/// Stepwise makes of them: a JSON form refused in words that mention the key is still a form
/// to move on from, and a key refused with HTTP 400 is not offered every other form in turn.
#[test]
fn a_refused_form_and_a_refused_key_are_told_apart_by_kind_not_by_words() {
    let structured = "name: n\nsteps:\n  - id: n\n    type: prompt\n    model: m\n    prompt: three\n    output_schema: {type: object, required: [n], properties: {n: {type: integer}}}\n";
    let server = FakeProvider::start(vec![
        Reply::json(
            400,
            json!({"error": {"message": "this API key's plan cannot use response_format"}}),
        ),
        openai_reply("{\"n\": 3}", 10, 3),
    ]);
    let env = env_with_provider("openai", &server.base_url());
    let out = env.run(&env.workflow("n.yaml", structured), &[]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(server.seen().len(), 2, "the next form was asked");

    let cases = [
        (
            "openai",
            json!({"error": {"message": "Incorrect key provided", "code": "invalid_api_key"}}),
        ),
        (
            "gemini",
            json!({"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT",
                "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]}}),
        ),
    ];
    for (kind, body) in cases {
        let server = FakeProvider::start(vec![
            Reply::json(400, body),
            openai_reply("{\"n\": 3}", 10, 3),
        ]);
        let env = env_with_provider(kind, &server.base_url());
        let out = env.run(&env.workflow("n.yaml", structured), &[]);
        assert_eq!(out.code, 1, "{kind}: {out}");
        let error = step(&env.show(&out.run_id()), "n")["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            error.contains("refused the API key (HTTP 400)"),
            "{kind}: {error}"
        );
        assert_eq!(server.seen().len(), 1, "{kind}: asked again");
    }
}

#[test]
fn a_call_that_would_cross_the_budget_waits_and_is_made_only_once_approved() {
    let server = FakeProvider::start(vec![openai_reply("ok", 10, 2)]);
    let env = env_with_provider("openai", &server.base_url());
    let wf = env.workflow(
        "budget.yaml",
        // 1,000 reply tokens at $2/M is $0.002: more than the $0.001 budget.
        "name: budget\nbudget: { usd: 0.001 }\nsteps:\n  - id: ask\n    type: prompt\n    model: m\n    prompt: hello\n    max_tokens: 1000\n",
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 3, "{out}");
    let run = out.run_id();
    assert!(server.seen().is_empty(), "no request before the approval");
    let waiting = env.approvals();
    assert_eq!(waiting[0]["approval"]["proposal"]["kind"], "llm_call");
    let reason = waiting[0]["approval"]["reason"]
        .as_str()
        .unwrap_or_default();
    assert!(
        reason.contains("over budget") && reason.contains("$0.001"),
        "{reason}"
    );

    let approved = env.approve(&run, "ask", &[]);
    assert_eq!(approved.code, 0, "{approved}");
    assert_eq!(server.seen().len(), 1);
    let cost = env.stepwise(&["cost", &run, "--json"]).json();
    assert!(
        cost["budget"]["micro_usd"].as_u64().unwrap_or(0) > 1_000,
        "raised: {cost}"
    );

    // --budget-usd overrides the workflow's, and a rejection stops the step.
    let out = env.run(&wf, &["--budget-usd", "0.0001"]);
    assert_eq!(out.code, 3, "{out}");
    let rejected = env.reject(&out.run_id(), "ask", "too dear");
    assert_eq!(rejected.code, 1, "{rejected}");
    assert_eq!(server.seen().len(), 1, "a rejected call is never made");
}

#[test]
fn replay_and_resume_answer_from_the_log_and_ask_no_server() {
    let server = FakeProvider::start(vec![openai_reply("Hi Ada!", 21, 4)]);
    let env = env_with_provider("openai", &server.base_url());
    let wf = env.workflow(
        "gated.yaml",
        "name: gated\nsteps:\n  - id: ask\n    type: prompt\n    model: m\n    prompt: hi\n  - id: gate\n    type: approval\n    needs: [ask]\n    message: \"${steps.ask.output.text}\"\n",
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 3, "{out}");
    let run = out.run_id();
    drop(server); // Nothing listens any more.

    let replayed = env.stepwise(&["replay", &run, "--json"]);
    assert_eq!(replayed.code, 0, "{replayed}");
    assert_eq!(replayed.json()["matches"], true);

    let approved = env.approve(&run, "gate", &[]);
    assert_eq!(approved.code, 0, "{approved}");
    let events = env.events(&run);
    assert_eq!(
        of_type(&events, "OperationStarted").len(),
        1,
        "the call was not made again"
    );
    let replayed = env.stepwise(&["replay", &run, "--json"]);
    assert_eq!(replayed.json()["matches"], true, "{replayed}");
}

#[test]
fn anthropic_and_gemini_speak_their_own_protocols() {
    let anthropic = FakeProvider::start(vec![Reply::json(
        200,
        json!({"content": [{"type": "text", "text": "Hello from Claude"}], "stop_reason": "end_turn", "usage": {"input_tokens": 12, "output_tokens": 5}}),
    )]);
    let base = format!("http://127.0.0.1:{}", anthropic.port);
    let env = env_with_provider("anthropic", &base);
    let out = env.run(&prompt_workflow(&env), &[]);
    assert_eq!(out.code, 0, "{out}");
    let seen = anthropic.seen();
    assert_eq!(seen[0].path, "/v1/messages");
    assert_eq!(seen[0].header("x-api-key"), Some(KEY));
    assert!(seen[0].header("anthropic-version").is_some());
    assert_eq!(seen[0].body["system"], "Be brief.");
    assert_eq!(
        seen[0].body["messages"],
        json!([{"role": "user", "content": "Say hi to Ada"}])
    );
    let show = env.show(&out.run_id());
    let output = &step(&show, "ask")["output"];
    assert_eq!(output["text"], "Hello from Claude");
    assert_eq!(output["cost_micro_usd"], 22);

    let gemini = FakeProvider::start(vec![Reply::json(
        200,
        json!({"candidates": [{"content": {"parts": [{"text": "Hello from Gemini"}], "role": "model"}, "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 3}}),
    )]);
    let base = format!("http://127.0.0.1:{}/v1beta", gemini.port);
    let env = env_with_provider("gemini", &base);
    let out = env.run(&prompt_workflow(&env), &[]);
    assert_eq!(out.code, 0, "{out}");
    let seen = gemini.seen();
    assert_eq!(
        seen[0].path,
        "/v1beta/models/tiny-1:streamGenerateContent?alt=sse"
    );
    assert_eq!(seen[0].header("x-goog-api-key"), Some(KEY));
    assert!(!seen[0].path.contains(KEY), "the key is never in the URL");
    assert_eq!(
        seen[0].body["contents"][0]["parts"][0]["text"],
        "Say hi to Ada"
    );
    assert_eq!(
        seen[0].body["systemInstruction"]["parts"][0]["text"],
        "Be brief."
    );
    let show = env.show(&out.run_id());
    let output = &step(&show, "ask")["output"];
    assert_eq!(output["text"], "Hello from Gemini");
}

#[test]
fn a_model_the_settings_do_not_define_is_invalid_input_naming_where_it_looked() {
    let env = Env::new();
    let out = env.run(&prompt_workflow(&env), &[]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("model `m`"), "{out}");
    assert!(out.stderr.contains("settings.yaml"), "{out}");
    assert_eq!(env.run_count(), 0);
}

#[test]
fn a_call_cut_off_by_a_crash_is_made_again_and_says_so() {
    // The first request hangs until the engine is killed; the second is answered.
    let server = FakeProvider::start(vec![
        openai_reply("late", 1, 1).after(Duration::from_secs(30)),
        openai_reply("again", 3, 2),
    ]);
    let env = env_with_provider("openai", &server.base_url());
    let engine = env.spawn_run(&prompt_workflow(&env));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.seen().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the call never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    engine.kill();
    let run = env.database.first_run_id().expect("the run");

    // No person is asked: a call has no effect on the world, so it is simply made again.
    let resumed = env.stepwise(&["resume", &run]);
    assert_eq!(resumed.code, 0, "{resumed}");
    assert_eq!(server.seen().len(), 2);
    let show = env.show(&run);
    assert_eq!(step(&show, "ask")["output"]["text"], "again");
    let events = env.events(&run);
    assert!(of_type(&events, "OperationOutcomeUnknown").is_empty());
    let reply = &of_type(&events, "OperationSucceeded")[0]["data"]["result"];
    assert_eq!(reply["after_crash"], true);
    let cost = env.stepwise(&["cost", &run]);
    assert!(cost.stdout.contains("made again after a crash"), "{cost}");
}
