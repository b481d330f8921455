//! Plans: a model proposes steps, checked as a workflow and shown with what the policy would
//! ask of each; approved, they join the run after the plan step and pass the normal gates.

use serde_json::json;

use crate::fake_llm::{FakeProvider, openai_reply};
use crate::llm::env_with_provider;
use crate::support::{of_type, step};

const PLANNER: &str = "name: planner\ninputs:\n  module: {type: string, default: calc.py}\nsteps:\n  - id: plan\n    type: plan\n    model: m\n    goal: \"Add a factorial function to ${inputs.module} and test it\"\n    max_steps: 5\n";

fn plan_reply(steps: serde_json::Value) -> crate::fake_llm::Reply {
    openai_reply(&json!({ "steps": steps }).to_string(), 400, 80)
}

#[test]
fn an_approved_plan_joins_the_run_and_its_steps_pass_the_normal_gates() {
    let steps = json!([
        {"id": "look", "type": "read_file", "path": "${inputs.module}"},
        {"id": "add", "type": "edit_file", "needs": ["look"], "path": "${inputs.module}",
         "content": "${steps.look.output.content}def factorial(n):\n    return 1 if n < 2 else n * factorial(n - 1)\n"},
        {"id": "check", "type": "run_command", "needs": ["add"], "command": ["grep", "-c", "factorial", "calc.py"]},
    ]);
    let server = FakeProvider::start(vec![plan_reply(steps.clone())]);
    let env = env_with_provider("openai", &server.base_url());
    env.write("calc.py", "def add(a, b):\n    return a + b\n");
    let wf = env.workflow("planner.yaml", PLANNER);

    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 3, "a plan always waits: {out}");
    let run = out.run_id();

    // What was asked: the goal with the input filled in, the step schema as the reply's form.
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    let messages = seen[0].body["messages"]
        .as_array()
        .expect("messages")
        .clone();
    assert!(
        messages[1]["content"]
            .as_str()
            .unwrap_or_default()
            .contains("Add a factorial function to calc.py"),
        "{messages:?}"
    );
    assert_eq!(
        seen[0].body["response_format"]["schema"]["properties"]["steps"]["maxItems"],
        5
    );

    // The proposal: the steps, and what the policy would ask of each.
    let waiting = env.approvals();
    assert_eq!(waiting.len(), 1);
    let proposal = &waiting[0]["approval"]["proposal"];
    assert_eq!(proposal["kind"], "plan");
    assert_eq!(proposal["steps"], steps);
    let verdicts = proposal["verdicts"].as_array().expect("verdicts");
    let verdict = |id: &str| {
        verdicts
            .iter()
            .find(|v| v["id"] == id)
            .and_then(|v| v["approval"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        verdict("add").starts_with("decided when it runs"),
        "{verdicts:?}"
    );
    assert!(
        verdict("check").starts_with("asks a person"),
        "{verdicts:?}"
    );
    let listed = env.stepwise(&["approvals"]);
    assert!(listed.stdout.contains("3 planned steps"), "{listed}");
    assert!(
        listed
            .stdout
            .contains("· check (run_command): asks a person"),
        "{listed}"
    );
    assert_eq!(
        env.read("calc.py").as_deref(),
        Some("def add(a, b):\n    return a + b\n")
    );

    // Approved: the planned steps run, each stopping where the policy says.
    let approved = env.approve(&run, "plan", &[]);
    assert_eq!(approved.code, 3, "the planned edit waits: {approved}");
    let show = env.show(&run);
    assert_eq!(
        step(&show, "plan")["output"],
        json!({"planned": ["look", "add", "check"]})
    );
    assert_eq!(step(&show, "look")["status"], "succeeded");
    assert_eq!(step(&show, "add")["status"], "awaiting_approval");
    let approved = env.approve(&run, "add", &[]);
    assert_eq!(approved.code, 3, "the planned command waits: {approved}");
    assert!(
        env.read("calc.py")
            .unwrap_or_default()
            .contains("def factorial(n):")
    );
    let approved = env.approve(&run, "check", &[]);
    assert_eq!(approved.code, 0, "{approved}");
    let show = env.show(&run);
    assert_eq!(
        step(&show, "check")["output"]["stdout"],
        "2\n",
        "two lines name factorial"
    );
    assert_eq!(server.seen().len(), 1, "the model was asked once");

    // The log replays exactly, plan and all, asking no server.
    drop(server);
    let replayed = env.stepwise(&["replay", &run, "--json"]);
    assert_eq!(replayed.json()["matches"], true, "{replayed}");
}

#[test]
fn a_plan_that_is_not_a_valid_workflow_is_asked_again_with_what_is_wrong() {
    let server = FakeProvider::start(vec![
        plan_reply(json!([{"id": "deeper", "type": "plan", "model": "m", "goal": "more"}])),
        plan_reply(json!([{"id": "x", "type": "read_file", "path": "${steps.nowhere.output}"}])),
        plan_reply(json!([{"id": "note", "type": "set", "values": {"done": true}}])),
    ]);
    let env = env_with_provider("openai", &server.base_url());
    let wf = env.workflow("planner.yaml", PLANNER);
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 3, "{out}");
    let seen = server.seen();
    assert_eq!(seen.len(), 3);
    let feedback = |n: usize| {
        seen[n].body["messages"]
            .as_array()
            .and_then(|m| m.last())
            .and_then(|m| m["content"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        feedback(1).contains("may not plan again"),
        "{}",
        feedback(1)
    );
    assert!(feedback(2).contains("nowhere"), "{}", feedback(2));

    // Rejected: the plan's step fails with the reason, and nothing joins.
    let run = out.run_id();
    let rejected = env.reject(&run, "plan", "not what I asked");
    assert_eq!(rejected.code, 1, "{rejected}");
    let show = env.show(&run);
    assert!(
        show["steps"].as_array().is_some_and(|s| s.len() == 1),
        "{show}"
    );
    let events = env.events(&run);
    assert_eq!(of_type(&events, "ApprovalRejected").len(), 1);
}
