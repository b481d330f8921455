//! A family of runs in the real app window: a parent whose `workflow` step runs a child run
//! that waits for a person. The Runs view lists the child right under its parent, the
//! parent's step opens the child, the inbox names the parent, and approving the child from
//! the window lets the parent finish.

use serde_json::json;

use crate::app::{LIVE, app_binary, app_env, wait_until};
use crate::support::{Env, step};
use crate::webdriver::{Display, Driver, Session};

#[test]
fn the_window_nests_a_child_run_under_its_parent_and_approving_it_finishes_the_parent() {
    let env = Env::new();
    env.allow_everything();
    env.workflow(
        "check-one.yaml",
        "name: check-one\ninputs:\n  what: {type: string}\nsteps:\n  - id: confirm\n    type: approval\n    message: Is ${inputs.what} right?\noutputs:\n  checked: ${inputs.what}\n",
    );
    let parent_wf = env.workflow(
        "check-all.yaml",
        "name: check-all\nsteps:\n  - id: sub\n    type: workflow\n    path: check-one.yaml\n    inputs:\n      what: the invoice\n  - id: after\n    needs: [sub]\n    type: set\n    values:\n      got: ${steps.sub.output.checked}\n",
    );
    // The CLI runs the parent until its child waits for a person, and lets go.
    let out = env.run(&parent_wf, &[]);
    assert_eq!(out.code, 3, "{out}");
    let parent = out.run_id();
    let children = env.show(&parent)["children"].clone();
    let child = children[0]["run_id"]
        .as_str()
        .expect("the parent names its child")
        .to_string();
    let short = |id: &str| id[..8].to_string();

    let display = Display::start();
    let driver = Driver::start(&display, &app_env(&env));
    let window = Session::open(&driver, &app_binary());

    // Runs: the child right under its parent, indented, naming it.
    window.script("location.hash = '#/runs';", vec![]);
    window.wait_for_text("both runs of the family", LIVE, |t| {
        t.contains("check-all") && t.contains("check-one")
    });
    let order = window.script(
        "return [...document.querySelectorAll('[data-testid=runs-list] [data-run]')] \
           .map(r => [r.getAttribute('data-run'), r.hasAttribute('data-child'), r.innerText]);",
        vec![],
    );
    let rows = order.as_array().cloned().unwrap_or_default();
    let at = |id: &str| rows.iter().position(|r| r[0] == json!(id));
    let (p, c) = (
        at(&parent).expect("the parent's row"),
        at(&child).expect("the child's row"),
    );
    assert_eq!(c, p + 1, "the child run is right under its parent: {order}");
    assert_eq!(rows[c][1], json!(true));
    let child_row = rows[c][2].as_str().unwrap_or_default();
    assert!(
        child_row.contains(&format!("child of {}", short(&parent))),
        "{child_row}"
    );

    // The parent's `workflow` step opens the child.
    window.script(
        "location.hash = '#/run/' + arguments[0] + '?step=sub';",
        vec![json!(parent)],
    );
    window.wait_for_text("the parent's step and its child run", LIVE, |t| {
        t.contains("Child run") && t.contains(&short(&child))
    });
    window.script(
        "document.querySelector('[data-testid=steps-list] [data-step=sub] [data-testid=child-run-link]').click();",
        vec![],
    );
    window.wait_for_text("the child run, naming its parent", LIVE, |t| {
        t.contains("check-one") && t.contains(&format!("child run of {}", short(&parent)))
    });

    // The inbox names the parent of the child's question; approving it there finishes both.
    window.script(
        "location.hash = '#/approvals?run=' + arguments[0] + '&step=confirm';",
        vec![json!(child)],
    );
    window.wait_for_text("the child's question with its parent", LIVE, |t| {
        t.contains("Is the invoice right?")
            && t.contains(&format!("child run of {}, its step sub", short(&parent)))
    });
    window.click("Approve");
    wait_until("the parent to finish", LIVE * 2, || {
        env.show(&parent)["status"] == "succeeded"
    });
    assert_eq!(env.show(&child)["status"], "succeeded");
    assert_eq!(
        step(&env.show(&parent), "after")["output"],
        json!({"got": "the invoice"})
    );
}
