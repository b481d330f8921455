//! Rounds (`repeat: {max, until}`): a step runs again with `round` and `previous` until
//! `until` is true or `max` rounds have run; each round is recorded, the step's output is the
//! last round's, replay matches; mistakes are validation errors naming the field.

use serde_json::{Value, json};

use crate::support::{Env, of_type, step};

fn rounds_recorded(env: &Env, run: &str) -> Vec<Value> {
    of_type(&env.events(run), "StepRoundEnded")
        .into_iter()
        .map(|e| e["data"]["round"].clone())
        .collect()
}

#[test]
fn a_step_repeats_until_its_condition_holds_and_passes_its_last_output_on() {
    let env = Env::new();
    let wf = env.workflow(
        "count.yaml",
        r#"
name: count
steps:
  - id: count
    type: set
    values:
      n: ${round}
      before: ${previous.n if previous else 0}
    repeat:
      max: 10
      until: ${output.n >= 3}
  - id: after
    needs: [count]
    type: set
    values:
      final: ${steps.count.output.n}
"#,
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 0, "{out}");
    let run = out.run_id();
    let show = env.show(&run);
    assert_eq!(step(&show, "count")["output"], json!({"n": 3, "before": 2}));
    assert_eq!(step(&show, "after")["output"]["final"], 3);
    assert_eq!(rounds_recorded(&env, &run), [json!(1), json!(2)]);
    let replayed = env.stepwise(&["replay", &run]);
    assert_eq!(replayed.code, 0, "{replayed}");
}

#[test]
fn a_command_repeats_until_max_rounds_each_one_run() {
    let env = Env::new();
    env.allow_everything();
    let wf = env.workflow(
        "again.yaml",
        "name: again\nsteps:\n  - id: again\n    type: run_command\n    command: \"printf '${round}\\n' >> rounds.txt\"\n    repeat:\n      max: 3\n      until: ${output.exit_code != 0}\n",
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(env.read("rounds.txt").as_deref(), Some("1\n2\n3\n"));
    assert_eq!(rounds_recorded(&env, &out.run_id()), [json!(1), json!(2)]);
}

#[test]
fn an_until_that_is_not_true_or_false_fails_the_step() {
    let env = Env::new();
    let wf = env.workflow(
        "odd.yaml",
        "name: odd\nsteps:\n  - id: odd\n    type: set\n    values: {n: 1}\n    repeat:\n      max: 3\n      until: ${output.n}\n",
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 1, "{out}");
    let show = env.show(&out.run_id());
    assert!(
        step(&show, "odd")["error"]
            .as_str()
            .is_some_and(|e| e.contains("`until` must be true or false")),
        "{show}"
    );
}

#[test]
fn round_names_outside_a_repeating_step_and_bad_bounds_are_validation_errors() {
    let env = Env::new();
    for (yaml, says) in [
        (
            "name: a\nsteps:\n  - id: a\n    type: set\n    values: {n: \"${round}\"}\n",
            "`n` reads `round`, which exists only in a step that has `repeat`",
        ),
        (
            "name: a\nsteps:\n  - id: a\n    type: set\n    values: {n: \"${output}\"}\n    repeat: {max: 2}\n",
            "reads `output`, which exists only in a step's `repeat.until`",
        ),
        (
            "name: a\nsteps:\n  - id: a\n    type: set\n    values: {}\n    repeat: {max: 0}\n",
            "`repeat.max` must be 1 to 50",
        ),
        (
            "name: a\nsteps:\n  - id: a\n    type: set\n    values: {}\n    repeat: {max: 51}\n",
            "`repeat.max` must be 1 to 50",
        ),
    ] {
        let wf = env.workflow("bad.yaml", yaml);
        let out = env.stepwise(&["validate", wf.to_str().expect("utf-8")]);
        assert_ne!(out.code, 0, "{yaml}: {out}");
        assert!(out.to_string().contains(says), "{yaml}: {out}");
    }
}

#[test]
fn a_model_step_refines_its_last_answer_until_it_stops_changing_and_replays_offline() {
    let server = crate::fake_llm::FakeProvider::start(vec![
        crate::fake_llm::openai_reply("draft two", 10, 2),
        crate::fake_llm::openai_reply("draft three", 10, 2),
        crate::fake_llm::openai_reply("draft three", 10, 2),
    ]);
    let env = crate::llm::env_with_provider("openai", &server.base_url());
    let wf = env.workflow(
        "refine.yaml",
        r#"
name: refine
inputs:
  draft: {type: string, default: draft one}
steps:
  - id: refine
    type: prompt
    model: m
    prompt: "Improve this draft: ${previous.text if previous else inputs.draft}"
    repeat:
      max: 5
      until: ${previous is not none and output.text == previous.text}
"#,
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 0, "{out}");
    let run = out.run_id();
    assert_eq!(server.seen().len(), 3, "three rounds, each one model call");
    let asked =
        |n: usize| serde_json::to_string(&crate::agent::messages(&server, n)).unwrap_or_default();
    assert!(
        asked(0).contains("Improve this draft: draft one"),
        "{}",
        asked(0)
    );
    assert!(
        asked(1).contains("Improve this draft: draft two"),
        "{}",
        asked(1)
    );
    assert!(
        asked(2).contains("Improve this draft: draft three"),
        "{}",
        asked(2)
    );
    assert_eq!(
        step(&env.show(&run), "refine")["output"]["text"],
        "draft three"
    );
    assert_eq!(rounds_recorded(&env, &run), [json!(1), json!(2)]);
    let replayed = env.stepwise(&["replay", &run]);
    assert_eq!(replayed.code, 0, "{replayed}");
    assert_eq!(server.seen().len(), 3, "replay asked the model nothing");
}

#[test]
fn each_round_of_a_step_that_needs_approval_is_asked_about_anew() {
    let env = Env::new();
    env.allow_everything();
    let wf = env.workflow(
        "asked.yaml",
        "name: asked\nsteps:\n  - id: again\n    type: run_command\n    approval: required\n    command: \"echo same >> rounds.txt\"\n    repeat:\n      max: 2\n",
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 3, "round 1 waits: {out}");
    let run = out.run_id();
    let out = env.approve(&run, "again", &[]);
    assert_eq!(
        out.code, 3,
        "round 2 waits too, though its command is the same: {out}"
    );
    assert_eq!(env.read("rounds.txt").as_deref(), Some("same\n"));
    let out = env.approve(&run, "again", &[]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(env.read("rounds.txt").as_deref(), Some("same\nsame\n"));
}

#[test]
fn iterations_of_a_loop_repeat_each_on_their_own() {
    let env = Env::new();
    let wf = env.workflow(
        "both.yaml",
        "name: both\nsteps:\n  - id: each\n    for_each: ${[10, 20]}\n    type: set\n    values: {n: \"${item + round}\"}\n    repeat:\n      max: 2\n",
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 0, "{out}");
    let run = out.run_id();
    assert_eq!(
        step(&env.show(&run), "each")["output"],
        json!([{"n": 12}, {"n": 22}])
    );
    assert_eq!(
        rounds_recorded(&env, &run).len(),
        2,
        "one round ended per iteration"
    );
}
