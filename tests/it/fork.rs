//! Fork: a new run from the middle of a run with a changed input: nothing before the fork
//! point performed again (a side-effect counter outside the workspace and the model server's
//! request count prove it), its parent link, its own result; into another directory (a copy of
//! the workspace as it was then) and in place (the parent's workspace put back first, as a
//! proposal approved like a rewind); replay of the fork matches.

use std::os::unix::fs::PermissionsExt;

use serde_json::Value;

use crate::fake_llm::{FakeProvider, openai_reply};
use crate::llm::env_with_provider;
use crate::support::{Env, of_type, step};

/// A run of `prepare` (a command counted in `counter.log`, outside the workspace), `ask` (a
/// model call) and `greet` (a command counted too, writing the greeting input to `out.txt`).
fn finished_parent(env: &Env) -> String {
    env.allow_everything();
    let counter = env.root().join("counter.log");
    let counter = counter.to_str().expect("utf-8");
    let wf = env.workflow(
        "chain.yaml",
        &format!(
            r#"
name: chain
inputs:
  greeting: {{type: string, default: hello}}
steps:
  - id: prepare
    type: run_command
    command: "echo prepare >> {counter}; printf 'base\n' > base.txt"
  - id: ask
    needs: [prepare]
    type: prompt
    model: m
    prompt: Name a colour.
  - id: greet
    needs: [ask]
    type: run_command
    command: "echo greet >> {counter}; printf '${{inputs.greeting}} ${{steps.ask.output.text}}\n' > out.txt"
"#
        ),
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(env.read("out.txt").as_deref(), Some("hello teal\n"));
    out.run_id()
}

fn counted(env: &Env) -> String {
    std::fs::read_to_string(env.root().join("counter.log")).unwrap_or_default()
}

fn fork_origin(env: &Env, run: &str) -> Value {
    let events = env.events(run);
    events[0]["data"]["fork"].clone()
}

#[test]
fn a_fork_into_another_directory_reuses_what_came_before_and_changes_what_follows() {
    let server = FakeProvider::start(vec![openai_reply("teal", 10, 2)]);
    let env = env_with_provider("openai", &server.base_url());
    env.write("run.sh", "#!/bin/sh\necho hi\n");
    let script = env.ws.join("run.sh");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let parent = finished_parent(&env);
    assert_eq!(counted(&env), "prepare\ngreet\n");
    assert_eq!(server.seen().len(), 1);

    let copy = env.root().join("forked");
    let out = env.stepwise(&[
        "fork",
        &parent,
        "--from",
        "greet",
        "--input",
        "greeting=bonjour",
        "--workspace",
        copy.to_str().expect("utf-8"),
        "--json",
    ]);
    assert_eq!(out.code, 0, "{out}");
    let forked = out.run_id();
    assert_ne!(forked, parent);
    assert_eq!(
        counted(&env),
        "prepare\ngreet\ngreet\n",
        "only `greet` ran again"
    );
    assert_eq!(server.seen().len(), 1, "the model was not called again");
    let read = |rel: &str| std::fs::read_to_string(copy.join(rel)).ok();
    assert_eq!(read("out.txt").as_deref(), Some("bonjour teal\n"));
    assert_eq!(
        read("base.txt").as_deref(),
        Some("base\n"),
        "the copy as it was"
    );
    assert!(
        read(".stepwise/policy.yaml").is_some(),
        "the policy goes along"
    );
    let mode = std::fs::metadata(copy.join("run.sh"))
        .expect("run.sh")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755, "a script stays executable");
    assert_eq!(
        env.read("out.txt").as_deref(),
        Some("hello teal\n"),
        "the parent's stays"
    );

    let origin = fork_origin(&env, &forked);
    assert_eq!(origin["parent"], parent.as_str());
    assert_eq!(origin["from"], "greet");
    let show = env.show(&forked);
    assert_eq!(show["fork"]["parent"], parent.as_str());
    assert_eq!(step(&show, "ask")["output"]["text"], "teal");
    assert_eq!(show["run"]["workspace"], copy.to_str().expect("utf-8"));
    let runs = env.stepwise(&["runs", "--json"]).json();
    let listed = runs
        .as_array()
        .and_then(|r| r.iter().find(|r| r["run_id"] == forked.as_str()))
        .cloned()
        .expect("the fork is listed");
    assert_eq!(listed["parent"], parent.as_str(), "{listed}");
    let replayed = env.stepwise(&["replay", &forked]);
    assert_eq!(replayed.code, 0, "{replayed}");
    assert_eq!(server.seen().len(), 1);
}

#[test]
fn a_fork_in_place_first_proposes_putting_the_workspace_back() {
    let server = FakeProvider::start(vec![openai_reply("teal", 10, 2)]);
    let env = env_with_provider("openai", &server.base_url());
    let parent = finished_parent(&env);
    let args = [
        "fork",
        &parent,
        "--from",
        "greet",
        "--input",
        "greeting=hola",
        "--json",
    ];
    let out = env.stepwise(&args);
    assert_eq!(
        out.code, 3,
        "it waits for the restore to be approved: {out}"
    );
    let proposal = &out.json()["needs_restore"];
    let files: Vec<&str> = proposal["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(|f| f["path"].as_str())
        .collect();
    assert_eq!(files, ["out.txt"]);
    assert_eq!(
        env.read("out.txt").as_deref(),
        Some("hello teal\n"),
        "nothing yet"
    );

    let hash = proposal["proposal_hash"]
        .as_str()
        .expect("hash")
        .to_string();
    let mut approved = args.to_vec();
    approved.extend(["--proposal", &hash]);
    let out = env.stepwise(&approved);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(env.read("out.txt").as_deref(), Some("hola teal\n"));
    assert_eq!(counted(&env), "prepare\ngreet\ngreet\n");
    assert_eq!(of_type(&env.events(&parent), "RewindApproved").len(), 1);
}

#[test]
fn a_fork_that_cannot_go_on_is_refused_saying_why() {
    let server = FakeProvider::start(vec![openai_reply("teal", 10, 2)]);
    let env = env_with_provider("openai", &server.base_url());
    let parent = finished_parent(&env);
    let other = env.workflow(
        "other.yaml",
        "name: other\nsteps:\n  - id: greet\n    type: set\n    values: {}\n",
    );
    let copy = env.root().join("elsewhere");
    let inside = env.ws.join("forked-here");
    for (args, says) in [
        (
            vec![
                "fork",
                &parent,
                "--from",
                "greet",
                "--workspace",
                inside.to_str().expect("utf-8"),
            ],
            "inside the run's workspace",
        ),
        (
            vec!["fork", &parent, "--from", "nope", "--workspace", "x"],
            "never started",
        ),
        (
            vec![
                "fork",
                &parent,
                "--from",
                "greet",
                "--workflow",
                other.to_str().expect("utf-8"),
                "--workspace",
                copy.to_str().expect("utf-8"),
            ],
            "cannot go on",
        ),
        (
            vec![
                "fork",
                &parent,
                "--from",
                "greet",
                "--input",
                "colour=red",
                "--yes",
            ],
            "colour",
        ),
    ] {
        let out = env.stepwise(&args);
        assert_eq!(out.code, 2, "{args:?}: {out}");
        assert!(out.to_string().contains(says), "{args:?}: {out}");
    }
    assert_eq!(
        env.stepwise(&["runs", "--json"])
            .json()
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}
