//! Approvals: what waits, approving (as proposed or edited), rejecting with a reason, policy
//! rules and their precedence, a workflow unable to loosen policy, and the stale-base conflict.

use serde_json::{Value, json};

use crate::support::{Env, of_step, of_type, os_user, step};

/// One edit of `doc.txt` (which the test may create first), then a step that reports how it went.
fn edit_workflow(env: &Env) -> std::path::PathBuf {
    env.workflow(
        "edit.yaml",
        r#"
name: edit
steps:
  - id: change
    type: edit_file
    path: doc.txt
    content: "v2 from the run\n"
  - id: report
    type: set
    needs: [change]
    after: finished
    values:
      status: ${steps.change.status}
      why: ${steps.change.reason}
"#,
    )
}

/// The pending approvals of one run.
fn pending_for(env: &Env, run: &str) -> Vec<Value> {
    env.approvals()
        .into_iter()
        .filter(|a| a["run_id"] == run)
        .collect()
}

#[test]
fn an_edit_waits_for_approval_with_its_diff_and_lands_when_approved() {
    let env = Env::new();
    env.write("doc.txt", "v1\n");
    let wf = edit_workflow(&env);
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 3, "{out}");
    let run = out.run_id();
    assert_eq!(
        out.json()["waiting"],
        json!([{"step": "change", "waits_for": "approval", "reason": "edit_file needs approval by default"}])
    );
    assert_eq!(
        env.read("doc.txt").as_deref(),
        Some("v1\n"),
        "nothing is written before approval"
    );

    let pending = pending_for(&env, &run);
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["step"], "change");
    let proposal = &pending[0]["approval"]["proposal"];
    assert_eq!(proposal["kind"], "edit_file");
    assert_eq!(proposal["path"], "doc.txt");
    assert_eq!(proposal["content"], "v2 from the run\n");
    assert!(
        proposal["base_hash"]
            .as_str()
            .is_some_and(|h| h.starts_with("sha256:")),
        "{proposal}"
    );
    assert_eq!(
        proposal["diff"],
        "--- a/doc.txt\n+++ b/doc.txt\n@@ -1 +1 @@\n-v1\n+v2 from the run\n"
    );
    assert_eq!(env.show(&run)["status"], "awaiting_approval");

    let approved = env.approve(&run, "change", &[]);
    assert_eq!(approved.code, 0, "{approved}");
    assert_eq!(env.read("doc.txt").as_deref(), Some("v2 from the run\n"));
    assert!(pending_for(&env, &run).is_empty());
    let show = env.show(&run);
    assert_eq!(show["status"], "succeeded");
    assert_eq!(step(&show, "change")["output"]["diff"], proposal["diff"]);
}

#[test]
fn approving_an_edited_proposal_writes_the_edited_content() {
    let env = Env::new();
    env.write("doc.txt", "v1\n");
    let out = env.run(&edit_workflow(&env), &[]);
    assert_eq!(out.code, 3, "{out}");
    let run = out.run_id();
    let edited = env.root().join("edited.txt");
    std::fs::write(&edited, "v2 as the reviewer wants it\n").expect("write the edited content");

    let approved = env.approve(
        &run,
        "change",
        &[
            "--edit",
            edited.to_str().expect("utf-8"),
            "--comment",
            "tweaked",
        ],
    );
    assert_eq!(approved.code, 0, "{approved}");
    assert_eq!(
        env.read("doc.txt").as_deref(),
        Some("v2 as the reviewer wants it\n")
    );

    let events = env.events(&run);
    let granted = of_type(&events, "ApprovalGranted");
    assert_eq!(granted.len(), 1);
    let data = &granted[0]["data"];
    assert_eq!(data["mode"], json!({"kind": "manual"}));
    assert_eq!(data["comment"], "tweaked");
    assert_eq!(data["edited"]["kind"], "edit_file");
    assert_eq!(data["edited"]["content"], "v2 as the reviewer wants it\n");
    assert!(
        data["edited"]["diff"]
            .as_str()
            .is_some_and(|d| d.contains("+v2 as the reviewer wants it")),
        "{data}"
    );
    let requested = of_type(&events, "ApprovalRequested");
    assert_eq!(data["proposal_hash"], requested[0]["data"]["proposal_hash"]);
    assert_ne!(
        data["approved_hash"], data["proposal_hash"],
        "what was approved is not what was proposed"
    );
    // The step's output describes what was written, not what was proposed.
    let show = env.show(&run);
    assert!(
        step(&show, "change")["output"]["diff"]
            .as_str()
            .is_some_and(|d| d.contains("reviewer"))
    );
}

#[test]
fn a_rejection_fails_the_run_and_its_reason_reaches_later_steps() {
    let env = Env::new();
    env.write("doc.txt", "v1\n");
    let out = env.run(&edit_workflow(&env), &[]);
    assert_eq!(out.code, 3, "{out}");
    let run = out.run_id();

    let rejected = env.reject(&run, "change", "wrong file, edit README instead");
    assert_eq!(rejected.code, 1, "{rejected}");
    assert_eq!(env.read("doc.txt").as_deref(), Some("v1\n"));
    let show = env.show(&run);
    assert_eq!(show["status"], "failed");
    let change = step(&show, "change");
    assert_eq!(change["status"], "rejected");
    assert_eq!(change["reason"], "wrong file, edit README instead");
    let report = step(&show, "report");
    assert_eq!(report["status"], "succeeded");
    assert_eq!(
        report["output"],
        json!({"status": "rejected", "why": "wrong file, edit README instead"})
    );

    let events = env.events(&run);
    let decision = of_type(&events, "ApprovalRejected");
    assert_eq!(decision.len(), 1);
    assert_eq!(decision[0]["data"]["by"], os_user());
    assert_eq!(
        decision[0]["data"]["reason"],
        "wrong file, edit README instead"
    );
    assert_eq!(
        decision[0]["data"]["proposal_hash"],
        of_type(&events, "ApprovalRequested")[0]["data"]["proposal_hash"]
    );
    assert_eq!(
        of_type(&events, "RunFailed")[0]["data"],
        json!({"steps": ["change"]})
    );
}

#[test]
fn decisions_record_who_how_the_comment_and_the_hash() {
    let env = Env::new();
    let out = env.run(&edit_workflow(&env), &[]);
    assert_eq!(out.code, 3, "{out}");
    let run = out.run_id();
    let pending = pending_for(&env, &run);
    let proposal_hash = pending[0]["approval"]["proposal_hash"].clone();
    let requested_seq = pending[0]["approval"]["requested_seq"].clone();
    assert_eq!(
        pending[0]["approval"]["proposal"]["base_hash"],
        Value::Null,
        "doc.txt does not exist yet"
    );

    let approved = env.approve(&run, "change", &["--comment", "looks right"]);
    assert_eq!(approved.code, 0, "{approved}");
    assert_eq!(env.read("doc.txt").as_deref(), Some("v2 from the run\n"));
    let events = env.events(&run);
    let granted = of_step(&events, "ApprovalGranted", "change");
    assert_eq!(granted.len(), 1);
    let data = &granted[0]["data"];
    assert_eq!(data["by"], os_user());
    assert_eq!(data["mode"], json!({"kind": "manual"}));
    assert_eq!(data["comment"], "looks right");
    assert_eq!(data["proposal_hash"], proposal_hash);
    assert_eq!(data["approved_hash"], proposal_hash);
    assert!(data.get("edited").is_none(), "{data}");
    assert_eq!(
        granted[0]["causation_seq"], requested_seq,
        "the decision answers the request"
    );
}

#[test]
fn a_command_waits_and_can_be_approved_with_an_edited_argv() {
    let env = Env::new();
    let wf = env.workflow(
        "cmd.yaml",
        r#"
name: cmd
policy:
  rules:
    - deny: run_command
      command: "rm *"
steps:
  - id: greet
    type: run_command
    command: ["echo", "proposed"]
"#,
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 3, "{out}");
    let run = out.run_id();
    let pending = pending_for(&env, &run);
    let proposal = &pending[0]["approval"]["proposal"];
    assert_eq!(proposal["kind"], "run_command");
    assert_eq!(proposal["command"], json!({"argv": ["echo", "proposed"]}));
    assert_eq!(proposal["cwd"], ".");

    // An edit the policy denies is refused, and the step keeps waiting.
    let denied = env.root().join("denied.json");
    std::fs::write(&denied, r#"["rm", "-rf", "."]"#).expect("write");
    let refused = env.approve(&run, "greet", &["--edit", denied.to_str().expect("utf-8")]);
    assert_eq!(refused.code, 2, "{refused}");
    assert!(refused.stderr.contains("policy refuses it"), "{refused}");
    assert_eq!(pending_for(&env, &run).len(), 1);

    let edited = env.root().join("edited.json");
    std::fs::write(&edited, r#"["echo", "edited", "by a person"]"#).expect("write");
    let approved = env.approve(&run, "greet", &["--edit", edited.to_str().expect("utf-8")]);
    assert_eq!(approved.code, 0, "{approved}");
    let show = env.show(&run);
    assert_eq!(
        step(&show, "greet")["output"]["stdout"],
        "edited by a person\n"
    );
    let events = env.events(&run);
    let started = of_step(&events, "OperationStarted", "greet");
    assert_eq!(
        started[0]["data"]["request"]["command"],
        json!({"argv": ["echo", "edited", "by a person"]})
    );
    let granted = of_type(&events, "ApprovalGranted");
    assert_eq!(
        granted[0]["data"]["edited"]["command"],
        json!({"argv": ["echo", "edited", "by a person"]})
    );
}

#[test]
fn an_allow_rule_runs_a_matching_command_without_asking_and_names_the_rule() {
    let env = Env::new();
    env.workspace_policy("  - allow: run_command\n    command: \"echo *\"\n");
    let wf = env.workflow(
        "echo.yaml",
        "name: echo\nsteps:\n  - id: hello\n    type: run_command\n    command: echo hello\n",
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 0, "{out}");
    let events = env.events(&out.run_id());
    assert!(of_type(&events, "ApprovalRequested").is_empty());
    let granted = of_step(&events, "ApprovalGranted", "hello");
    assert_eq!(granted.len(), 1);
    let data = &granted[0]["data"];
    assert_eq!(data["by"], "policy");
    assert_eq!(data["mode"]["kind"], "rule");
    let rule = data["mode"]["rule"].as_str().expect("the rule");
    assert!(
        rule.starts_with("allow run_command command echo * (workspace policy "),
        "{rule}"
    );
    assert!(rule.ends_with(".stepwise/policy.yaml, rule 1)"), "{rule}");
    assert_eq!(data["approved_hash"], data["proposal_hash"]);
}

#[test]
fn a_deny_rule_beats_an_allow_rule_that_also_matches() {
    let env = Env::new();
    env.workspace_policy(
        "  - allow: run_command\n  - deny: run_command\n    command: \"echo *\"\n",
    );
    let wf = env.workflow(
        "deny.yaml",
        "name: deny\nsteps:\n  - id: say\n    type: run_command\n    command: echo hi > said.txt\n",
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 1, "{out}");
    let show = env.show(&out.run_id());
    let say = step(&show, "say");
    assert_eq!(say["status"], "failed");
    let error = say["error"].as_str().expect("an error");
    assert!(
        error.starts_with(
            "run_command refused by policy: deny run_command command echo * (workspace policy"
        ),
        "{error}"
    );
    assert!(
        !env.ws.join("said.txt").exists(),
        "a refused command never runs"
    );
    assert!(of_type(&env.events(&out.run_id()), "OperationStarted").is_empty());
}

#[test]
fn the_user_policy_applies_but_a_workspace_ask_overrides_its_allow() {
    let env = Env::new();
    std::fs::write(&env.user_policy, "rules:\n  - allow: run_command\n")
        .expect("write the user policy");
    let wf = env.workflow(
        "ls.yaml",
        "name: ls\nsteps:\n  - id: list\n    type: run_command\n    command: [\"ls\"]\n",
    );

    let allowed = env.run(&wf, &[]);
    assert_eq!(
        allowed.code, 0,
        "the user's allow applies in every workspace: {allowed}"
    );
    let events = env.events(&allowed.run_id());
    let rule = of_type(&events, "ApprovalGranted")[0]["data"]["mode"]["rule"]
        .as_str()
        .expect("a rule")
        .to_string();
    assert!(
        rule.contains("user policy") && rule.contains("policy.yaml"),
        "{rule}"
    );

    env.workspace_policy("  - ask: run_command\n");
    let asked = env.run(&wf, &[]);
    assert_eq!(asked.code, 3, "{asked}");
    let reason = asked.json()["waiting"][0]["reason"]
        .as_str()
        .expect("a reason")
        .to_string();
    assert!(
        reason.starts_with("ask run_command (workspace policy"),
        "{reason}"
    );
}

#[test]
fn a_workflow_policy_tightens_a_workspace_allow() {
    let env = Env::new();
    env.workspace_policy("  - allow: run_command\n");
    let wf = env.workflow(
        "tight.yaml",
        r#"
name: tight
policy:
  rules:
    - ask: run_command
steps:
  - id: list
    type: run_command
    command: ["ls"]
"#,
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 3, "{out}");
    assert_eq!(
        out.json()["waiting"][0]["reason"],
        "ask run_command (workflow policy, rule 1)"
    );
}

#[test]
fn approval_required_makes_even_a_read_ask() {
    let env = Env::new();
    env.write("secret-ish.txt", "contents\n");
    let wf = env.workflow(
        "read.yaml",
        "name: read\nsteps:\n  - id: peek\n    type: read_file\n    approval: required\n    path: secret-ish.txt\n",
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 3, "{out}");
    let run = out.run_id();
    let pending = pending_for(&env, &run);
    assert_eq!(
        pending[0]["approval"]["proposal"],
        json!({"kind": "read_file", "path": "secret-ish.txt"})
    );
    assert_eq!(
        pending[0]["approval"]["reason"],
        "the workflow requires approval for this step"
    );
    let approved = env.approve(&run, "peek", &[]);
    assert_eq!(approved.code, 0, "{approved}");
    assert_eq!(
        step(&env.show(&run), "peek")["output"]["content"],
        "contents\n"
    );
}

#[test]
fn a_chained_command_is_not_covered_by_an_allow_for_its_first_part() {
    let env = Env::new();
    env.workspace_policy("  - allow: run_command\n    command: \"echo *\"\n");
    std::fs::create_dir(env.ws.join("x")).expect("mkdir x");
    let wf = env.workflow(
        "chain.yaml",
        r#"
name: chain
steps:
  - id: plain
    type: run_command
    command: echo ok
  - id: chained
    type: run_command
    command: echo ok && rm -rf x
"#,
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 3, "{out}");
    let show = env.show(&out.run_id());
    assert_eq!(step(&show, "plain")["status"], "succeeded");
    let chained = step(&show, "chained");
    assert_eq!(chained["status"], "awaiting_approval");
    assert_eq!(
        chained["pending_approval"]["reason"],
        "run_command needs approval by default"
    );
    assert!(env.ws.join("x").is_dir(), "the rm did not run");
}

#[test]
fn approving_an_edit_whose_file_changed_is_refused_and_the_step_proposes_anew() {
    let env = Env::new();
    env.write("doc.txt", "v1\n");
    let out = env.run(&edit_workflow(&env), &[]);
    assert_eq!(out.code, 3, "{out}");
    let run = out.run_id();
    let stale = env.approvals()[0]["approval"]["proposal_hash"]
        .as_str()
        .expect("a proposal hash")
        .to_string();
    env.write("doc.txt", "changed by a person meanwhile\n");

    // Refused, naming the file and what changed; nothing is written and the run still waits.
    let approved = env.approve(&run, "change", &[]);
    assert_eq!(approved.code, 2, "{approved}");
    assert!(
        approved
            .stderr
            .contains("`doc.txt` changed since step `change` proposed its edit"),
        "{approved}"
    );
    assert_eq!(
        env.read("doc.txt").as_deref(),
        Some("changed by a person meanwhile\n")
    );
    let show = env.show(&run);
    assert_eq!(show["status"], "awaiting_approval");
    assert_eq!(step(&show, "change")["status"], "awaiting_approval");

    // A fresh proposal against the file as it is now, and the log says why.
    let pending = env.approvals();
    assert_eq!(pending.len(), 1);
    let fresh = &pending[0]["approval"];
    assert_ne!(fresh["proposal_hash"], stale.as_str());
    let diff = fresh["proposal"]["diff"].as_str().expect("a diff");
    assert!(
        diff.contains("-changed by a person meanwhile") && diff.contains("+v2 from the run"),
        "{diff}"
    );
    let events = env.events(&run);
    let voided = of_type(&events, "ProposalVoided");
    assert_eq!(voided.len(), 1);
    assert_eq!(voided[0]["data"]["proposal_hash"], stale.as_str());
    assert_eq!(voided[0]["data"]["path"], "doc.txt");

    // The stale hash stays refused; the fresh proposal lands.
    let old = env.approve(&run, "change", &["--proposal", &stale]);
    assert_eq!(old.code, 2, "{old}");
    let fresh_hash = fresh["proposal_hash"].as_str().expect("hash").to_string();
    let approved = env.approve(&run, "change", &["--proposal", &fresh_hash]);
    assert_eq!(approved.code, 0, "{approved}");
    assert_eq!(env.read("doc.txt").as_deref(), Some("v2 from the run\n"));
    let events = env.events(&run);
    let granted = of_type(&events, "ApprovalGranted");
    assert_eq!(granted.len(), 1);
    assert_eq!(granted[0]["data"]["proposal_hash"], fresh_hash.as_str());
}

#[test]
fn a_file_deleted_or_created_since_the_proposal_voids_it_too() {
    let env = Env::new();
    env.write("doc.txt", "v1\n");
    let run = env.run(&edit_workflow(&env), &[]).run_id();
    std::fs::remove_file(env.ws.join("doc.txt")).expect("delete");
    let approved = env.approve(&run, "change", &[]);
    assert_eq!(approved.code, 2, "{approved}");
    assert!(
        approved.stderr.contains("`doc.txt` was deleted"),
        "{approved}"
    );
    let fresh = &env.approvals()[0]["approval"]["proposal"];
    assert_eq!(fresh["base_hash"], Value::Null);

    // Now it proposes to create the file; someone creates it first.
    env.write("doc.txt", "made by hand\n");
    let approved = env.approve(&run, "change", &[]);
    assert_eq!(approved.code, 2, "{approved}");
    assert!(
        approved.stderr.contains("`doc.txt` was created"),
        "{approved}"
    );
    assert_eq!(env.read("doc.txt").as_deref(), Some("made by hand\n"));
    assert_eq!(env.show(&run)["status"], "awaiting_approval");
}

#[test]
fn resume_proposes_anew_when_a_pending_edits_file_changed() {
    let env = Env::new();
    env.write("doc.txt", "v1\n");
    let run = env.run(&edit_workflow(&env), &[]).run_id();
    env.write("doc.txt", "v1 edited\n");
    let resumed = env.stepwise(&["resume", &run, "--json"]);
    assert_eq!(resumed.code, 3, "{resumed}");
    let diff = env.approvals()[0]["approval"]["proposal"]["diff"]
        .as_str()
        .expect("a diff")
        .to_string();
    assert!(diff.contains("-v1 edited"), "{diff}");
    assert_eq!(of_type(&env.events(&run), "ProposalVoided").len(), 1);
}

#[test]
fn an_approval_naming_another_proposal_is_refused_and_changes_nothing() {
    let env = Env::new();
    env.write("doc.txt", "v1\n");
    let wf = edit_workflow(&env);
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 3, "{out}");
    let run = out.run_id();
    let hash = pending_for(&env, &run)[0]["approval"]["proposal_hash"]
        .as_str()
        .expect("proposal hash")
        .to_string();
    let events_before = env.event_count(Some(&run));

    let stale = env.approve(&run, "change", &["--proposal", "sha256:00000000"]);
    assert_eq!(stale.code, 2, "{stale}");
    assert!(stale.stderr.contains("now waits on proposal"), "{stale}");
    assert_eq!(
        env.event_count(Some(&run)),
        events_before,
        "nothing recorded"
    );
    assert_eq!(env.read("doc.txt").as_deref(), Some("v1\n"));

    // The hash as `stepwise approvals` shows it, shortened, is what a person types.
    let short = &hash["sha256:".len().."sha256:".len() + 12];
    let approved = env.approve(&run, "change", &["--proposal", short]);
    assert_eq!(approved.code, 0, "{approved}");
    assert_eq!(env.read("doc.txt").as_deref(), Some("v2 from the run\n"));
}

#[test]
fn an_edit_of_the_workspace_policy_file_asks_even_when_edits_are_allowed() {
    let env = Env::new();
    env.allow_everything();
    let wf = env.workflow(
        "loosen.yaml",
        "name: loosen\nsteps:\n  - id: loosen\n    type: edit_file\n    path: .stepwise/policy.yaml\n    content: \"rules: [{allow: run_command}]\\n\"\n",
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 3, "{out}");
    assert!(out.stdout.contains(".stepwise/"), "{out}");

    // In any case: on a case-insensitive filesystem `.STEPWISE/` is the same directory.
    for path in [".STEPWISE/policy.yaml", "./.StepWise/Policy.yaml"] {
        let wf = env.workflow(
            "loosen-case.yaml",
            &format!("name: loosen\nsteps:\n  - id: loosen\n    type: edit_file\n    path: \"{path}\"\n    content: \"rules: []\\n\"\n"),
        );
        let out = env.run(&wf, &[]);
        assert_eq!(out.code, 3, "{path}: {out}");
        assert!(out.stdout.contains(".stepwise/"), "{path}: {out}");
    }
}

#[test]
fn a_user_policy_named_explicitly_must_exist_and_be_a_file() {
    let env = Env::new();
    env.workspace_policy("  - allow: \"*\"\n");
    let wf = env.workflow(
        "rm.yaml",
        "name: rm\nsteps:\n  - id: wipe\n    type: run_command\n    command: \"touch ran\"\n",
    );
    let wf = wf.to_str().expect("utf-8");
    let ws = env.ws.to_str().expect("utf-8");
    let missing = env.root().join("typo-policy.yaml");
    let missing = missing.to_str().expect("utf-8");
    let by_flag = env.stepwise(&["run", wf, "--workspace", ws, "--user-policy", missing]);
    assert_eq!(by_flag.code, 2, "{by_flag}");
    assert!(
        by_flag.stderr.contains("typo-policy.yaml") && by_flag.stderr.contains("does not exist"),
        "{by_flag}"
    );
    let by_env = env
        .command(&["run", wf, "--workspace", ws])
        .env("STEPWISE_USER_POLICY", missing)
        .output()
        .expect("run stepwise");
    assert_eq!(by_env.status.code(), Some(2));
    let dir = env.root().to_str().expect("utf-8").to_string();
    let a_dir = env.stepwise(&["run", wf, "--workspace", ws, "--user-policy", &dir]);
    assert_eq!(a_dir.code, 2, "{a_dir}");
    assert!(a_dir.stderr.contains("is a directory"), "{a_dir}");
    assert_eq!(env.read("ran"), None, "nothing ran");
    assert_eq!(env.run_count(), 0);
}

#[test]
fn an_allow_rule_does_not_vouch_for_a_changed_path_a_preload_or_a_passed_secret() {
    let env = Env::new();
    env.workspace_policy("  - allow: run_command\n    command: \"echo *\"\n");
    env.write("bin/echo", "#!/bin/sh\ntouch hijacked\n");
    std::fs::set_permissions(
        env.ws.join("bin/echo"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let wf = env.workflow(
        "env.yaml",
        r#"
name: env
steps:
  - id: path
    type: run_command
    command: "echo hi"
    env: { PATH: "bin:/usr/bin:/bin" }
  - id: preload
    type: run_command
    command: "echo hi"
    env: { LD_PRELOAD: "evil.so" }
  - id: secret
    type: run_command
    command: "echo key"
    pass_env: [OPENAI_API_KEY]
  - id: expanded
    type: run_command
    command: "echo $OPENAI_API_KEY"
    pass_env: [OPENAI_API_KEY]
  - id: plain
    type: run_command
    command: "echo hi"
"#,
    );
    let mut env = env;
    env.vars
        .push(("OPENAI_API_KEY".into(), "sk-planted-secret-123".into()));
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 3, "{out}");
    let show = env.show(&out.run_id());
    for id in ["path", "preload", "secret", "expanded"] {
        let step = step(&show, id);
        assert_eq!(step["status"], "awaiting_approval", "{id}: {step}");
    }
    let reason = step(&show, "path")["pending_approval"]["reason"]
        .as_str()
        .expect("a reason")
        .to_string();
    assert!(
        reason.contains("PATH") && reason.contains("`env`"),
        "{reason}"
    );
    assert_eq!(step(&show, "plain")["status"], "succeeded");
    assert_eq!(env.read("hijacked"), None, "the workspace's own echo ran");
    // The secret's value is nowhere in the log.
    let dump = env.database.dump();
    assert!(dump.contains("plain"), "the dump holds the log");
    assert!(!dump.contains("sk-planted-secret-123"));
}

#[test]
fn a_deny_on_reading_a_path_refuses_edits_of_it_before_its_content_is_read() {
    let env = Env::new();
    std::fs::write(
        &env.user_policy,
        "rules:\n  - deny: read_file\n    path: \"secrets/**\"\n",
    )
    .expect("write the user policy");
    env.workspace_policy("  - allow: edit_file\n");
    env.write("secrets/key.txt", "TOP-SECRET-VALUE\n");
    let wf = env.workflow(
        "leak.yaml",
        "name: leak\nsteps:\n  - id: touch\n    type: edit_file\n    path: secrets/key.txt\n    content: \"replaced\\n\"\n",
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 1, "{out}");
    let show = env.show(&out.run_id());
    let error = step(&show, "touch")["error"]
        .as_str()
        .expect("an error")
        .to_string();
    assert!(
        error.contains("refused by policy") && error.contains("secrets/**"),
        "{error}"
    );
    assert_eq!(
        env.read("secrets/key.txt").as_deref(),
        Some("TOP-SECRET-VALUE\n")
    );
    let dump = env.database.dump();
    assert!(dump.contains("secrets/key.txt"), "the dump holds the log");
    assert!(!dump.contains("TOP-SECRET"), "the secret reached the log");
}
