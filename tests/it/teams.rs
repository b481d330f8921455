//! Who may do what when several people share runs: `approvers` and `self_approval: false`,
//! written in a workflow or a policy file, enforced against each process's user (here each
//! with its own `HOME`, as on two machines), whoever holds the run.

use std::time::Duration;

use serde_json::Value;

use crate::shared::await_approvals;
use crate::support::{Env, of_step, of_type, release, wait_for_fifo};

const PATIENCE: Duration = Duration::from_secs(30);

/// The variables of a process acting for `user`, with a home of its own (as on a machine of
/// its own: its own settings, policy and local files; the database is the shared one).
pub(crate) fn user_vars(env: &Env, user: &str) -> Vec<(String, String)> {
    let home = env.root().join("homes").join(user);
    std::fs::create_dir_all(home.join(".config")).expect("create the home");
    vec![
        ("STEPWISE_USER".into(), user.into()),
        ("HOME".into(), home.display().to_string()),
        (
            "XDG_CONFIG_HOME".into(),
            home.join(".config").display().to_string(),
        ),
        (
            "XDG_DATA_HOME".into(),
            home.join(".local/share").display().to_string(),
        ),
    ]
}

/// Makes the processes started from now on act for `user`.
fn act_as(env: &mut Env, user: &str) {
    env.vars = user_vars(env, user);
}

#[test]
fn only_the_named_approvers_answer_and_the_holder_applies_their_answers_at_once() {
    let mut env = Env::new();
    env.workspace_policy("  - allow: run_command\n    unchecked_shell: true\n");
    let ready = env.fifo("ready.fifo");
    let go = env.fifo("go.fifo");
    let wf = env.workflow(
        "team.yaml",
        r#"
name: team
approvers:
  edit_file: [lead, reviewer]
self_approval: false
steps:
  - id: slow
    type: run_command
    command: "echo started > ready.fifo && cat go.fifo > /dev/null"
  - id: docs
    type: edit_file
    path: docs.txt
    content: "from the run\n"
  - id: config
    type: edit_file
    path: config.txt
    content: "from the run\n"
"#,
    );
    act_as(&mut env, "lead");
    // The lead starts it: as its starter, the lead may not approve its questions.
    let driver = env.spawn_run(&wf);
    assert_eq!(wait_for_fifo(&ready, PATIENCE).as_deref(), Some("started"));
    let run = env.database.first_run_id().expect("the run");
    await_approvals(&env, &run, 2);

    act_as(&mut env, "ana");
    let listed = env.stepwise(&["approvals", &run]);
    assert_eq!(listed.code, 0, "{listed}");
    assert!(
        listed.stdout.contains("may answer: lead, reviewer"),
        "{listed}"
    );
    assert!(listed.stdout.contains("may not approve: lead"), "{listed}");
    let json = env.approvals();
    assert_eq!(json[0]["who_may_answer"]["only"][0], "lead", "{json:?}");

    // Someone not named can neither approve nor reject.
    let refused = env.approve(&run, "docs", &["--no-wait"]);
    assert_eq!(refused.code, 2, "{refused}");
    assert!(refused.stderr.contains("`ana` may not answer"), "{refused}");
    assert!(
        refused.stderr.contains("only lead, reviewer may"),
        "{refused}"
    );
    let refused = env.stepwise(&[
        "reject",
        &run,
        "docs",
        "--reason",
        "no",
        "--no-wait",
        "--json",
    ]);
    assert_eq!(refused.code, 2, "{refused}");

    // The starter may reject but not approve.
    act_as(&mut env, "lead");
    let own = env.approve(&run, "docs", &["--no-wait"]);
    assert_eq!(own.code, 2, "{own}");
    assert!(own.stderr.contains("self_approval: false"), "{own}");

    // A named approver other than the starter answers; the lead's process applies it.
    act_as(&mut env, "reviewer");
    let approved = env.approve(&run, "docs", &["--no-wait"]);
    assert_eq!(approved.code, 0, "{approved}");
    act_as(&mut env, "lead");
    let rejected = env.stepwise(&[
        "reject",
        &run,
        "config",
        "--reason",
        "not yet",
        "--no-wait",
        "--json",
    ]);
    assert_eq!(rejected.code, 0, "{rejected}");

    let holder = crate::backend::holder_text(driver.pid());
    let inbox: Vec<_> = env
        .database
        .commands()
        .into_iter()
        .filter(|c| c.run_id.as_str() == run)
        .collect();
    assert_eq!(
        inbox.len(),
        2,
        "refusals at the sender are never sent: {inbox:?}"
    );
    for command in &inbox {
        assert_eq!(command.handled_by.as_deref(), Some(holder.as_str()));
        let took = command.handled_at_ms.unwrap_or(i64::MAX) - command.issued_at_ms;
        assert!((0..1000).contains(&took), "applied after {took} ms");
    }
    assert_eq!(inbox[0].issued_by, "reviewer");

    release(&go);
    let out = driver.finish(PATIENCE);
    assert_eq!(out.code, 1, "a rejected edit fails the run: {out}");
    assert_eq!(env.read("docs.txt").as_deref(), Some("from the run\n"));
    assert_eq!(env.read("config.txt"), None);
    let events = env.events(&run);
    let granted = of_step(&events, "ApprovalGranted", "docs");
    assert_eq!(granted[0]["data"]["by"], "reviewer");
    let rejected: Vec<&Value> = of_type(&events, "ApprovalRejected");
    assert_eq!(rejected[0]["data"]["by"], "lead");
}

#[test]
fn a_policy_files_self_approval_false_binds_the_starter_of_every_run_in_the_workspace() {
    let mut env = Env::new();
    let dir = env.ws.join(".stepwise");
    std::fs::create_dir_all(&dir).expect("create .stepwise");
    std::fs::write(
        dir.join("policy.yaml"),
        "self_approval: false\napprovers:\n  \"*\": [ana, bo]\n",
    )
    .expect("write the policy");
    let wf = env.workflow(
        "edit.yaml",
        "name: edit\nsteps:\n  - id: write\n    type: edit_file\n    path: out.txt\n    content: \"hi\\n\"\n",
    );
    act_as(&mut env, "ana");
    let started = env.run(&wf, &[]);
    assert_eq!(started.code, 3, "waits for approval: {started}");
    let run = started.run_id();
    let own = env.approve(&run, "write", &[]);
    assert_eq!(own.code, 2, "{own}");
    assert!(
        own.stderr.contains("workspace policy"),
        "names where it was said: {own}"
    );
    assert_eq!(env.read("out.txt"), None);

    act_as(&mut env, "bo");
    let approved = env.approve(&run, "write", &[]);
    assert_eq!(approved.code, 0, "{approved}");
    assert_eq!(env.read("out.txt").as_deref(), Some("hi\n"));
    let events = env.events(&run);
    let granted = of_step(&events, "ApprovalGranted", "write");
    assert_eq!(granted[0]["data"]["by"], "bo");
    // What the policy file said is recorded with the run, so any process judges alike.
    let started = &of_type(&events, "RunStarted")[0]["data"];
    assert_eq!(
        started["approvers"]["lists"][0]["names"][1], "bo",
        "{started}"
    );
}

#[test]
fn approvers_that_cannot_be_used_are_named_where_they_are_written() {
    let env = Env::new();
    let wf = env.workflow(
        "bad.yaml",
        "name: bad\napprovers:\n  edit_files: [lead]\nsteps:\n  - id: a\n    type: set\n    values: {x: 1}\n",
    );
    let out = env.stepwise(&["validate", wf.to_str().expect("utf-8")]);
    assert_eq!(out.code, 2, "{out}");
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(said.contains("bad.yaml:2"), "{out}");
    assert!(said.contains("`edit_files`"), "{out}");

    let dir = env.ws.join(".stepwise");
    std::fs::create_dir_all(&dir).expect("create .stepwise");
    std::fs::write(dir.join("policy.yaml"), "approvers: []\n").expect("write the policy");
    let ok = env.workflow(
        "ok.yaml",
        "name: ok\nsteps:\n  - id: a\n    type: set\n    values: {x: 1}\n",
    );
    let out = env.run(&ok, &[]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("policy.yaml"), "{out}");
    assert!(out.stderr.contains("nobody could answer"), "{out}");
    assert_eq!(env.run_count(), 0, "nothing was started");
}

#[test]
fn continue_all_answers_breakpoints_so_only_their_approvers_may_send_it() {
    let mut env = Env::new();
    let wf = env.workflow(
        "stepped.yaml",
        r#"
name: stepped
approvers:
  breakpoint: [lead]
breakpoints: [b]
steps:
  - id: a
    type: set
    values: {x: 1}
  - id: b
    type: set
    needs: [a]
    values: {y: 2}
"#,
    );
    act_as(&mut env, "ana");
    let started = env.run(&wf, &[]);
    assert_eq!(started.code, 3, "waits at the breakpoint: {started}");
    let run = started.run_id();
    let refused = env.stepwise(&["continue", &run, "--all", "--json"]);
    assert_eq!(refused.code, 2, "{refused}");
    assert!(refused.stderr.contains("only lead may"), "{refused}");
    act_as(&mut env, "lead");
    let passed = env.stepwise(&["continue", &run, "--all", "--json"]);
    assert_eq!(passed.code, 0, "{passed}");
}

#[test]
fn under_approvers_the_starters_own_policy_lets_nothing_past_them() {
    let mut env = Env::new();
    // The starter's own file allows every edit; the workspace names who answers.
    std::fs::write(&env.user_policy, "rules:\n  - allow: edit_file\n").expect("write the policy");
    let dir = env.ws.join(".stepwise");
    std::fs::create_dir_all(&dir).expect("create .stepwise");
    std::fs::write(dir.join("policy.yaml"), "approvers: [lead]\n").expect("write the policy");
    let wf = env.workflow(
        "edit.yaml",
        "name: edit\nsteps:\n  - id: write\n    type: edit_file\n    path: out.txt\n    content: \"hi\\n\"\n",
    );
    act_as(&mut env, "ana");
    let started = env.run(&wf, &[]);
    assert_eq!(started.code, 3, "the edit waits for lead: {started}");
    assert_eq!(env.read("out.txt"), None);
    act_as(&mut env, "lead");
    let approved = env.approve(&started.run_id(), "write", &[]);
    assert_eq!(approved.code, 0, "{approved}");
    assert_eq!(env.read("out.txt").as_deref(), Some("hi\n"));
}

#[test]
fn the_users_settings_say_who_they_are_and_stepwise_user_wins() {
    let mut env = Env::new();
    let settings = env
        .root()
        .join("config")
        .join("stepwise")
        .join("settings.yaml");
    std::fs::write(&settings, "user: lead\n").expect("write the settings");
    let dir = env.ws.join(".stepwise");
    std::fs::create_dir_all(&dir).expect("create .stepwise");
    std::fs::write(dir.join("policy.yaml"), "approvers: [lead]\n").expect("write the policy");
    let wf = env.workflow(
        "edit.yaml",
        "name: edit\nsteps:\n  - id: write\n    type: edit_file\n    path: out.txt\n    content: \"hi\\n\"\n",
    );
    let started = env.run(&wf, &[]);
    assert_eq!(started.code, 3, "{started}");
    let run = started.run_id();
    // STEPWISE_USER wins over the settings.
    env.vars = vec![("STEPWISE_USER".into(), "ana".into())];
    let refused = env.approve(&run, "write", &[]);
    assert_eq!(refused.code, 2, "{refused}");
    env.vars.clear();
    let approved = env.approve(&run, "write", &[]);
    assert_eq!(approved.code, 0, "{approved}");
    let events = env.events(&run);
    assert_eq!(
        of_step(&events, "ApprovalGranted", "write")[0]["data"]["by"],
        "lead"
    );
    assert_eq!(
        of_type(&events, "RunStarted")[0]["data"]["started_by"],
        "lead"
    );
}
