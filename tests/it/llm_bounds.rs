//! Model replies are bounded in size and in time: a hostile provider on loopback (a huge body,
//! a huge error body, an endless stream, an endless line, silence, a stream that never ends)
//! gets a clear error in bounded time, the `stepwise` process stays small, nothing of the
//! reply is kept in the database and no progress file is left behind.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::fake_llm::env_with_fake_provider;
use crate::hostile_llm::{Behaviour, FILL, HostileServer, run_measured};
use crate::support::{Env, of_type, step};

/// Peak memory the `stepwise` process must stay under, in KiB.
const PEAK_KIB: i64 = 200 * 1024;
/// Every case ends well within this; past it the process is killed and the case fails.
const PATIENCE: Duration = Duration::from_secs(60);
/// Half a gigabyte: what a hostile body would be, if it were read.
const HUGE: u64 = 500_000_000;

/// One hostile case: the protocol spoken, what the server does, lines added to the provider's
/// settings, and words the step's error must hold.
struct Case {
    name: &'static str,
    kind: &'static str,
    behaviour: Behaviour,
    settings: &'static str,
    says: &'static [&'static str],
    /// How many such calls the workflow makes side by side.
    side_by_side: usize,
}

fn case(
    name: &'static str,
    kind: &'static str,
    behaviour: Behaviour,
    says: &'static [&'static str],
) -> Case {
    Case {
        name,
        kind,
        behaviour,
        settings: "",
        says,
        side_by_side: 1,
    }
}

/// What a case left behind.
struct Outcome {
    env: Env,
    run: String,
    error: String,
}

/// Runs a one-step prompt workflow against the case's server, measured, and checks what every
/// case must hold: the run fails with the words expected, within time and memory, and leaves no
/// progress file.
fn run_case(case: &Case) -> Outcome {
    let server = HostileServer::start(case.behaviour.clone());
    let base_url = match case.kind {
        "openai" => server.base_url(),
        "gemini" => format!("http://127.0.0.1:{}/v1beta", server.port),
        _ => format!("http://127.0.0.1:{}", server.port),
    };
    let env = env_with_fake_provider(case.kind, &base_url, "sk-hostile-test", case.settings, "");
    let steps: String = (0..case.side_by_side)
        .map(|i| {
            let id = if i == 0 {
                "ask".to_string()
            } else {
                format!("ask{i}")
            };
            format!("  - id: {id}\n    type: prompt\n    model: m\n    prompt: hello\n")
        })
        .collect();
    let wf = env.workflow(
        "ask.yaml",
        &format!(
            "name: ask\nmax_parallel: {}\nsteps:\n{steps}",
            case.side_by_side
        ),
    );
    let out = env.root().join("run.out");
    let err = env.root().join("run.err");
    let mut command = env.command(&[
        "run",
        wf.to_str().expect("utf-8"),
        "--workspace",
        env.ws.to_str().expect("utf-8"),
    ]);
    command
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(&err).expect("stderr file"));
    let measured = run_measured(command, PATIENCE);
    let printed = std::fs::read_to_string(&out).unwrap_or_default()
        + &std::fs::read_to_string(&err).unwrap_or_default();
    let Some(measured) = measured else {
        panic!(
            "{}: stepwise did not end within {PATIENCE:?}:\n{printed}",
            case.name
        );
    };
    assert_eq!(measured.code, 1, "{}: {printed}", case.name);
    assert!(
        measured.peak_kib < PEAK_KIB,
        "{}: stepwise peaked at {} KiB",
        case.name,
        measured.peak_kib
    );
    let run = env.database.first_run_id().expect("the run");
    let show = env.show(&run);
    assert_eq!(step(&show, "ask")["status"], "failed", "{}", case.name);
    let error = step(&show, "ask")["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // `a|b`: either bound may be met first.
    let says = |text: &str, words: &str| words.split('|').any(|w| text.contains(w));
    for words in case.says {
        assert!(says(&error, words), "{}: {error}", case.name);
    }
    assert!(
        says(&printed, case.says[0]),
        "{}: the error is printed: {printed}",
        case.name
    );
    let leftovers: Vec<PathBuf> = walk(&env.root())
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".progress"))
        .collect();
    assert!(leftovers.is_empty(), "{}: {leftovers:?}", case.name);
    eprintln!(
        "{}: failed in {:?} at a peak of {} KiB: {error}",
        case.name, measured.elapsed, measured.peak_kib
    );
    Outcome { env, run, error }
}

/// The database's bytes (main file and WAL) as text.
fn database_text(db: &Path) -> String {
    ["", "-wal"]
        .iter()
        .filter_map(|suffix| std::fs::read(format!("{}{suffix}", db.display())).ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .collect()
}

/// Nothing of the hostile reply is in the database.
fn nothing_kept(outcome: &Outcome, name: &str) {
    assert!(
        !database_text(&outcome.env.db).contains(FILL.trim()),
        "{name}: the hostile reply is in the database"
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn a_huge_reply_fails_the_call_and_nothing_of_it_is_kept() {
    for declared in [true, false] {
        let case = case(
            if declared {
                "a huge JSON body, its length declared"
            } else {
                "a huge JSON body, its length undeclared"
            },
            "openai",
            Behaviour::HugeJson {
                bytes: HUGE,
                declared,
            },
            &["is larger than 4 MiB", "nothing of it was kept"],
        );
        let outcome = run_case(&case);
        nothing_kept(&outcome, case.name);
    }
}

#[test]
fn a_huge_error_body_is_read_only_as_far_as_it_is_quoted() {
    let cases: [(u16, &'static [&'static str]); 2] = [
        (400, &["refused the request (HTTP 400)", "HOSTILE HOSTILE"]),
        (500, &["failed with HTTP 500", "HOSTILE HOSTILE"]),
    ];
    for (status, says) in cases {
        let case = case(
            "a huge error body",
            "anthropic",
            Behaviour::HugeError {
                status,
                bytes: HUGE,
            },
            says,
        );
        let outcome = run_case(&case);
        // Only the quote is kept: a few hundred characters.
        assert!(outcome.error.len() < 1000, "{}", outcome.error);
        let kept = database_text(&outcome.env.db).matches(FILL).count();
        assert!(kept < 200, "{kept} pieces of the body are in the database");
    }
}

#[test]
fn an_endless_stream_fails_the_call_and_nothing_of_it_is_kept() {
    let piece = FILL.repeat(128);
    let openai = json!({"choices": [{"index": 0, "delta": {"content": piece}}]});
    let anthropic = json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}});
    let gemini =
        json!({"candidates": [{"content": {"parts": [{"text": piece}], "role": "model"}}]});
    let cases = [
        case(
            "an endless OpenAI stream",
            "openai",
            Behaviour::EndlessEvents(format!("data: {openai}\n\n")),
            &[
                "the streamed reply from provider `fake`",
                "larger than 4 MiB",
            ],
        ),
        case(
            "an endless Anthropic stream",
            "anthropic",
            Behaviour::EndlessEvents(format!("data: {anthropic}\n\n")),
            &[
                "the streamed reply from provider `fake`",
                "larger than 4 MiB",
            ],
        ),
        case(
            "an endless Gemini stream",
            "gemini",
            Behaviour::EndlessEvents(format!("data: {gemini}\n\n")),
            &[
                "the streamed reply from provider `fake`",
                "larger than 4 MiB",
            ],
        ),
        case(
            "endless keep-alives",
            "openai",
            Behaviour::EndlessEvents(format!(": {FILL}\n\n")),
            &["the stream from provider `fake`", "larger than 64 MiB"],
        ),
        case(
            "one endless line",
            "openai",
            Behaviour::EndlessLine,
            &[
                "one event of the stream from provider `fake`",
                "larger than 1 MiB",
            ],
        ),
    ];
    for case in &cases {
        let outcome = run_case(case);
        nothing_kept(&outcome, case.name);
    }
}

/// Memory is bounded for the process, not only per call: a stream of tiny events, each a piece
/// of progress, held as messages cost about 75 bytes each, and six such calls side by side
/// took the process past 500 MB. Stopped by the provider's `timeout_s`.
#[test]
fn many_tiny_events_in_calls_side_by_side_stay_within_memory() {
    let tiny = json!({"choices": [{"delta": {"content": "x"}}]});
    let mut tiny_events = case(
        "six streams of tiny events",
        "openai",
        Behaviour::EndlessEvents(format!("data:{tiny}\n\n")),
        // Read side by side on the executor runtime, six streams may reach the stream's
        // ceiling before the call's time runs out.
        &["took longer than 15s|larger than 64 MiB"],
    );
    tiny_events.settings = "    timeout_s: 15\n";
    tiny_events.side_by_side = 6;
    let outcome = run_case(&tiny_events);
    nothing_kept(&outcome, tiny_events.name);
}

#[test]
fn a_silent_or_endless_provider_is_given_up_in_time() {
    let event = json!({"choices": [{"index": 0, "delta": {"content": FILL}}]});
    let cases = [
        Case {
            settings: "    idle_timeout_s: 2\n",
            ..case(
                "silence before the headers",
                "openai",
                Behaviour::SilentBeforeHeaders,
                &["sent nothing for 2s", "idle_timeout_s"],
            )
        },
        Case {
            settings: "    idle_timeout_s: 2\n",
            ..case(
                "silence in the middle of a stream",
                "gemini",
                Behaviour::SilentAfterEvent(event.to_string()),
                &["sent nothing for 2s"],
            )
        },
        Case {
            settings: "    timeout_s: 3\n",
            ..case(
                "a stream that never ends",
                "anthropic",
                Behaviour::Trickle(Duration::from_millis(200)),
                &["took longer than 3s", "`timeout_s` of provider `fake`"],
            )
        },
    ];
    for case in &cases {
        let outcome = run_case(case);
        nothing_kept(&outcome, case.name);
        // What bounded the call is recorded with the run, as the settings said it.
        let events = outcome.env.events(&outcome.run);
        let started = of_type(&events, "RunStarted");
        let model = &started[0]["data"]["models"]["m"];
        let (name, value) = case.settings.trim().split_once(": ").expect("a setting");
        assert_eq!(model[name], value.parse::<u64>().expect("a number"));
    }
}
