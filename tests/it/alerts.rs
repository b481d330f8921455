//! Alerts (`alert: {slower_than}`): a run or step going for longer than its workflow says is
//! recorded once (`AlertRaised`), said as the CLI follows the run, and replayed as recorded; a
//! step quicker than its threshold raises nothing; a threshold that is not a duration is named.

use serde_json::Value;

use crate::support::Env;

const SLOW: &str = "name: slow
alert: {slower_than: 1s}
steps:
  - id: quick
    type: run_command
    command: [\"true\"]
    alert: {slower_than: 30s}
  - id: nap
    needs: [quick]
    type: run_command
    command: [\"sleep\", \"2\"]
    alert: {slower_than: 1s}
";

#[test]
fn a_slow_step_and_a_slow_run_each_raise_one_alert_and_a_quick_step_none() {
    let env = Env::new();
    env.allow_everything();
    let wf = env.workflow("slow.yaml", SLOW);
    let ws = env.ws.display().to_string();
    let out = env.stepwise(&["run", wf.to_str().expect("utf-8"), "--workspace", &ws]);
    assert_eq!(out.code, 0, "{out}");
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(
        said.contains("⏱ step nap has been going for longer than 1.0s"),
        "{said}"
    );
    assert!(
        said.contains("⏱ the run has been going for longer than 1.0s"),
        "{said}"
    );

    let run = env.runs()[0]["run_id"]
        .as_str()
        .expect("run id")
        .to_string();
    let events = env.events(&run);
    let alerts: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "AlertRaised")
        .collect();
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    let nap = alerts
        .iter()
        .find(|e| e["data"]["step"] == "nap")
        .expect("the step's alert");
    assert_eq!(nap["data"]["slower_than_ms"], 1000);
    assert!(
        nap["data"]["elapsed_ms"]
            .as_u64()
            .is_some_and(|ms| ms >= 1000),
        "{nap}"
    );
    assert!(
        alerts.iter().any(|e| e["data"].get("step").is_none()),
        "the run's own alert: {alerts:#?}"
    );
    assert!(!alerts.iter().any(|e| e["data"]["step"] == "quick"));

    // Replay answers from the log: the alerts are inputs, as recorded.
    let replayed = env.stepwise(&["replay", &run]);
    assert_eq!(replayed.code, 0, "{replayed}");
}

#[test]
fn a_threshold_that_is_not_a_duration_is_named_with_its_line() {
    let env = Env::new();
    let wf = env.workflow(
        "bad.yaml",
        "name: bad\nsteps:\n  - id: a\n    type: run_command\n    command: [\"true\"]\n    alert: {slower_than: soon}\n",
    );
    let out = env.stepwise(&["validate", wf.to_str().expect("utf-8")]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stdout.contains("alert.slower_than"), "{out}");
    assert!(out.stdout.contains("soon"), "{out}");
    assert!(
        out.stdout.contains(":6:") || out.stdout.contains(":3:"),
        "{out}"
    );
}
