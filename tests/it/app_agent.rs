//! An agent step in the real app window (WebDriver, under Xvfb): its edit approved with `a` in
//! the Approvals view, its question answered in the reply box with Enter, and its conversation
//! shown in the Run view, each call with its gate and what the model was told.

use serde_json::json;

use crate::agent::{calls, messages};
use crate::app::{LIVE, app_binary, app_env, wait_until};
use crate::fake_llm::{FakeProvider, openai_reply};
use crate::llm::env_with_provider;
use crate::support::step;
use crate::webdriver::{Display, Driver, Session};

#[test]
fn an_agents_edit_is_approved_and_its_question_answered_from_the_window() {
    let server = FakeProvider::start(vec![
        calls(&[(
            "e1",
            "edit_file",
            json!({"path": "notes.txt", "old_text": "milk", "new_text": "oat milk"}),
        )]),
        calls(&[(
            "q1",
            "ask_person",
            json!({"question": "Which shop should I use?"}),
        )]),
        openai_reply("Oat milk, from the corner shop.", 60, 9),
    ]);
    let env = env_with_provider("openai", &server.base_url());
    env.write("notes.txt", "buy milk\n");
    let wf = env.workflow(
        "agent.yaml",
        "name: agent\nsteps:\n  - id: shop\n    type: agent\n    model: m\n    instructions: Improve the list.\n    tools: [edit_file, ask_person]\n",
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 3, "the edit waits: {out}");
    let run = out.run_id();

    let display = Display::start();
    let mut vars = app_env(&env);
    vars.extend(env.vars.iter().cloned());
    let driver = Driver::start(&display, &vars);
    let window = Session::open(&driver, &app_binary());
    window.script("location.hash = '#/approvals';", vec![]);
    window.wait_for_text("the agent's edit as a diff", LIVE, |t| {
        t.contains("notes.txt") && t.contains("oat milk")
    });
    window.keys("a");
    // The app drives the run on: the agent asks its question.
    window.wait_for_text("the agent's question", LIVE, |t| {
        t.contains("Which shop should I use?")
    });
    assert_eq!(env.read("notes.txt").as_deref(), Some("buy oat milk\n"));
    window.keys("a");
    window.wait_for_text("the reply box", LIVE, |t| t.contains("Your answer"));
    window.keys("the corner shop\u{E007}");
    wait_until("the run to finish", LIVE, || {
        env.show(&run)["status"] == "succeeded"
    });
    let told = messages(&server, 2);
    let last = told
        .last()
        .and_then(|m| m["content"].as_str())
        .unwrap_or("");
    assert_eq!(last, "the corner shop");
    assert_eq!(
        step(&env.show(&run), "shop")["output"]["text"],
        "Oat milk, from the corner shop."
    );

    window.script(
        "location.hash = '#/run/' + arguments[0] + '?step=shop';",
        vec![json!(run)],
    );
    window.wait_for_text("the conversation", LIVE, |t| {
        t.contains("Turn 1")
            && t.contains("Turn 3")
            && t.contains("edit_file")
            && t.contains("`notes.txt` was written as proposed")
            && t.contains("Which shop should I use?")
            && t.contains("the corner shop")
            && t.contains("Oat milk, from the corner shop.")
    });
    let gates = window.script(
        "return [...document.querySelectorAll('[data-testid=call-gate]')].map(e => e.innerText);",
        vec![],
    );
    let gates = gates.to_string();
    assert!(gates.matches("approved by").count() == 2, "{gates}");
}
