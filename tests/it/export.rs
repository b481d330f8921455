//! The audit export: a real run with a manual approval, a rule's approval, a command whose
//! output is hostile markup and a model call, written as HTML and JSON; the HTML opened in
//! Chromium headless (its screenshot kept in `target/export-screenshots/`), its last link the one
//! `stepwise verify` prints.

use crate::fake_llm::{FakeProvider, env_with_fake_provider, openai_reply};

#[test]
fn an_export_carries_every_decision_and_the_last_link_verify_prints() {
    let server = FakeProvider::start(vec![openai_reply("fine", 12, 3)]);
    let env = env_with_fake_provider("openai", &server.base_url(), "k", "", "");
    env.workspace_policy("  - allow: run_command\n    unchecked_shell: true\n");
    env.write("notes.txt", "old line\n");
    let wf = env.workflow(
        "audited.yaml",
        r#"
name: audited
steps:
  - id: ask
    type: prompt
    model: m
    prompt: Is it fine?
  - id: edit
    needs: [ask]
    type: edit_file
    path: notes.txt
    content: "new line\n"
  - id: shout
    needs: [edit]
    type: run_command
    command: "echo '<script>alert(1)</script>'"
"#,
    );
    let waiting = env.run(&wf, &[]);
    assert_eq!(waiting.code, 3, "{waiting}");
    let run = waiting.run_id();
    let approved = env.approve(&run, "edit", &["--comment", "looks right"]);
    assert_eq!(approved.code, 0, "{approved}");

    let html_path = env.root().join("export.html");
    let out = env.stepwise(&["export", &run, "--out", html_path.to_str().expect("utf-8")]);
    assert_eq!(out.code, 0, "{out}");
    let html = std::fs::read_to_string(&html_path).expect("the export");
    let json_out = env.stepwise(&["export", &run, "--json"]);
    assert_eq!(json_out.code, 0, "{json_out}");
    let export = json_out.json();
    let verified = env.stepwise(&["verify", &run, "--json"]).json();
    let last = verified["last_link"].as_str().expect("a last link");
    assert_eq!(export["chain"]["last_link"], last);
    assert!(html.contains(last), "the HTML carries the last link");

    // Every decision: who, manual or which rule, the hash of what was approved.
    let decisions = export["decisions"].as_array().expect("decisions");
    let manual = decisions
        .iter()
        .find(|d| d["step"] == "edit")
        .expect("edit's");
    assert_eq!(manual["mode"], "manual");
    assert_eq!(manual["by"], crate::support::os_user());
    assert_eq!(manual["words"], "looks right");
    assert!(
        manual["approved_hash"]
            .as_str()
            .is_some_and(|h| h.starts_with("sha256:"))
    );
    let rule = decisions
        .iter()
        .find(|d| d["step"] == "shout")
        .expect("shout's");
    assert_eq!(rule["mode"], "rule");
    assert!(
        rule["rule"]
            .as_str()
            .is_some_and(|r| r.contains("allow run_command"))
    );
    assert_eq!(export["model_calls"][0]["input_tokens"], 12);
    assert_eq!(
        export["commands"][0]["stdout"],
        "<script>alert(1)</script>\n"
    );
    let diff = export["file_changes"][0]["changes"][0]["diff"]
        .as_str()
        .expect("a diff");
    assert!(diff.contains("+new line"), "{diff}");

    // Markup a command printed is shown, never run: the file has no script at all.
    assert!(!html.contains("<script"), "markup was not escaped");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("looks right") && html.contains("+new line"));

    // A browser shows it, with no network and no script.
    let shot = env.root().join("export.png");
    let chromium = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1200,1600",
            &format!("--screenshot={}", shot.display()),
            &format!("file://{}", html_path.display()),
        ])
        .output()
        .expect("run chromium (installed by .ci/run)");
    assert!(chromium.status.success(), "{chromium:?}");
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    // Kept with the app's screenshots: `target/export-screenshots/`.
    if let Some(target) = crate::support::binary()
        .parent()
        .and_then(std::path::Path::parent)
    {
        let dir = target.join("export-screenshots");
        std::fs::create_dir_all(&dir).expect("the screenshots' directory");
        std::fs::copy(&shot, dir.join("export.png")).expect("keep the screenshot");
    }
}
