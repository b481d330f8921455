//! Per-hunk review: an edit approved hunk by hunk from the CLI (`--hunks`, `--reject-hunks`
//! with a reason), the file holding exactly the accepted hunks, the decision recorded with
//! what was applied and why the rest was not, an agent told which hunks were rejected, and
//! bad hunk numbers refused without losing the proposal.

use serde_json::{Value, json};

use crate::agent::calls;
use crate::fake_llm::{FakeProvider, openai_reply};
use crate::llm::env_with_provider;
use crate::support::{Env, of_type, step};

/// Twenty numbered lines.
pub(crate) fn original() -> String {
    (1..=20).map(|n| format!("line {n}\n")).collect()
}

/// Three changes far enough apart to be three hunks: line 2, line 10, line 19.
pub(crate) fn proposed() -> String {
    original()
        .replace("line 2\n", "line two\n")
        .replace("line 10\n", "line ten\n")
        .replace("line 19\n", "line nineteen\n")
}

/// A run waiting on one edit of `config.txt` with three hunks.
pub(crate) fn waiting_edit(env: &Env) -> String {
    env.write("config.txt", &original());
    let content = serde_json::to_string(&proposed()).expect("json");
    let wf = env.workflow(
        "edit.yaml",
        &format!(
            "name: edit\nsteps:\n  - id: change\n    type: edit_file\n    path: config.txt\n    content: {content}\n"
        ),
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 3, "{out}");
    out.run_id()
}

fn granted(env: &Env, run: &str) -> Value {
    let events = env.events(run);
    let granted = of_type(&events, "ApprovalGranted");
    assert_eq!(granted.len(), 1, "{events:?}");
    granted[0]["data"].clone()
}

#[test]
fn approving_two_of_three_hunks_writes_exactly_those_and_records_the_rejected_one() {
    let env = Env::new();
    let run = waiting_edit(&env);
    // The listing numbers the hunks a person picks from.
    let listed = env.stepwise(&["approvals"]);
    assert_eq!(listed.code, 0, "{listed}");
    let text = listed.to_string();
    for n in 1..=3 {
        assert!(text.contains(&format!("hunk {n} of 3:")), "{text}");
    }

    let out = env.approve(
        &run,
        "change",
        &["--hunks", "1,3", "--reason", "line 10 stays as it is"],
    );
    assert_eq!(out.code, 0, "{out}");
    let expected = original()
        .replace("line 2\n", "line two\n")
        .replace("line 19\n", "line nineteen\n");
    assert_eq!(env.read("config.txt").as_deref(), Some(expected.as_str()));

    let data = granted(&env, &run);
    assert_eq!(
        data["hunks"],
        json!({"applied": [1, 3], "rejected": [2], "reason": "line 10 stays as it is"})
    );
    assert_eq!(data["edited"]["content"], expected.as_str());
    assert_ne!(data["approved_hash"], data["proposal_hash"]);
    let show = env.show(&run);
    assert_eq!(show["status"], "succeeded");
    let output = &step(&show, "change")["output"];
    assert_eq!(output["hunks"]["applied"], json!([1, 3]));
    assert!(
        !output["diff"].as_str().unwrap_or("").contains("line ten"),
        "the output's diff is what was applied: {output}"
    );
    let replayed = env.stepwise(&["replay", &run]);
    assert_eq!(replayed.code, 0, "{replayed}");
}

#[test]
fn rejecting_a_hunk_by_number_applies_the_others_and_rejecting_all_rejects_the_edit() {
    let env = Env::new();
    let run = waiting_edit(&env);
    let out = env.approve(
        &run,
        "change",
        &["--reject-hunks", "2", "--reason", "keep ten"],
    );
    assert_eq!(out.code, 0, "{out}");
    assert!(
        env.read("config.txt")
            .is_some_and(|t| t.contains("line two\n") && t.contains("line 10\n")),
    );
    assert_eq!(granted(&env, &run)["hunks"]["rejected"], json!([2]));

    let env = Env::new();
    let run = waiting_edit(&env);
    let out = env.approve(
        &run,
        "change",
        &["--reject-hunks", "1,2,3", "--reason", "not now"],
    );
    assert_eq!(out.code, 1, "the run fails, its edit rejected: {out}");
    assert_eq!(env.read("config.txt"), Some(original()));
    let events = env.events(&run);
    let rejected = of_type(&events, "ApprovalRejected");
    assert_eq!(
        rejected[0]["data"]["reason"],
        "every hunk of the edit was rejected: not now"
    );
}

#[test]
fn a_hunk_the_edit_does_not_have_is_refused_and_the_edit_still_waits() {
    let env = Env::new();
    let run = waiting_edit(&env);
    for args in [
        &["--hunks", "1,4"][..],
        &["--reject-hunks", "7"][..],
        &["--hunks", "0"][..],
    ] {
        let out = env.approve(&run, "change", args);
        assert_ne!(out.code, 0, "{args:?}: {out}");
        assert!(out.to_string().contains("there is no hunk"), "{out}");
    }
    let out = env.approve(&run, "change", &["--reason", "why"]);
    assert_ne!(out.code, 0, "a reason without hunks is refused: {out}");
    assert_eq!(env.read("config.txt"), Some(original()));
    assert_eq!(env.show(&run)["status"], "awaiting_approval");
    let out = env.approve(&run, "change", &["--hunks", "1,2,3"]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(env.read("config.txt"), Some(proposed()));
}

#[test]
fn an_agent_is_told_which_hunks_were_rejected_and_why() {
    let server = FakeProvider::start(vec![
        calls(&[(
            "w1",
            "write_file",
            json!({"path": "config.txt", "content": proposed()}),
        )]),
        openai_reply("Done.", 50, 8),
    ]);
    let env = env_with_provider("openai", &server.base_url());
    env.write("config.txt", &original());
    let wf = env.workflow(
        "agent.yaml",
        "name: agent\nsteps:\n  - id: tidy\n    type: agent\n    model: m\n    instructions: Spell the numbers out.\n    tools: [write_file]\n",
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 3, "{out}");
    let run = out.run_id();
    let out = env.approve(
        &run,
        "tidy",
        &["--reject-hunks", "3", "--reason", "19 is read by a script"],
    );
    assert_eq!(out.code, 0, "{out}");
    let told = crate::agent::messages(&server, 1)
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap_or("").to_string())
        .collect::<Vec<_>>();
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(
        told[0].starts_with(
            "a person reviewed your edit hunk by hunk: hunks 1 and 2 applied; hunk 3 rejected (19 is read by a script)"
        ),
        "{told:?}"
    );
    assert!(
        env.read("config.txt")
            .is_some_and(|t| t.contains("line ten\n") && t.contains("line 19\n"))
    );
}
