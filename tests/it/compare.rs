//! `stepwise diff`: two real runs of one workflow that differ in one input, one model reply
//! (the same request, answered differently) and one command's output (the same command, a file
//! changed between the runs).

use crate::fake_llm::{FakeProvider, env_with_fake_provider, openai_reply};

#[test]
fn diff_names_the_first_difference_and_each_step_s_verdict() {
    let server = FakeProvider::start(vec![
        openai_reply("the first answer", 5, 3),
        openai_reply("the second answer", 5, 3),
    ]);
    let env = env_with_fake_provider("openai", &server.base_url(), "k", "", "");
    env.allow_everything();
    env.write("value.txt", "one\n");
    let wf = env.workflow(
        "pair.yaml",
        r#"
name: pair
inputs:
  n:
    type: integer
    default: 1
steps:
  - id: constant
    type: set
    values: { x: 1 }
  - id: ask
    type: prompt
    model: m
    prompt: Say something.
  - id: read_value
    needs: [ask]
    type: run_command
    command: ["cat", "value.txt"]
  - id: tell
    needs: [read_value]
    type: set
    values: { n: "${inputs.n}" }
"#,
    );
    let first = env.run(&wf, &["--input", "n=1"]);
    assert_eq!(first.code, 0, "{first}");
    env.write("value.txt", "two\n");
    let second = env.run(&wf, &["--input", "n=2"]);
    assert_eq!(second.code, 0, "{second}");
    let (a, b) = (first.run_id(), second.run_id());

    let same = env.stepwise(&["diff", &a, &a, "--json"]);
    assert_eq!(same.code, 0, "{same}");
    assert_eq!(same.json()["same"], true);

    let out = env.stepwise(&["diff", &a, &b, "--json"]);
    assert_eq!(out.code, 1, "{out}");
    let report = out.json();
    assert_eq!(report["same_workflow"], true);
    assert_eq!(report["first_difference"]["what"], "input `n`", "{report}");
    let verdicts: Vec<(String, String, String)> = report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap_or_default().to_string(),
                s["verdict"].as_str().unwrap_or_default().to_string(),
                s["difference"]["what"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    let expected = [
        ("constant", "same", ""),
        ("ask", "differs", "the model's reply"),
        ("read_value", "differs", "the command's output"),
        ("tell", "differs", "its output"),
    ];
    assert_eq!(
        verdicts,
        expected
            .iter()
            .map(|(s, v, w)| (s.to_string(), v.to_string(), w.to_string()))
            .collect::<Vec<_>>()
    );
    let ask = &report["steps"][1]["difference"];
    assert_eq!(ask["field"], "text");
    assert_eq!(ask["first"], "the first answer");
    assert_eq!(ask["second"], "the second answer");
    let read = &report["steps"][2]["difference"];
    assert_eq!(read["field"], "stdout");
    assert_eq!(
        (read["first"].as_str(), read["second"].as_str()),
        (Some("one\n"), Some("two\n"))
    );

    let text = env.stepwise(&["diff", &a, &b]);
    assert_eq!(text.code, 1);
    assert!(
        text.stdout.contains("first difference: input `n`: 1 | 2"),
        "{text}"
    );
    assert!(
        text.stdout.contains("≠ ask") && text.stdout.contains("differs: the model's reply"),
        "{text}"
    );
    assert!(text.stdout.contains("= constant"), "{text}");
}
