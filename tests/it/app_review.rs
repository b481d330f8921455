//! Reviewing an edit hunk by hunk in the window, with its keys: `h` opens the review, `j`/`k`
//! move between hunks, `n` rejects one, `a` applies the rest, which is what lands on disk and
//! in the log.

use serde_json::json;

use crate::app::{LIVE, app_binary, app_env, wait_until};
use crate::hunks::{original, waiting_edit};
use crate::support::{Env, of_type};
use crate::webdriver::{Display, Driver, Session};

#[test]
fn the_window_applies_the_hunks_a_person_accepts_with_y_and_n() {
    let env = Env::new();
    let run = waiting_edit(&env);

    let display = Display::start();
    let driver = Driver::start(&display, &app_env(&env));
    let window = Session::open(&driver, &app_binary());
    window.click("Approvals");
    window.wait_for_text("the edit's diff", LIVE, |t| {
        t.contains("line two") && t.contains("line nineteen")
    });
    window.keys("h");
    window.wait_for_text("the review under way", LIVE, |t| {
        t.contains("hunk 1 of 3 · accepted")
    });
    // Accept the first, reject the second, leave the third accepted.
    window.keys("y");
    window.keys("n");
    window.wait_for_text("the second hunk rejected", LIVE, |t| {
        t.contains("hunk 2 of 3 · rejected")
    });
    let states = window.script(
        "return [...document.querySelectorAll('[data-hunk]')].map(h => h.dataset.hunkState);",
        vec![],
    );
    assert_eq!(states, json!(["accepted", "rejected", "accepted"]));
    window.keys("a");
    let expected = original()
        .replace("line 2\n", "line two\n")
        .replace("line 19\n", "line nineteen\n");
    wait_until("the accepted hunks on disk", LIVE, || {
        env.read("config.txt").as_deref() == Some(expected.as_str())
    });
    let events = env.events(&run);
    let granted = of_type(&events, "ApprovalGranted");
    assert_eq!(
        granted[0]["data"]["hunks"],
        json!({"applied": [1, 3], "rejected": [2]})
    );
}
