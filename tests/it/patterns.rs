//! The pattern workflows in `workflows/patterns/`, built only from the workflow language's
//! blocks, run end to end against a provider on loopback with the shipped settings, and replay
//! without it.

use crate::examples::example;
use crate::fake_llm::{FakeProvider, openai_reply};
use crate::llm_examples::env_with_local_settings;
use crate::support::step;

#[test]
fn the_pipeline_drafts_critiques_and_revises_each_step_reading_the_last() {
    let server = FakeProvider::start(vec![
        openai_reply("A log lets you replay.", 20, 6),
        openai_reply("Too vague; no example.", 30, 6),
        openai_reply(
            "A recorded log replays a run exactly, e.g. after a crash.",
            40,
            12,
        ),
    ]);
    let env = env_with_local_settings(&server.base_url(), "k-local");
    let out = env.run(&example("patterns/pipeline.yaml"), &[]);
    assert_eq!(out.code, 0, "{out}");
    let run = out.run_id();
    let show = env.show(&run);
    assert_eq!(
        step(&show, "result")["output"]["answer"],
        "A recorded log replays a run exactly, e.g. after a crash."
    );
    let asked =
        |n: usize| serde_json::to_string(&crate::agent::messages(&server, n)).unwrap_or_default();
    assert!(
        asked(1).contains("A log lets you replay."),
        "the critique reads the draft"
    );
    assert!(
        asked(2).contains("Too vague; no example."),
        "the revision reads the critique"
    );
    let seen = server.seen().len();
    let replayed = env.stepwise(&["replay", &run]);
    assert_eq!(replayed.code, 0, "{replayed}");
    assert_eq!(server.seen().len(), seen, "replay asked the model nothing");
}

#[test]
fn the_parallel_vote_asks_three_ways_and_takes_the_majority() {
    let server = FakeProvider::start(vec![
        openai_reply("No", 20, 1),
        openai_reply("yes", 20, 1),
        openai_reply(" Yes ", 20, 1),
    ]);
    let env = env_with_local_settings(&server.base_url(), "k-local");
    let out = env.run(&example("patterns/parallel-vote.yaml"), &[]);
    assert_eq!(out.code, 0, "{out}");
    let run = out.run_id();
    let vote = step(&env.show(&run), "vote")["output"].clone();
    assert_eq!(vote["majority"], "yes", "{vote}");
    let mut votes: Vec<String> = vote["votes"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    votes.sort();
    assert_eq!(votes, ["no", "yes", "yes"], "{vote}");
    assert_eq!(server.seen().len(), 3, "one call per framing");
    let replayed = env.stepwise(&["replay", &run]);
    assert_eq!(replayed.code, 0, "{replayed}");
    assert_eq!(server.seen().len(), 3);
}

/// The child runs a parent's `workflow` steps started, from `show --json`.
fn children(env: &crate::support::Env, run: &str) -> usize {
    env.show(run)["children"]
        .as_array()
        .map_or(0, |children| children.len())
}

#[test]
fn the_debate_runs_rounds_as_child_runs_until_the_judge_says_they_agree() {
    let server = FakeProvider::start(vec![
        openai_reply("Squash: a clean history.", 20, 6),
        openai_reply("No: squashing loses the story.", 20, 6),
        openai_reply(r#"{"agree": false, "verdict": "not yet"}"#, 30, 8),
        openai_reply("Squash small PRs; keep large ones.", 20, 6),
        openai_reply("Agreed for small PRs.", 20, 6),
        openai_reply(r#"{"agree": true, "verdict": "squash small PRs"}"#, 30, 8),
    ]);
    let env = env_with_local_settings(&server.base_url(), "k-local");
    let out = env.run(&example("patterns/debate.yaml"), &[]);
    assert_eq!(out.code, 0, "{out}");
    let run = out.run_id();
    let show = env.show(&run);
    assert_eq!(
        step(&show, "result")["output"],
        serde_json::json!({"agreed": true, "verdict": "squash small PRs"})
    );
    assert_eq!(children(&env, &run), 2, "one child run per round");
    let asked =
        |n: usize| serde_json::to_string(&crate::agent::messages(&server, n)).unwrap_or_default();
    assert!(
        asked(3).contains("No: squashing loses the story."),
        "the second round answers the first round's other side"
    );
    let seen = server.seen().len();
    assert_eq!(seen, 6);
    let replayed = env.stepwise(&["replay", &run]);
    assert_eq!(replayed.code, 0, "{replayed}");
    assert_eq!(
        replayed.stdout.matches("child run").count(),
        2,
        "{replayed}"
    );
    assert_eq!(server.seen().len(), seen, "replay asked the model nothing");
}

#[test]
fn the_supervisor_splits_hands_each_part_to_a_worker_run_and_joins_the_results() {
    let server = FakeProvider::start(vec![
        openai_reply(r#"{"parts": ["features", "fixes"]}"#, 30, 8),
        openai_reply("WORKER ONE", 20, 3),
        openai_reply("WORKER TWO", 20, 3),
        openai_reply("Release notes: both parts.", 40, 6),
    ]);
    let env = env_with_local_settings(&server.base_url(), "k-local");
    let out = env.run(&example("patterns/supervisor.yaml"), &[]);
    assert_eq!(out.code, 0, "{out}");
    let run = out.run_id();
    let result = step(&env.show(&run), "result")["output"].clone();
    assert_eq!(result["parts"], serde_json::json!(["features", "fixes"]));
    assert_eq!(result["answer"], "Release notes: both parts.");
    assert_eq!(children(&env, &run), 2, "one worker run per part");
    let joined = serde_json::to_string(&crate::agent::messages(&server, 3)).unwrap_or_default();
    assert!(
        joined.contains("WORKER ONE") && joined.contains("WORKER TWO"),
        "the summarizer reads every worker: {joined}"
    );
    let replayed = env.stepwise(&["replay", &run]);
    assert_eq!(replayed.code, 0, "{replayed}");
    assert_eq!(server.seen().len(), 4, "replay asked the model nothing");
}
