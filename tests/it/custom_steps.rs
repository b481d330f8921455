//! Step types added without rebuilding: a manifest in the workspace's `.stepwise/steps/` (or
//! the user's config dir) declares a type whose work an executable does, speaking JSON on
//! stdin and stdout. Its inputs are checked at validation with line and step; each use is a
//! command operation under the policy (asked by default), recorded and replayed without
//! running the executable again; an executable that misbehaves ends the step with a clear
//! error.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{Env, of_type, step};

const COUNT_MANIFEST: &str = r#"
name: word-count
description: Counts the words of a text
inputs:
  type: object
  properties:
    text: {type: string, description: The text}
    min: {type: integer}
  required: [text]
  additionalProperties: false
command: [python3, ./count.py]
timeout: 20s
"#;

/// Counts words, and leaves a mark for each time it runs.
const COUNT_PY: &str = r#"
import json, os, sys
request = json.load(sys.stdin)
with open(os.path.join(request["workspace"], "ran.txt"), "a") as f:
    f.write(request["step_id"] + "\n")
words = len(request["inputs"]["text"].split())
print(json.dumps({"output": {"words": words, "run": request["run_id"]}}))
"#;

const COUNT_WORKFLOW: &str = r#"
name: count-words
inputs:
  text: {type: string, default: "one two three four"}
steps:
  - id: count
    type: word-count
    with:
      text: ${inputs.text}
      min: 2
  - id: report
    needs: [count]
    type: set
    values:
      words: ${steps.count.output.words}
"#;

fn with_count_type(env: &Env) {
    env.write(".stepwise/steps/word-count.yaml", COUNT_MANIFEST);
    env.write(".stepwise/steps/count.py", COUNT_PY);
}

/// `stepwise validate` run in the workspace (where its manifests are found by default).
fn validate(env: &Env, workflow: &std::path::Path) -> crate::support::Out {
    let mut cmd = env.command(&["validate", workflow.to_str().expect("utf-8")]);
    cmd.current_dir(&env.ws);
    crate::support::Out::from(cmd.output().expect("start stepwise"))
}

#[test]
fn a_custom_step_asks_runs_feeds_its_output_downstream_and_replays_without_running() {
    let env = Env::new();
    with_count_type(&env);
    let wf = env.workflow("count.yaml", COUNT_WORKFLOW);
    let out = validate(&env, &wf);
    assert_eq!(out.code, 0, "{out}");

    // Approval asked (the manifest's default), with the inputs the command will read shown.
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 3, "{out}");
    let run = out.run_id();
    let approvals = env.stepwise(&["approvals"]);
    assert!(
        approvals
            .stdout
            .contains("step type `word-count` asks a person"),
        "{approvals}"
    );
    assert!(
        approvals
            .stdout
            .contains(r#"stdin {"inputs":{"min":2,"text":"one two three four"}"#),
        "{approvals}"
    );
    assert!(env.read("ran.txt").is_none(), "ran before approval");

    let out = env.approve(&run, "count", &[]);
    assert_eq!(out.code, 0, "{out}");
    let show = env.show(&run);
    assert_eq!(
        step(&show, "count")["output"],
        json!({"words": 4, "run": run})
    );
    assert_eq!(step(&show, "report")["output"], json!({"words": 4}));
    assert_eq!(env.read("ran.txt").as_deref(), Some("count\n"));

    // The run recorded the manifest it used.
    let events = env.events(&run);
    let started = &of_type(&events, "RunStarted")[0]["data"];
    let recorded = &started["step_types"][0];
    assert!(
        recorded["path"]
            .as_str()
            .is_some_and(|p| p.ends_with(".stepwise/steps/word-count.yaml")),
        "{started}"
    );
    assert!(
        recorded["hash"]
            .as_str()
            .is_some_and(|h| h.starts_with("sha256:"))
    );

    // Replay takes the recorded answer and the recorded manifest: the executable gone and
    // the manifest changed since make no difference.
    std::fs::remove_file(env.ws.join(".stepwise/steps/count.py")).expect("remove");
    env.write(
        ".stepwise/steps/word-count.yaml",
        "name: word-count\ninputs: {type: object, required: [other]}\ncommand: [false]\napproval: allow\n",
    );
    for extra in [&[][..], &["--recorded"][..]] {
        let mut args = vec!["replay", run.as_str()];
        args.extend_from_slice(extra);
        let out = env.stepwise(&args);
        assert_eq!(out.code, 0, "{out}");
        assert!(out.stdout.contains("decisions match"), "{out}");
        assert!(out.stdout.contains("nothing was performed"), "{out}");
    }
    assert_eq!(
        env.read("ran.txt").as_deref(),
        Some("count\n"),
        "replay ran the executable"
    );
}

#[test]
fn inputs_that_do_not_match_the_schema_are_errors_with_line_and_step() {
    let env = Env::new();
    with_count_type(&env);
    let wf = env.workflow(
        "bad.yaml",
        r#"name: bad
steps:
  - id: first
    type: set
    values: {x: 1}
  - id: count
    type: word-count
    with:
      text: 12
      colour: red
  - id: other
    type: no-such-type
"#,
    );
    let out = validate(&env, &wf);
    assert_eq!(out.code, 2, "{out}");
    let file = wf.display().to_string();
    for expected in [
        format!("{file}:9:7: step `count`: `with.text`: 12 is not of type \"string\""),
        format!(
            "{file}:10:7: step `count`: `with`: Additional properties are not allowed ('colour' was unexpected)"
        ),
        format!(
            "{file}:12:5: step `other`: unknown step type `no-such-type`: the built-in types are read_file"
        ),
    ] {
        assert!(
            out.stdout.contains(&expected),
            "missing {expected:?} in:\n{out}"
        );
    }
    // A built-in field on a custom step is named, at its line.
    let mixed = env.workflow(
        "mixed.yaml",
        "name: mixed\nsteps:\n  - id: mixed\n    type: word-count\n    with: {text: a}\n    path: x\n",
    );
    let out = validate(&env, &mixed);
    assert_eq!(out.code, 2, "{out}");
    let expected = format!(
        "{}:6:5: step `mixed`: unknown field `path`, expected `with`",
        mixed.display()
    );
    assert!(
        out.stdout.contains(&expected),
        "missing {expected:?} in:\n{out}"
    );

    // Which inputs are given is literal, templates or not: a missing or unexpected one is
    // found at validation.
    let templated = env.workflow(
        "templated.yaml",
        "name: t\ninputs:\n  n: {type: integer, default: 1}\nsteps:\n  - id: count\n    type: word-count\n    with:\n      min: ${inputs.n}\n      tpyo: ${inputs.n}\n",
    );
    let out = validate(&env, &templated);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stdout.contains("\"text\" is a required property"),
        "{out}"
    );
    assert!(out.stdout.contains(":9:7: step `count`: `with`: Additional properties are not allowed ('tpyo' was unexpected)"), "{out}");

    // Without the workspace's manifests, the type is unknown.
    let out = env.stepwise(&[
        "validate",
        &file,
        "--workspace",
        env.root().to_str().unwrap(),
    ]);
    assert!(
        out.stdout.contains("unknown step type `word-count`"),
        "{out}"
    );

    // A template's value is checked when the step runs, against the schema, and fails there.
    let wf = env.workflow(
        "late.yaml",
        "name: late\ninputs:\n  n: {type: integer, default: 5}\nsteps:\n  - id: count\n    type: word-count\n    with:\n      text: ${inputs.n}\n",
    );
    assert_eq!(validate(&env, &wf).code, 0);
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 1, "{out}");
    let show = env.show(&out.run_id());
    let error = step(&show, "count")["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        error.contains("do not match the manifest's schema") && error.contains("`with.text`"),
        "{error}"
    );
    assert!(env.read("ran.txt").is_none());
}

#[test]
fn steps_lists_custom_types_with_their_inputs_and_a_broken_manifest_with_why() {
    let env = Env::new();
    with_count_type(&env);
    env.write(".stepwise/steps/broken.yaml", "name: other\ncommand: [x]\n");
    // The user's own step types, from the config dir.
    let user_dir = env.root().join("config/stepwise/steps");
    std::fs::create_dir_all(&user_dir).unwrap();
    std::fs::write(
        user_dir.join("shout.yaml"),
        "name: shout\ncommand: [tr, a-z, A-Z]\napproval: allow\n",
    )
    .unwrap();
    let ws = env.ws.to_str().unwrap();
    let listed = env.stepwise(&["steps", "--workspace", ws, "--json"]).json();
    let by_name = |name: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not in {listed}"))
    };
    let count = by_name("word-count");
    assert_eq!(count["description"], "Counts the words of a text");
    assert_eq!(count["approval"], "ask");
    assert_eq!(
        count["fields"],
        json!([
            {"name": "min", "required": false, "kind": "integer", "description": ""},
            {"name": "text", "required": true, "kind": "string", "description": "The text"},
        ])
    );
    assert!(
        by_name("broken")["problem"]
            .as_str()
            .is_some_and(|p| p.contains("the file is `broken`"))
    );
    assert_eq!(by_name("shout")["approval"], "allow");
    assert!(by_name("run_command")["source"] == "built-in");
    let text = env.stepwise(&["steps", "--workspace", ws]);
    assert!(
        text.stdout.contains("with.text          string, required"),
        "{text}"
    );

    // A workspace whose steps directory is a link elsewhere has its manifests refused.
    let elsewhere = env.root().join("elsewhere");
    std::fs::rename(env.ws.join(".stepwise/steps"), &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, env.ws.join(".stepwise/steps")).unwrap();
    let listed = env.stepwise(&["steps", "--workspace", ws, "--json"]).json();
    let count = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "word-count")
        .cloned()
        .unwrap();
    assert!(
        count["problem"]
            .as_str()
            .is_some_and(|p| p.contains("is a symbolic link")),
        "{count}"
    );
}

/// A step type whose executable is `script` (Python), allowed to run without asking.
fn misbehaving(env: &Env, script: &str, timeout: &str) -> serde_json::Value {
    env.write(
        ".stepwise/steps/odd.yaml",
        &format!("name: odd\ncommand: [python3, ./odd.py]\napproval: allow\ntimeout: {timeout}\n"),
    );
    env.write(".stepwise/steps/odd.py", script);
    let wf = env.workflow(
        "odd.yaml",
        "name: odd\nsteps:\n  - id: odd\n    type: odd\n    with: {x: 1}\n",
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 1, "{out}");
    env.show(&out.run_id())
}

#[test]
fn an_executable_that_misbehaves_ends_its_step_with_a_clear_error() {
    let env = Env::new();
    let error = |show: &serde_json::Value| {
        step(show, "odd")["error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };

    let show = misbehaving(&env, "print('hello, not json')\n", "20s");
    let e = error(&show);
    assert!(e.contains("step type `odd`: its command exited with code 0 and printed `hello, not json` on stdout, not a JSON object"), "{e}");

    let show = misbehaving(
        &env,
        "import sys\nsys.stderr.write('boom: no config\\n')\nsys.exit(4)\n",
        "20s",
    );
    let e = error(&show);
    assert!(
        e.contains("exited with code 4 and printed nothing on stdout")
            && e.contains("stderr ends: `boom: no config`"),
        "{e}"
    );

    let show = misbehaving(
        &env,
        "import json\nprint(json.dumps({'error': 'the input x is odd'}))\n",
        "20s",
    );
    assert_eq!(error(&show), "step type `odd` failed: the input x is odd");

    // Huge output: counted, not kept, and an error rather than a cut answer.
    let show = misbehaving(
        &env,
        "import sys\nsys.stdout.write('{\"output\": \"' + 'x' * 5000000 + '\"}')\n",
        "20s",
    );
    let e = error(&show);
    assert!(
        e.contains("printed 5000014 bytes on stdout; an answer may be at most 1048576 bytes"),
        "{e}"
    );
    let events = env.events(show["run"]["run_id"].as_str().expect("the run's id"));
    let largest = events
        .iter()
        .map(|e| e.to_string().len())
        .max()
        .unwrap_or(0);
    assert!(
        largest < 1_200_000 * 2,
        "an event of {largest} bytes was recorded"
    );

    // Inputs too large to give: refused before anything runs.
    env.write(".stepwise/steps/odd.py", "print('{\"output\": 1}')\n");
    env.write("big.txt", &"x".repeat(1_000_000));
    env.workspace_policy("  - allow: read_file\n");
    let big = env.workflow(
        "big.yaml",
        "name: big\nsteps:\n  - id: r\n    type: read_file\n    path: big.txt\n  - id: odd\n    needs: [r]\n    type: odd\n    with: {a: '${steps.r.output.content}', b: '${steps.r.output.content}', c: '${steps.r.output.content}', d: '${steps.r.output.content}', e: '${steps.r.output.content}'}\n",
    );
    let out = env.run(&big, &[]);
    assert_eq!(out.code, 1, "{out}");
    let e = error(&env.show(&out.run_id()));
    assert!(
        e.contains("its inputs take") && e.contains("at most 4 MiB"),
        "{e}"
    );

    // A hang: killed at the manifest's timeout, with its process group.
    let started = Instant::now();
    let show = misbehaving(&env, "import time\ntime.sleep(600)\n", "1s");
    assert!(started.elapsed() < Duration::from_secs(30));
    let e = error(&show);
    assert!(
        e.contains("step type `odd`: its command did not answer within 1s and was killed"),
        "{e}"
    );
    let script = env.ws.join(".stepwise/steps/odd.py").display().to_string();
    assert!(
        crate::support::running_with_arg(&script).is_empty(),
        "the hung command lives on"
    );
}

#[test]
fn a_custom_steps_command_is_under_the_policy_like_any_command() {
    let env = Env::new();
    env.write(
        ".stepwise/steps/shout.yaml",
        "name: shout\ncommand: [python3, ./shout.py]\napproval: allow\n",
    );
    env.write(
        ".stepwise/steps/shout.py",
        "import json, sys\nr = json.load(sys.stdin)\nprint(json.dumps({'output': r['inputs']['text'].upper()}))\n",
    );
    let wf = env.workflow(
        "shout.yaml",
        "name: shout\nsteps:\n  - id: s\n    type: shout\n    with: {text: hi}\n",
    );
    // `approval: allow`: no person asked; the decision names the manifest.
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 0, "{out}");
    let run = out.run_id();
    assert_eq!(step(&env.show(&run), "s")["output"], "HI");
    let granted = of_type(&env.events(&run), "ApprovalGranted")[0].clone();
    assert!(
        granted["data"]["mode"]["rule"]
            .as_str()
            .is_some_and(|r| r.contains("step type `shout` allows its command")),
        "{granted}"
    );

    // A policy rule that denies the command wins over the manifest.
    env.workspace_policy("  - deny: run_command\n    command: \"python3 *\"\n");
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 1, "{out}");
    let error = step(&env.show(&out.run_id()), "s")["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(error.contains("run_command refused by policy"), "{error}");
    // And one that asks is asked.
    env.workspace_policy("  - ask: run_command\n    command: \"python3 *\"\n");
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 3, "{out}");
}
