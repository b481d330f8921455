//! Values from outside nested so deep that, once wrapped in an event, they could not be read
//! back (serde_json reads 128 levels) are refused where they come in: a run stays readable
//! whatever a model or an input says.

use crate::fake_llm::{FakeProvider, openai_reply};
use crate::llm::env_with_provider;
use crate::support::step;

fn nested_object(levels: usize) -> String {
    format!("{}1{}", "{\"a\":".repeat(levels), "}".repeat(levels))
}

#[test]
fn a_structured_reply_nested_too_deep_is_refused_and_the_run_stays_readable() {
    for levels in [65, 126, 127] {
        let server = FakeProvider::start(vec![openai_reply(&nested_object(levels), 5, 5)]);
        let env = env_with_provider("openai", &server.base_url());
        let wf = env.workflow(
            "deep.yaml",
            "name: deep\nsteps:\n  - id: classify\n    type: prompt\n    model: m\n    prompt: hi\n    output_schema: {type: object}\n    schema_retries: 1\n  - id: gate\n    type: approval\n    message: go on?\n",
        );
        let out = env.run(&wf, &[]);
        assert_eq!(out.code, 3, "{levels}: the gate waits: {out}");
        let run = out.run_id();
        let show = env.show(&run);
        let error = step(&show, "classify")["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(error.contains("nested deeper than 64 levels"), "{error}");
        for args in [
            vec!["approvals"],
            vec!["approvals", "--json"],
            vec!["events", &run],
            vec!["cost", &run],
            vec!["replay", &run],
            vec!["runs"],
        ] {
            let read = env.stepwise(&args);
            assert_eq!(read.code, 0, "{levels} {args:?}: {read}");
        }
        let rejected = env.reject(&run, "gate", "done");
        assert_eq!(rejected.code, 1, "{rejected}");
    }
}

#[test]
fn an_input_nested_too_deep_is_invalid() {
    let env = crate::support::Env::new();
    let wf = env.workflow(
        "input.yaml",
        "name: input\ninputs:\n  o: {type: object}\nsteps:\n  - id: gate\n    type: approval\n    message: go on?\n",
    );
    let input = format!("o={}", nested_object(126));
    let out = env.run(&wf, &["--input", &input]);
    assert_eq!(out.code, 2, "{out}");
    assert_eq!(env.run_count(), 0, "no run was recorded");
    let fine = format!("o={}", nested_object(10));
    assert_eq!(env.run(&wf, &["--input", &fine]).code, 3);
}
