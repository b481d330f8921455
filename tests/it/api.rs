//! The local HTTP API (`stepwise serve`) from a client, as an editor or script uses it: every
//! endpoint with the user's token; refusals without it, with a wrong one, from a browser
//! origin or for another host; approvals delivered live as server-sent events; and the
//! OpenAPI document valid (checked by a real OpenAPI validator) and matching what is served.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::api_client::{Api, next_event, serve};
use crate::support::Env;

/// An edit and a command, both asked about (the default policy), then a step that reads
/// the command's output.
const EDIT_AND_COMMAND: &str = "name: api-edit
inputs:
  greeting: {type: string}
steps:
  - id: edit
    type: edit_file
    path: notes.txt
    content: \"${inputs.greeting}\\n\"
  - id: shout
    needs: [edit]
    type: run_command
    command: [\"echo\", \"proposed\"]
  - id: report
    needs: [shout]
    type: set
    values:
      said: \"${steps.shout.output.stdout | trim}\"
";

fn run_status(api: &Api, run: &str) -> Value {
    let reply = api.get(&format!("/v1/runs/{run}"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

fn wait_for_status(api: &Api, run: &str, wanted: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let detail = run_status(api, run);
        if detail["run"]["status"] == wanted {
            return detail;
        }
        assert!(
            Instant::now() < deadline,
            "run {run} never became {wanted}: {detail:#}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn step<'a>(detail: &'a Value, id: &str) -> &'a Value {
    detail["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["id"] == id))
        .unwrap_or_else(|| panic!("no step {id} in {detail:#}"))
}

#[test]
fn a_client_validates_starts_follows_and_answers_a_run_over_http() {
    let mut env = Env::new();
    env.write("workflows/edit.yaml", EDIT_AND_COMMAND);
    let server = serve(&mut env);
    let api = &server.api;

    // Validate: a file of the workspace, and YAML sent inline with a mistake in it.
    let ok = api.post(
        "/v1/workflows/validate",
        json!({"path": "workflows/edit.yaml"}),
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body["ok"], true, "{}", ok.body);
    assert_eq!(ok.body["steps"], 3);
    let bad = api.post(
        "/v1/workflows/validate",
        json!({"yaml": "name: bad\nsteps:\n  - id: a\n    type: run_command\n    command: [\"true\"]\n  - id: b\n    needs: [nowhere]\n    type: set\n    values: {x: 1}\n"}),
    );
    assert_eq!(bad.status, 200, "{}", bad.body);
    assert_eq!(bad.body["ok"], false);
    let problem = &bad.body["errors"][0];
    assert_eq!(problem["file"], "inline", "{problem}");
    assert_eq!(problem["step"], "b", "{problem}");
    assert!(
        problem["line"].as_u64().is_some_and(|l| l >= 6),
        "{problem}"
    );
    assert!(
        problem["message"]
            .as_str()
            .unwrap_or("")
            .contains("nowhere"),
        "{problem}"
    );
    // YAML sent only to be checked is not kept.
    let kept = std::fs::read_dir(env.root().join("inline-workflows"))
        .map(|entries| entries.count())
        .unwrap_or(0);
    assert_eq!(kept, 0, "a checked workflow was left behind");

    // Step types: the built-in ones with their fields.
    let types = api.get("/v1/step-types");
    assert_eq!(types.status, 200);
    let names: Vec<&str> = types
        .body
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for wanted in ["edit_file", "run_command", "wait_signal", "set"] {
        assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
    }

    // The inbox live, before the run starts: its question arrives within a second.
    let (status, inbox) = api.stream("/v1/approvals/stream");
    assert_eq!(status, 200);
    let started = api.post(
        "/v1/runs",
        json!({"path": "workflows/edit.yaml", "inputs": {"greeting": "hello from http"}}),
    );
    assert_eq!(started.status, 201, "{}", started.body);
    let started_at = Instant::now();
    let run = started.body["run_id"].as_str().expect("run_id").to_string();
    let asked = next_event(&inbox, Duration::from_secs(10), |e| {
        e.name == "waiting" && e.data["run_id"] == run.as_str()
    })
    .expect("the approval arrives on the stream");
    let took = asked.at.duration_since(started_at);
    assert!(took < Duration::from_secs(1), "the approval took {took:?}");
    assert_eq!(asked.data["step"], "edit");
    assert_eq!(asked.data["kind"], "edit_file");

    // The run is everyone's at once: the CLI, another process on the database, lists it.
    let listed = env.stepwise(&["runs", "--json"]);
    assert!(listed.stdout.contains(&run), "{listed}");
    let runs = api.get("/v1/runs?limit=5");
    assert_eq!(runs.body["runs"][0]["run_id"], run.as_str());
    assert_eq!(runs.body["runs"][0]["trigger"], "api");
    assert_eq!(runs.body["runs"][0]["status"], "awaiting_approval");
    assert!(runs.body["runs"][0]["held_by"].is_string(), "{}", runs.body);

    // Its events live: from the first, each with its seq as the SSE id.
    let (status, events) = api.stream(&format!("/v1/runs/{run}/events/stream"));
    assert_eq!(status, 200);
    let requested = next_event(&events, Duration::from_secs(10), |e| {
        e.name == "event" && e.data["type"] == "ApprovalRequested"
    })
    .expect("ApprovalRequested on the run's stream");
    assert_eq!(
        requested.id.as_deref(),
        Some(requested.data["seq"].to_string().as_str())
    );

    // The approvals list names the question and its hash; approving with another hash is
    // refused, and nothing is applied.
    let waiting = api.get(&format!("/v1/approvals?run={}", &run[..8]));
    assert_eq!(waiting.status, 200, "{}", waiting.body);
    let question = &waiting.body["waiting"][0];
    assert_eq!(question["step"], "edit");
    let hash = question["proposal_hash"]
        .as_str()
        .expect("hash")
        .to_string();
    let stale = api.post(
        &format!("/v1/runs/{run}/steps/edit/approve"),
        json!({"proposal": "sha256:0123456789abcdef"}),
    );
    assert_eq!(stale.status, 409, "{}", stale.body);
    assert_eq!(stale.body["error"]["kind"], "proposal_changed");
    assert!(env.read("notes.txt").is_none());

    // Approve the edit as edited, then the command replaced by another.
    let approved = api.post(
        &format!("/v1/runs/{run}/steps/edit/approve"),
        json!({"proposal": hash, "content": "edited over http\n", "comment": "from a script"}),
    );
    assert_eq!(approved.status, 200, "{}", approved.body);
    assert_eq!(approved.body["command"], "approve");
    next_event(&inbox, Duration::from_secs(10), |e| {
        e.name == "waiting" && e.data["step"] == "shout"
    })
    .expect("the command's question arrives");
    let replaced = api.post(
        &format!("/v1/runs/{run}/steps/shout/approve"),
        json!({"command": ["echo", "approved instead"]}),
    );
    assert_eq!(replaced.status, 200, "{}", replaced.body);
    let ended = next_event(&events, Duration::from_secs(30), |e| e.name == "end")
        .expect("the run's stream ends with the run");
    assert_eq!(ended.data["status"], "succeeded");

    let detail = wait_for_status(api, &run, "succeeded");
    assert_eq!(env.read("notes.txt").as_deref(), Some("edited over http\n"));
    assert_eq!(
        step(&detail, "report")["output"]["said"],
        "approved instead"
    );
    assert_eq!(detail["outputs"]["report"]["said"], "approved instead");
    assert_eq!(detail["inputs"]["greeting"], "hello from http");

    // The log a page at a time.
    let first = api.get(&format!("/v1/runs/{run}/events?limit=2"));
    assert_eq!(first.status, 200);
    assert_eq!(first.body["events"].as_array().map(Vec::len), Some(2));
    assert_eq!(first.body["events"][0]["type"], "RunStarted");
    assert_eq!(first.body["more"], true);
    let next_after = first.body["next_after"].as_u64().expect("next_after");
    let rest = api.get(&format!(
        "/v1/runs/{run}/events?after={next_after}&limit=1000"
    ));
    assert_eq!(rest.body["more"], false);
    assert_eq!(rest.body["events"][0]["seq"], next_after + 1);
    let decided: Vec<&Value> = rest.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["type"] == "ApprovalGranted")
        .collect();
    assert_eq!(decided.len(), 2);
    assert_eq!(decided[0]["data"]["comment"], "from a script");

    // The cost, and the CLI's view of the same run.
    let cost = api.get(&format!("/v1/runs/{run}/cost"));
    assert_eq!(cost.status, 200, "{}", cost.body);
    assert_eq!(cost.body["total_micro_usd"], 0);
    let shown = env.stepwise(&["show", &run, "--json"]);
    assert!(shown.stdout.contains("\"succeeded\""), "{shown}");
}

#[test]
fn a_client_pauses_resumes_cancels_rejects_steps_through_and_signals() {
    let mut env = Env::new();
    env.allow_everything();
    env.write(
        "workflows/steps.yaml",
        "name: steps\nsteps:\n  - id: one\n    type: set\n    values: {n: 1}\n  - id: two\n    needs: [one]\n    type: set\n    values: {n: 2}\n",
    );
    env.write(
        "workflows/wait.yaml",
        "name: wait\nsteps:\n  - id: deployed\n    type: wait_signal\n    name: deploy/done\n  - id: after\n    needs: [deployed]\n    type: set\n    values: {version: \"${steps.deployed.output.version}\"}\n",
    );
    env.write(
        "workflows/ask.yaml",
        "name: ask\nsteps:\n  - id: gate\n    type: edit_file\n    path: gated.txt\n    content: x\n    approval: required\n",
    );
    let server = serve(&mut env);
    let api = &server.api;

    // Step through: the run waits before each step; `continue` lets it past one, then all.
    let run = api.post(
        "/v1/runs",
        json!({"path": "workflows/steps.yaml", "step_through": true}),
    );
    assert_eq!(run.status, 201, "{}", run.body);
    let run = run.body["run_id"].as_str().expect("id").to_string();
    wait_for_status(api, &run, "awaiting_approval");
    let past = api.post(&format!("/v1/runs/{run}/continue"), json!({"step": "one"}));
    assert_eq!(past.status, 200, "{}", past.body);
    let nothing = api.post(&format!("/v1/runs/{run}/continue"), json!({"step": "one"}));
    assert_eq!(nothing.status, 422, "{}", nothing.body);
    let all = api.post(&format!("/v1/runs/{run}/continue"), json!({"all": true}));
    assert_eq!(all.status, 200, "{}", all.body);
    let done = wait_for_status(api, &run, "succeeded");
    assert_eq!(step(&done, "two")["output"]["n"], 2);

    // A signal wakes a waiting step with its data; the same key again wakes nothing more.
    let waiting = api.post("/v1/runs", json!({"path": "workflows/wait.yaml"}));
    let waiting = waiting.body["run_id"].as_str().expect("id").to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    while step(&run_status(api, &waiting), "deployed")["status"] != "running" {
        assert!(Instant::now() < deadline, "the wait never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let paused = api.post(&format!("/v1/runs/{waiting}/pause"), json!({}));
    assert_eq!(paused.status, 200, "{}", paused.body);
    assert_eq!(
        wait_for_status(api, &waiting, "paused")["run"]["status"],
        "paused"
    );
    let resumed = api.post(&format!("/v1/runs/{waiting}/resume"), json!({}));
    assert_eq!(resumed.status, 200, "{}", resumed.body);
    let sent = api.post(
        "/v1/signals",
        json!({"name": "deploy/done", "data": {"version": "v42"}, "key": "deploy-1"}),
    );
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert_eq!(sent.body["recorded"], true);
    let woken = wait_for_status(api, &waiting, "succeeded");
    assert_eq!(step(&woken, "after")["output"]["version"], "v42");
    let again = api.post(
        "/v1/signals",
        json!({"name": "deploy/done", "data": {"version": "v43"}, "key": "deploy-1"}),
    );
    assert_eq!(again.body["recorded"], false, "{}", again.body);
    assert_eq!(again.body["signal_id"], sent.body["signal_id"]);

    // A run the CLI started, waiting for its signal, whose process was killed: nobody drives
    // it. The signal sent over HTTP wakes it, and the server drives it to the end.
    let cli = env.spawn_run(&env.ws.join("workflows/wait.yaml"));
    let deadline = Instant::now() + Duration::from_secs(20);
    let from_cli = loop {
        let waiting = api.get("/v1/runs?query=wait").body["runs"]
            .as_array()
            .and_then(|runs| runs.iter().find(|r| r["trigger"] == "cli").cloned());
        if let Some(run) = waiting
            && let Some(id) = run["run_id"].as_str()
            && step(&run_status(api, id), "deployed")["status"] == "running"
        {
            break id.to_string();
        }
        assert!(Instant::now() < deadline, "the CLI's run never waited");
        std::thread::sleep(Duration::from_millis(50));
    };
    cli.kill();
    let sent = api.post(
        "/v1/signals",
        json!({"name": "deploy/done", "data": {"version": "v50"}, "key": "deploy-2"}),
    );
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert_eq!(sent.body["woke"], from_cli.as_str(), "{}", sent.body);
    let woken = wait_for_status(api, &from_cli, "succeeded");
    assert_eq!(step(&woken, "after")["output"]["version"], "v50");

    // A rejection needs a reason, and fails the step with it.
    let asked = api.post("/v1/runs", json!({"path": "workflows/ask.yaml"}));
    let asked = asked.body["run_id"].as_str().expect("id").to_string();
    wait_for_status(api, &asked, "awaiting_approval");
    let no_reason = api.post(&format!("/v1/runs/{asked}/steps/gate/reject"), json!({}));
    assert_eq!(no_reason.status, 422, "{}", no_reason.body);
    assert!(
        no_reason.body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("reason"),
        "{}",
        no_reason.body
    );
    let rejected = api.post(
        &format!("/v1/runs/{asked}/steps/gate/reject"),
        json!({"reason": "not today"}),
    );
    assert_eq!(rejected.status, 200, "{}", rejected.body);
    let failed = wait_for_status(api, &asked, "failed");
    assert!(
        step(&failed, "gate")["reason"]
            .as_str()
            .unwrap_or("")
            .contains("not today"),
        "{failed:#}"
    );
    assert!(env.read("gated.txt").is_none());

    // Cancel: the run ends cancelled; a second cancel is refused in words.
    let asked = api.post("/v1/runs", json!({"path": "workflows/ask.yaml"}));
    let asked = asked.body["run_id"].as_str().expect("id").to_string();
    wait_for_status(api, &asked, "awaiting_approval");
    let cancelled = api.post(&format!("/v1/runs/{asked}/cancel"), json!({}));
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    wait_for_status(api, &asked, "cancelled");
    let twice = api.post(&format!("/v1/runs/{asked}/cancel"), json!({}));
    assert!(
        matches!(twice.status, 409 | 422),
        "{} {}",
        twice.status,
        twice.body
    );
    assert!(twice.body["error"]["message"].is_string());

    // A workflow sent inline runs like any other; its problems say `inline`.
    let inline = api.post(
        "/v1/runs",
        json!({"yaml": "name: sent\nsteps:\n  - id: only\n    type: set\n    values: {n: 7}\n"}),
    );
    assert_eq!(inline.status, 201, "{}", inline.body);
    let inline = inline.body["run_id"].as_str().expect("id").to_string();
    let done = wait_for_status(api, &inline, "succeeded");
    assert_eq!(step(&done, "only")["output"]["n"], 7);
    let broken = api.post("/v1/runs", json!({"yaml": "name: broken\nsteps: 3\n"}));
    assert_eq!(broken.status, 422, "{}", broken.body);
    let message = broken.body["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("inline") && !message.contains("inline-workflows"),
        "{message}"
    );

    // Unknown runs and bad bodies are named.
    let missing = api.get("/v1/runs/ffffffff");
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert_eq!(missing.body["error"]["kind"], "not_found");
    let wrong = api.post(
        "/v1/runs",
        json!({"path": "workflows/steps.yaml", "stray": 1}),
    );
    assert_eq!(wrong.status, 422, "{}", wrong.body);
    assert!(
        wrong.body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("stray"),
        "{}",
        wrong.body
    );
}

#[test]
fn requests_without_the_token_with_a_wrong_one_or_from_a_browser_are_refused() {
    let mut env = Env::new();
    let server = serve(&mut env);
    let api = &server.api;
    // The token file is the user's alone.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&server.token_file)
        .expect("token file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let anonymous = api.with_token(None);
    for path in ["/v1/runs", "/openapi.json", "/v1/nowhere"] {
        let reply = anonymous.get(path);
        assert_eq!(reply.status, 401, "{path}: {}", reply.body);
        assert_eq!(reply.body["error"]["kind"], "unauthorized");
        assert!(reply.headers.contains_key("www-authenticate"));
    }
    let wrong = api.with_token(Some(
        "0000000000000000000000000000000000000000000000000000000000000000",
    ));
    assert_eq!(wrong.get("/v1/runs").status, 401);
    let started = wrong.post(
        "/v1/runs",
        json!({"yaml": "name: x\nsteps:\n  - id: a\n    type: set\n    values: {n: 1}\n"}),
    );
    assert_eq!(started.status, 401);

    // A page in a browser: refused with the token too, preflight included, and never a CORS
    // header in the answer.
    let from_page = api.send(
        reqwest::Method::GET,
        "/v1/runs",
        None,
        &[("Origin", "http://localhost:3000")],
    );
    assert_eq!(from_page.status, 403, "{}", from_page.body);
    let preflight = anonymous.send(
        reqwest::Method::OPTIONS,
        "/v1/runs",
        None,
        &[
            ("Origin", "https://example.com"),
            ("Access-Control-Request-Method", "POST"),
        ],
    );
    assert_eq!(preflight.status, 403);
    for reply in [&from_page, &preflight] {
        assert!(
            !reply
                .headers
                .keys()
                .any(|k| k.as_str().starts_with("access-control-")),
            "{:?}",
            reply.headers
        );
    }
    // Another host name (a DNS-rebinding page) is refused even with the token.
    let rebound = api.send(
        reqwest::Method::GET,
        "/v1/runs",
        None,
        &[("Host", "attacker.example")],
    );
    assert_eq!(rebound.status, 403, "{}", rebound.body);

    // Nothing was started by any of them.
    assert_eq!(api.get("/v1/runs").body["total"], 0);
    // Where it listens is written beside the token, for clients that did not start it.
    let address: Value = serde_json::from_str(
        &std::fs::read_to_string(server.token_file.with_file_name("api.json")).expect("api.json"),
    )
    .expect("JSON");
    assert_eq!(address["url"], api.url.as_str());
    assert_eq!(address["pid"], server.process.pid());
    // A body too large is refused before it is read whole.
    let huge = "x".repeat(9 * 1024 * 1024);
    let too_large = api.post("/v1/workflows/validate", json!({"yaml": huge}));
    assert_eq!(too_large.status, 413);
}

/// The installed OpenAPI validator (`scripts/openapi-check.sh install`).
fn openapi_validator() -> std::path::PathBuf {
    let venv = std::env::var_os("STEPWISE_OPENAPI_VENV")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| std::path::PathBuf::from(h).join(".cache/stepwise/openapi-venv"))
        })
        .expect("HOME or STEPWISE_OPENAPI_VENV");
    let validator = venv.join("bin").join("openapi-spec-validator");
    assert!(
        validator.exists(),
        "{} is missing: run scripts/openapi-check.sh install (test.sh does)",
        validator.display()
    );
    validator
}

#[test]
fn the_openapi_document_validates_and_matches_the_served_routes() {
    let mut env = Env::new();
    env.allow_everything();
    env.write(
        "workflows/one.yaml",
        "name: one\nsteps:\n  - id: only\n    type: set\n    values: {n: 1}\n",
    );
    let server = serve(&mut env);
    let api = &server.api;
    let served = api.get("/openapi.json");
    assert_eq!(served.status, 200);
    let document = served.body;
    assert_eq!(document["openapi"], "3.1.0");
    // The same document as `stepwise serve --openapi` prints.
    let printed = env.stepwise(&["serve", "--openapi"]);
    assert_eq!(printed.code, 0, "{printed}");
    let printed: Value = serde_json::from_str(&printed.stdout).expect("JSON");
    assert_eq!(printed, document);

    // A real OpenAPI 3.1 validator (openapi-spec-validator, from PyPI) accepts it.
    let file = env.root().join("openapi.json");
    std::fs::write(
        &file,
        serde_json::to_string_pretty(&document).expect("JSON"),
    )
    .expect("write");
    let checked = std::process::Command::new(openapi_validator())
        .arg(&file)
        .output()
        .expect("run the validator");
    assert!(
        checked.status.success(),
        "the document does not validate:\n{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    // Every documented operation is served (no 404 of an unknown route, no 405), with a real
    // run and step in its path; every one needs the token (its security).
    let run = api.post("/v1/runs", json!({"path": "workflows/one.yaml"}));
    let run = run.body["run_id"].as_str().expect("id").to_string();
    wait_for_status(api, &run, "succeeded");
    assert_eq!(document["security"][0]["token"], json!([]));
    let paths = document["paths"].as_object().expect("paths");
    let mut operations = 0;
    for (path, item) in paths {
        for (method, _) in item.as_object().expect("a path item") {
            let method: reqwest::Method = method.to_uppercase().parse().expect("a method");
            let concrete = path.replace("{run}", &run).replace("{step}", "only");
            let body = (method == reqwest::Method::POST).then(|| json!({}));
            let reply = if concrete.ends_with("/stream") {
                let (status, _) = api.stream(&concrete);
                crate::api_client::Reply {
                    status,
                    headers: Default::default(),
                    body: Value::Null,
                }
            } else {
                api.send(method.clone(), &concrete, body.clone(), &[])
            };
            let unknown_route = reply.status == 404 && reply.body["error"]["kind"] != "not_found";
            assert!(
                !unknown_route && reply.status != 405,
                "{method} {concrete} is documented but not served: {} {}",
                reply.status,
                reply.body
            );
            let anonymous = api.with_token(None).send(method, &concrete, body, &[]);
            assert_eq!(anonymous.status, 401, "{path} answered without the token");
            operations += 1;
        }
    }
    assert!(operations >= 17, "only {operations} operations documented");
    // And what is not documented is not served.
    for path in ["/v1/run", "/v1/runs/x/steps", "/v1/admin", "/"] {
        assert_eq!(api.get(path).status, 404, "{path}");
    }
}

#[test]
fn stopping_the_server_lets_its_runs_go_for_another_process_to_finish() {
    let mut env = Env::new();
    env.write(
        "workflows/ask.yaml",
        "name: ask\nsteps:\n  - id: gate\n    type: edit_file\n    path: later.txt\n    content: \"done\\n\"\n",
    );
    let server = serve(&mut env);
    let run = server
        .api
        .post("/v1/runs", json!({"path": "workflows/ask.yaml"}));
    let run = run.body["run_id"].as_str().expect("id").to_string();
    wait_for_status(&server.api, &run, "awaiting_approval");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.process.pid()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let out = server.process.finish(Duration::from_secs(20));
    assert_eq!(out.code, 0, "{out}");
    // Nobody holds the run now: the CLI approves it and drives it to the end.
    let approved = env.stepwise(&["approve", &run, "gate"]);
    assert_eq!(approved.code, 0, "{approved}");
    assert_eq!(env.read("later.txt").as_deref(), Some("done\n"));
}

#[test]
fn idle_connections_cannot_keep_a_client_out() {
    let mut env = Env::new();
    let server = serve(&mut env);
    let address = server.api.url.trim_start_matches("http://").to_string();
    // More connections than the server takes at once, each sending nothing, or half a
    // request's headers.
    let idle: Vec<std::net::TcpStream> = (0..160)
        .map(|n| {
            let mut stream = std::net::TcpStream::connect(&address).expect("connect");
            if n % 2 == 0 {
                use std::io::Write as _;
                let _ = stream.write_all(b"GET /v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\n");
            }
            stream
        })
        .collect();
    // A client with the token still gets its answer once their time is up.
    let started = Instant::now();
    let reply = server.api.get("/v1/runs");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    drop(idle);
}
