//! A running command's output is shown live by `events --follow` in another process (and by
//! the app, over the same progress files), as it is printed; only the result is recorded.

use std::time::Duration;

use crate::support::{Env, step};

#[test]
fn a_commands_output_is_shown_live_while_it_runs_and_only_its_result_is_recorded() {
    let env = Env::new();
    env.allow_everything();
    let wf = env.workflow(
        "slow.yaml",
        "name: slow\nsteps:\n  - id: count\n    type: run_command\n    command: \"for i in 1 2 3 4 5 6; do echo line$i; sleep 0.3; done\"\n",
    );
    let engine = env.spawn_run(&wf);
    let run = env
        .first_run_id(Duration::from_secs(10))
        .expect("the run never started");
    let (follower, lines) = env.spawn_piped(&["events", &run, "--follow", "--json"]);
    let mut live = String::new();
    let mut seen_before_result = false;
    while let Some((_, line)) = lines.next(Duration::from_secs(20)) {
        let value: serde_json::Value = serde_json::from_str(&line).expect("json");
        if let Some(text) = value["progress"]["text"].as_str() {
            assert_eq!(value["progress"]["step"], "count");
            live.push_str(text);
            seen_before_result = true;
        }
        if value["type"] == "OperationSucceeded" {
            break;
        }
    }
    assert!(
        seen_before_result,
        "no output was shown while the command ran"
    );
    assert!(live.contains("line1\n"), "{live}");
    let out = engine.finish(Duration::from_secs(20));
    assert_eq!(out.code, 0, "{out}");
    drop(follower);

    let show = env.show(&run);
    assert_eq!(
        step(&show, "count")["output"]["stdout"],
        "line1\nline2\nline3\nline4\nline5\nline6\n"
    );
    let progress_events = env
        .database
        .events()
        .iter()
        .filter(|(_, event)| event.payload.to_string().contains("progress"))
        .count();
    assert_eq!(progress_events, 0, "progress is never recorded");
    // Nothing of it is left beside the database once the command is done.
    let leftovers: Vec<_> = walk(&env.root())
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".progress"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
