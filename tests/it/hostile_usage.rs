//! Token counts a server sends are hostile until bounded: a reply claiming more tokens than
//! any call can use is refused before anything of it is stored, and no figure in a database,
//! even one written before figures were bounded, can make a listing fail.

use serde_json::{Value, json};

use crate::fake_llm::env_with_fake_provider;
use crate::fake_llm::{FakeProvider, Reply};
use crate::llm::{PRICE_1_2, env_with_provider};
use crate::support::{Env, step};

fn prompt_workflow(env: &Env) -> std::path::PathBuf {
    env.workflow(
        "ask.yaml",
        "name: ask\nsteps:\n  - id: ask\n    type: prompt\n    model: m\n    prompt: hi\n    max_tokens: 50\n",
    )
}

/// Every reading command a person uses on a run, each of which must work.
fn assert_everything_reads(env: &Env, run: &str) {
    for args in [
        vec!["runs"],
        vec!["runs", "--json"],
        vec!["show", run],
        vec!["show", run, "--json"],
        vec!["events", run],
        vec!["cost", run],
        vec!["cost", run, "--json"],
        vec!["approvals"],
    ] {
        let out = env.stepwise(&args);
        assert_eq!(out.code, 0, "{args:?}: {out}");
    }
}

#[test]
fn a_reply_claiming_impossible_token_counts_is_refused_and_stores_nothing_of_them() {
    let huge = u64::MAX;
    // The same lie in each protocol's own words, and in each direction.
    let cases: Vec<(&str, &str, Value)> = vec![
        (
            "openai",
            "/v1",
            json!({"choices": [{"message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 3, "completion_tokens": huge}}),
        ),
        (
            "openai",
            "/v1",
            json!({"choices": [{"message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 100_000_001u64, "completion_tokens": 1}}),
        ),
        (
            "anthropic",
            "",
            json!({"content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn",
                   "usage": {"input_tokens": 3, "output_tokens": huge}}),
        ),
        (
            "gemini",
            "/v1beta",
            json!({"candidates": [{"content": {"parts": [{"text": "hi"}], "role": "model"}, "finishReason": "STOP"}],
                   "usageMetadata": {"promptTokenCount": huge, "candidatesTokenCount": 2}}),
        ),
    ];
    for (kind, path, body) in cases {
        let server = FakeProvider::start(vec![Reply::json(200, body.clone())]);
        // Whole replies, so that the usage comes in one body for every protocol.
        let env = env_with_fake_provider(
            kind,
            &format!("http://127.0.0.1:{}{path}", server.port),
            "sk-usage-test",
            "    stream: false\n",
            PRICE_1_2,
        );
        let out = env.run(&prompt_workflow(&env), &[]);
        assert_eq!(out.code, 1, "{kind} {body}: {out}");
        let run = out.run_id();
        let show = env.show(&run);
        let error = step(&show, "ask")["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("malformed answer") && error.contains("tokens for one call"),
            "{kind}: {error}"
        );
        let cost = env.stepwise(&["cost", &run, "--json"]).json();
        assert_eq!(cost["total_micro_usd"], 0, "{kind}: {cost}");
        assert_eq!(cost["output_tokens"], 0, "{kind}: {cost}");
        assert_everything_reads(&env, &run);
    }
}

#[test]
fn a_database_poisoned_before_figures_were_bounded_still_lists_and_reports() {
    let server = FakeProvider::start(vec![crate::fake_llm::openai_reply("hi", 3, 2)]);
    let env = env_with_provider("openai", &server.base_url());
    let out = env.run(&prompt_workflow(&env), &[]);
    assert_eq!(out.code, 0, "{out}");
    let run = out.run_id();

    // What an older stepwise left behind: a cost column that SQLite had turned into a REAL
    // when a hostile reply's cost was added to it. Read as it is (no migration runs on it):
    let poison = |db: &rusqlite::Connection| {
        db.execute(
            "UPDATE runs SET cost_micro_usd = 1.8446744073709552e19 WHERE run_id = ?1",
            [&run],
        )
        .expect("a REAL cost");
    };
    poison(&rusqlite::Connection::open(&env.db).expect("open the database"));
    assert_everything_reads(&env, &run);

    // And as a database of the schema before costs were bounded: opening it migrates it, the
    // column becomes an integer again, and a hostile cost appended by the old trigger's
    // successor cannot make it a REAL again.
    let db = rusqlite::Connection::open(&env.db).expect("open the database");
    poison(&db);
    db.execute_batch(
        "PRAGMA user_version = 3;
         DROP TRIGGER IF EXISTS runs_cost_of_replies;
         CREATE TRIGGER runs_cost_of_replies AFTER INSERT ON events
         WHEN NEW.event_type = 'OperationSucceeded'
          AND json_extract(NEW.payload, '$.result.kind') = 'llm_replied'
         BEGIN
             UPDATE runs
             SET cost_micro_usd = cost_micro_usd + COALESCE(json_extract(NEW.payload, '$.result.cost_micro_usd'), 0)
             WHERE run_id = NEW.run_id;
         END;",
    )
    .expect("the schema of version 3");
    drop(db);
    assert_everything_reads(&env, &run);
    let kind: String = env
        .db()
        .query_row(
            "SELECT typeof(cost_micro_usd) FROM runs WHERE run_id = ?1",
            [&run],
            |row| row.get(0),
        )
        .expect("the cost column");
    assert_eq!(
        kind, "integer",
        "the migration made the cost an integer again"
    );

    assert_everything_reads(&env, &run);
    let runs = env.stepwise(&["runs", "--json"]).json();
    let listed = runs
        .as_array()
        .expect("runs")
        .iter()
        .find(|r| r["run_id"] == run.as_str())
        .cloned()
        .unwrap_or_default();
    let cost = listed["cost_micro_usd"].as_u64().expect("an integer cost");
    assert!(i64::try_from(cost).is_ok(), "{listed}");
}
