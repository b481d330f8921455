//! Budgets against calls made side by side: each call reserves its estimate before it is
//! requested and gives back the difference when it replies, so calls in flight together
//! cannot cross a budget each fits alone; an approval over the budget covers exactly its own
//! call, against what remains after every reservation. Against a loopback server that counts
//! the tokens it is asked for and answers with them.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fake_llm::{FakeProvider, openai_reply};
use crate::llm::env_with_provider;
use crate::support::{Env, of_type};

/// At $1 per million input tokens and $2 per million output tokens (the provider of
/// `env_with_provider`), a call of prompt `hi` (5 tokens as estimated) and `max_tokens` 1000
/// is estimated at 5 + 2000 micro-dollars, and the server below charges exactly that.
const CALL_MICRO_USD: u64 = 2_005;

fn server(delay: Duration) -> FakeProvider {
    FakeProvider::start(vec![openai_reply("ok", 5, 1_000).after(delay)])
}

/// Independent prompt steps `ids`, each a call estimated at [`CALL_MICRO_USD`].
fn parallel_workflow(env: &Env, ids: &[&str], budget_usd: &str) -> std::path::PathBuf {
    let steps: String = ids
        .iter()
        .map(|id| {
            format!("  - id: {id}\n    type: prompt\n    model: m\n    prompt: hi\n    max_tokens: 1000\n")
        })
        .collect();
    env.workflow(
        "parallel.yaml",
        &format!("name: parallel\nbudget: {{ usd: {budget_usd} }}\nsteps:\n{steps}"),
    )
}

fn cost(env: &Env, run: &str) -> Value {
    let out = env.stepwise(&["cost", run, "--json"]);
    assert_eq!(out.code, 0, "{out}");
    out.json()
}

fn waiting_steps(env: &Env) -> Vec<String> {
    env.approvals()
        .iter()
        .filter_map(|a| a["step"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn calls_side_by_side_cannot_together_cross_a_budget_each_fits_alone() {
    let provider = server(Duration::ZERO);
    let env = env_with_provider("openai", &provider.base_url());
    // Room for two calls, not three.
    let workflow = parallel_workflow(&env, &["a", "b", "c"], "0.005");
    let out = env.run(&workflow, &[]);
    assert_eq!(out.code, 3, "the third call waits for the budget: {out}");
    let run = out.run_id();
    assert_eq!(provider.seen().len(), 2, "only two calls were made");
    assert_eq!(waiting_steps(&env), ["c"]);
    let spent = cost(&env, &run);
    assert_eq!(spent["total_micro_usd"], 2 * CALL_MICRO_USD);

    // Approved, the third call is made and the budget is raised by exactly what it lacked.
    let approved = env.approve(&run, "c", &[]);
    assert_eq!(approved.code, 0, "{approved}");
    assert_eq!(provider.seen().len(), 3);
    let spent = cost(&env, &run);
    assert_eq!(spent["total_micro_usd"], 3 * CALL_MICRO_USD);
    assert_eq!(spent["budget"]["micro_usd"], 3 * CALL_MICRO_USD);
    let replayed = env.stepwise(&["replay", &run, "--json"]);
    assert_eq!(replayed.json()["matches"], true, "{replayed}");
}

#[test]
fn each_approval_over_the_budget_covers_its_own_call_and_no_more() {
    let provider = server(Duration::ZERO);
    let env = env_with_provider("openai", &provider.base_url());
    // Less than one call: both calls wait, each asking for the same remainder.
    let workflow = parallel_workflow(&env, &["a", "b"], "0.001");
    let out = env.run(&workflow, &[]);
    assert_eq!(out.code, 3, "{out}");
    let run = out.run_id();
    assert!(provider.seen().is_empty());
    let mut waiting = waiting_steps(&env);
    waiting.sort();
    assert_eq!(waiting, ["a", "b"]);

    let first = env.approve(&run, "a", &[]);
    assert_eq!(first.code, 3, "b still waits: {first}");
    let second = env.approve(&run, "b", &[]);
    assert_eq!(second.code, 0, "{second}");
    assert_eq!(provider.seen().len(), 2);
    let spent = cost(&env, &run);
    let total = spent["total_micro_usd"].as_u64().expect("total");
    let budget = spent["budget"]["micro_usd"].as_u64().expect("budget");
    assert_eq!(total, 2 * CALL_MICRO_USD);
    assert!(
        total <= budget,
        "two approvals raised the budget to {budget} for {total} spent: {spent}"
    );
    assert_eq!(budget, total, "and by no more than the calls lacked");
}

#[test]
fn reservations_survive_a_crash_with_calls_in_flight() {
    // The first two calls hang; the calls made again after the crash are answered at once.
    let slow = openai_reply("ok", 5, 1_000).after(Duration::from_secs(60));
    let provider = FakeProvider::start(vec![slow.clone(), slow, openai_reply("ok", 5, 1_000)]);
    let env = env_with_provider("openai", &provider.base_url());
    let workflow = parallel_workflow(&env, &["a", "b", "c"], "0.005");
    let driver = env.spawn_run(&workflow);
    let deadline = Instant::now() + Duration::from_secs(20);
    while provider.seen().len() < 2 {
        assert!(Instant::now() < deadline, "two calls in flight");
        std::thread::sleep(Duration::from_millis(20));
    }
    driver.kill();
    let run = env
        .first_run_id(Duration::from_secs(5))
        .expect("the run was recorded");
    assert_eq!(
        waiting_steps(&env),
        ["c"],
        "asked while two calls were in flight"
    );
    assert_eq!(of_type(&env.events(&run), "OperationStarted").len(), 2);

    // Resumed, the two calls are made again and the third still waits: what was in flight
    // when the process died still held the budget.
    let resumed = env.stepwise(&["resume", &run]);
    assert_eq!(resumed.code, 3, "{resumed}");
    assert_eq!(provider.seen().len(), 4);
    assert_eq!(waiting_steps(&env), ["c"]);
    let replayed = env.stepwise(&["replay", &run, "--json"]);
    assert_eq!(replayed.json()["matches"], true, "{replayed}");
}
