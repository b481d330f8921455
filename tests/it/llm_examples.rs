//! The model examples in `workflows/` with the shipped settings (`workflows/settings/local.yaml`)
//! pointed at a provider on loopback that answers as a capable model would: each runs end to
//! end the way `workflows/README.md` describes. (`real_llm.rs` runs them against a real model.)

use std::collections::BTreeSet;

use serde_json::json;

use crate::examples::{approve_until_done, copy_dir, example, workflows_dir};
use crate::fake_llm::{FakeProvider, openai_reply};
use crate::support::{Env, step};

pub(crate) const LOCAL_KEY_VAR: &str = "LOCAL_LLM_KEY";

/// An environment whose user settings are the shipped `settings/local.yaml`, its server moved
/// to `base_url`, with a key in `LOCAL_LLM_KEY`.
pub(crate) fn env_with_local_settings(base_url: &str, key: &str) -> Env {
    let mut env = Env::new();
    let shipped = std::fs::read_to_string(workflows_dir().join("settings/local.yaml"))
        .expect("workflows/settings/local.yaml");
    assert!(shipped.contains("http://127.0.0.1:8081/v1"), "{shipped}");
    let settings = shipped.replace("http://127.0.0.1:8081/v1", base_url);
    let dir = env.root().join("config").join("stepwise");
    std::fs::write(dir.join("settings.yaml"), settings).expect("write settings");
    env.vars.push((LOCAL_KEY_VAR.into(), key.into()));
    env
}

const FACTORIAL: &str = "```python\ndef factorial(n):\n    \"\"\"Return n! for a non-negative integer n.\"\"\"\n    if n < 0:\n        raise ValueError(\"negative\")\n    result = 1\n    for k in range(2, n + 1):\n        result *= k\n    return result\n```";

#[test]
fn llm_factorial_asks_the_model_proposes_its_code_and_tests_it() {
    let server = FakeProvider::start(vec![openai_reply(FACTORIAL, 120, 60)]);
    let env = env_with_local_settings(&server.base_url(), "k-local");
    copy_dir(&workflows_dir().join("demo"), &env.ws);
    let out = env.run(&example("llm-factorial.yaml"), &[]);
    assert_eq!(out.code, 3, "the edit waits: {out}");
    let run = out.run_id();

    // The model saw the module and was asked for whole replies (stream: false).
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body["model"], "smollm2");
    assert_eq!(seen[0].body["stream"], json!(null));
    let system = seen[0].body["messages"][0]["content"]
        .as_str()
        .unwrap_or_default();
    assert!(system.contains("# TODO: factorial"), "{system}");

    // The proposal is the model's code without its fence, in place of the marker.
    let waiting = env.approvals();
    let proposal = &waiting[0]["approval"]["proposal"];
    assert_eq!(proposal["kind"], "edit_file");
    let content = proposal["content"].as_str().unwrap_or_default();
    assert!(
        content.contains("def factorial(n):\n    \"\"\"Return n!"),
        "{content}"
    );
    assert!(
        !content.contains("```") && !content.contains("# TODO"),
        "{content}"
    );

    let (out, approved) = approve_until_done(&env, &run, out);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(approved, ["add_factorial", "test"]);
    let show = env.show(&run);
    assert_eq!(step(&show, "test")["output"]["exit_code"], 0);
    let cost = env.stepwise(&["cost", &run, "--json"]).json();
    assert_eq!(cost["input_tokens"], 120);
    assert_eq!(cost["output_tokens"], 60);
    assert_eq!(cost["total_micro_usd"], 0, "a local model costs nothing");
}

#[test]
fn llm_triage_escalates_high_severity_and_records_the_fields() {
    let server = FakeProvider::start(vec![openai_reply(
        "{\"label\": \"bug\", \"severity\": \"high\", \"summary\": \"Saving with an empty name crashes.\"}",
        80,
        25,
    )]);
    let env = env_with_local_settings(&server.base_url(), "k-local");
    let out = env.run(&example("llm-triage.yaml"), &[]);
    assert_eq!(out.code, 3, "{out}");
    let run = out.run_id();
    let seen = server.seen();
    assert_eq!(seen[0].body["response_format"]["type"], "json_object");
    let waiting = env.approvals();
    assert_eq!(
        waiting[0]["approval"]["proposal"]["message"],
        "High-severity bug: \"App crashes when saving\". Record it?"
    );
    let (out, approved) = approve_until_done(&env, &run, out);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(approved, ["escalate", "record"]);
    let note = env.read("triage/save-crash.md").expect("the note");
    assert!(note.contains("- label: bug\n- severity: high"), "{note}");
    assert!(
        note.contains("Saving with an empty name crashes."),
        "{note}"
    );

    // A low-severity report skips the escalation and still records; a rejected escalation
    // records nothing.
    let server = FakeProvider::start(vec![
        openai_reply(
            "{\"label\": \"question\", \"severity\": \"low\", \"summary\": \"How to save?\"}",
            80,
            20,
        ),
        openai_reply(
            "{\"label\": \"bug\", \"severity\": \"high\", \"summary\": \"Crash.\"}",
            80,
            20,
        ),
    ]);
    let env = env_with_local_settings(&server.base_url(), "k-local");
    let out = env.run(&example("llm-triage.yaml"), &["--input", "name=howto"]);
    let (out, approved) = approve_until_done(&env, &out.run_id(), out);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(approved, ["record"]);
    assert!(
        env.read("triage/howto.md")
            .is_some_and(|n| n.contains("label: question"))
    );
    let out = env.run(&example("llm-triage.yaml"), &["--input", "name=crash"]);
    let rejected = env.reject(&out.run_id(), "escalate", "duplicate");
    assert_eq!(rejected.code, 1, "{rejected}");
    assert_eq!(
        step(&env.show(&out.run_id()), "record")["status"],
        "skipped"
    );
    assert!(env.read("triage/crash.md").is_none());
}

#[test]
fn llm_plan_shows_the_plan_then_runs_its_steps_through_the_gates() {
    let plan = json!({"steps": [
        {"id": "add", "type": "edit_file", "path": "calc.py", "find": "# TODO: factorial",
         "replace": "def factorial(n):\n    if n < 0:\n        raise ValueError(n)\n    return 1 if n < 2 else n * factorial(n - 1)"},
        {"id": "test", "type": "run_command", "needs": ["add"], "command": ["python3", "-m", "unittest", "-q"]},
    ]});
    let server = FakeProvider::start(vec![openai_reply(&plan.to_string(), 900, 120)]);
    let env = env_with_local_settings(&server.base_url(), "k-local");
    copy_dir(&workflows_dir().join("demo"), &env.ws);
    let out = env.run(&example("llm-plan.yaml"), &[]);
    assert_eq!(out.code, 3, "{out}");
    let run = out.run_id();
    let user = server.seen()[0].body["messages"][1]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        user.starts_with("Goal: Add a factorial(n) function"),
        "{user}"
    );
    assert!(
        user.contains("# TODO: factorial"),
        "the module is in the context: {user}"
    );
    let waiting = env.approvals();
    assert_eq!(waiting[0]["approval"]["proposal"]["kind"], "plan");

    let (out, approved) = approve_until_done(&env, &run, out);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(
        approved.into_iter().collect::<BTreeSet<_>>(),
        ["plan", "add", "test"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    assert!(
        env.read("calc.py")
            .is_some_and(|c| c.contains("def factorial(n):"))
    );
    assert_eq!(step(&env.show(&run), "test")["output"]["exit_code"], 0);
}
