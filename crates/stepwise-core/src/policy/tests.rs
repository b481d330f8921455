//! Policy decisions, rule by rule.

use std::collections::BTreeMap;

use super::*;
use crate::operation::CommandRequest;
use crate::workflow::def::{OneOrMany, PolicyDef, RuleDef};

fn rule(effect: Effect, kind: &str, path: Option<&str>, command: Option<&str>) -> RuleDef {
    let kind = Some(kind.to_string());
    RuleDef {
        allow: (effect == Effect::Allow).then(|| kind.clone()).flatten(),
        ask: (effect == Effect::Ask).then(|| kind.clone()).flatten(),
        deny: (effect == Effect::Deny).then_some(kind).flatten(),
        path: path.map(|p| OneOrMany::One(p.into())),
        tool: None,
        arguments: None,
        command: command.map(|c| OneOrMany::One(c.into())),
        env: None,
        pass_env: None,
        unchecked_shell: false,
    }
}

fn with_env(mut rule: RuleDef, env: &[&str], pass_env: &[&str]) -> RuleDef {
    let many = |v: &[&str]| {
        (!v.is_empty()).then(|| OneOrMany::Many(v.iter().map(|s| s.to_string()).collect()))
    };
    rule.env = many(env);
    rule.pass_env = many(pass_env);
    rule
}

fn policy(rules: Vec<RuleDef>) -> Policy {
    let specs = rules_from_def(&PolicyDef { rules }, "test", false).unwrap();
    Policy::compile(&specs).unwrap()
}

fn shell(s: &str) -> CommandLine {
    CommandLine::Shell(s.into())
}

fn argv(words: &[&str]) -> CommandLine {
    CommandLine::Argv(words.iter().map(|w| w.to_string()).collect())
}

fn request(command: CommandLine, env: &[(&str, &str)], pass_env: &[&str]) -> CommandRequest {
    CommandRequest {
        command,
        cwd: ".".into(),
        env: env
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        pass_env: pass_env.iter().map(|s| s.to_string()).collect(),
        timeout_ms: None,
        max_output_bytes: 1024,
        save_output: false,
        stdin: None,
    }
}

fn command_verdict(p: &Policy, req: &CommandRequest) -> Verdict {
    p.evaluate(Subject::command(req))
}

fn command_effect(p: &Policy, c: &CommandLine) -> Effect {
    command_verdict(p, &request(c.clone(), &[], &[])).effect
}

fn file_effect(p: &Policy, kind: GateKind, path: &str) -> Effect {
    p.evaluate(Subject::file(kind, path)).effect
}

#[test]
fn defaults_ask_for_edits_and_commands_and_allow_reads() {
    let p = policy(vec![]);
    assert_eq!(command_effect(&p, &shell("ls")), Effect::Ask);
    assert_eq!(
        p.evaluate(Subject::file(GateKind::ReadFile, "a")),
        Verdict {
            effect: Effect::Allow,
            rule: None,
            rule_text: None,
            note: None,
        }
    );
}

#[test]
fn deny_beats_ask_beats_allow_whatever_the_order() {
    let p = policy(vec![
        rule(Effect::Allow, "edit_file", Some("**"), None),
        rule(Effect::Ask, "edit_file", Some("src/**"), None),
        rule(Effect::Deny, "edit_file", Some("src/secret/*"), None),
    ]);
    assert_eq!(
        file_effect(&p, GateKind::EditFile, "docs/a.md"),
        Effect::Allow
    );
    assert_eq!(file_effect(&p, GateKind::EditFile, "src/a.rs"), Effect::Ask);
    let denied = p.evaluate(Subject::file(GateKind::EditFile, "src/secret/key"));
    assert_eq!(denied.effect, Effect::Deny);
    assert!(denied.rule.unwrap().contains("test, rule 3"));
}

#[test]
fn chained_shell_commands_are_judged_per_segment() {
    let p = policy(vec![
        rule(Effect::Allow, "run_command", None, Some("cargo test *")),
        rule(Effect::Deny, "run_command", None, Some("rm -rf *")),
    ]);
    assert_eq!(
        command_effect(&p, &shell("cargo test --workspace")),
        Effect::Allow
    );
    assert_eq!(
        command_effect(&p, &shell("cargo test && curl x | sh")),
        Effect::Ask
    );
    assert_eq!(
        command_effect(&p, &shell("cargo test; rm -rf /")),
        Effect::Deny
    );
    assert_eq!(
        command_effect(&p, &shell("cargo test $(rm x)")),
        Effect::Ask
    );
    let argv = argv(&["sh", "-c", "cargo test || rm -rf ~"]);
    assert_eq!(command_effect(&p, &argv), Effect::Deny);
}

#[test]
fn patterns_are_word_aware() {
    let p = policy(vec![rule(
        Effect::Allow,
        "run_command",
        None,
        Some("python3 -m unittest *"),
    )]);
    assert_eq!(
        command_effect(&p, &argv(&["python3", "-m", "unittest", "-q"])),
        Effect::Allow
    );
    assert_eq!(
        command_effect(&p, &argv(&["python3", "-m", "unittest"])),
        Effect::Allow
    );
    assert_eq!(
        command_effect(&p, &argv(&["python3", "-m", "unittest_evil"])),
        Effect::Ask
    );
}

#[test]
fn a_deny_reaches_behind_shells_wrappers_and_paths() {
    let p = policy(vec![
        rule(Effect::Allow, "run_command", None, None),
        rule(Effect::Deny, "run_command", None, Some("rm *")),
    ]);
    for line in [
        "rm -rf x",
        "/bin/rm -rf x",
        "sh -c 'rm -rf x'",
        "bash -c \"cd x && rm y\"",
        "env FOO=1 rm x",
        "find . -name x | xargs rm",
        "if true; then rm x; fi",
        "timeout 5 nohup /usr/bin/rm x",
    ] {
        assert_eq!(command_effect(&p, &shell(line)), Effect::Deny, "{line}");
    }
    assert_eq!(
        command_effect(&p, &argv(&["sh", "-c", "rm -rf x"])),
        Effect::Deny
    );
    assert_eq!(command_effect(&p, &shell("rmdir x")), Effect::Allow);
}

#[test]
fn an_allow_does_not_vouch_for_a_program_named_by_another_path() {
    let p = policy(vec![rule(
        Effect::Allow,
        "run_command",
        None,
        Some("echo *"),
    )]);
    assert_eq!(command_effect(&p, &shell("echo hi")), Effect::Allow);
    assert_eq!(command_effect(&p, &shell("./bin/echo hi")), Effect::Ask);
    assert_eq!(command_effect(&p, &argv(&["bin/echo", "hi"])), Effect::Ask);
}

#[test]
fn an_allow_does_not_vouch_for_environment_it_does_not_name() {
    let echo = rule(Effect::Allow, "run_command", None, Some("echo *"));
    let p = policy(vec![echo.clone()]);
    for (name, value) in [
        ("PATH", "bin:/usr/bin"),
        ("LD_PRELOAD", "x.so"),
        ("CI", "1"),
    ] {
        let verdict = command_verdict(&p, &request(shell("echo hi"), &[(name, value)], &[]));
        assert_eq!(verdict.effect, Effect::Ask, "{name}");
        let note = verdict.note.expect("says why");
        assert!(note.contains(name) && note.contains("`env`"), "{note}");
    }
    // Set on the line itself, the same.
    assert_eq!(command_effect(&p, &shell("PATH=bin echo hi")), Effect::Ask);
    // A rule that names the variable (and its value) vouches.
    let p = policy(vec![with_env(echo, &["CI", "LANG=C*"], &[])]);
    assert_eq!(
        command_verdict(
            &p,
            &request(shell("echo hi"), &[("CI", "1"), ("LANG", "C.UTF-8")], &[])
        )
        .effect,
        Effect::Allow
    );
    assert_eq!(
        command_verdict(&p, &request(shell("echo hi"), &[("LANG", "de_DE")], &[])).effect,
        Effect::Ask
    );
}

#[test]
fn passing_a_variable_through_needs_a_rule_that_names_it() {
    let echo = rule(Effect::Allow, "run_command", None, Some("echo *"));
    let p = policy(vec![echo.clone()]);
    let secret = request(shell("echo hi"), &[], &["OPENAI_API_KEY"]);
    let verdict = command_verdict(&p, &secret);
    assert_eq!(verdict.effect, Effect::Ask);
    assert!(verdict.note.unwrap().contains("OPENAI_API_KEY"));
    let p = policy(vec![with_env(echo, &[], &["OPENAI_*"])]);
    assert_eq!(command_verdict(&p, &secret).effect, Effect::Allow);
    // A variable expanded on the line is out of sight: no rule vouches for it.
    assert_eq!(
        command_verdict(
            &p,
            &request(shell("echo $OPENAI_API_KEY"), &[], &["OPENAI_API_KEY"])
        )
        .effect,
        Effect::Ask
    );
}

#[test]
fn deny_and_ask_rules_can_match_the_environment() {
    let p = policy(vec![
        rule(Effect::Allow, "run_command", None, None),
        with_env(
            rule(Effect::Deny, "run_command", None, None),
            &["LD_*"],
            &[],
        ),
        with_env(
            rule(Effect::Ask, "run_command", None, None),
            &[],
            &["*_TOKEN"],
        ),
    ]);
    assert_eq!(
        command_verdict(&p, &request(shell("ls"), &[("LD_PRELOAD", "x")], &[])).effect,
        Effect::Deny
    );
    assert_eq!(
        command_verdict(&p, &request(shell("ls"), &[], &["GH_TOKEN"])).effect,
        Effect::Ask
    );
}

#[test]
fn a_read_rule_that_restricts_also_restricts_edits() {
    let p = policy(vec![
        rule(Effect::Allow, "edit_file", None, None),
        rule(Effect::Deny, "read_file", Some("secrets/**"), None),
        rule(Effect::Ask, "read_file", Some("private/**"), None),
        rule(Effect::Allow, "read_file", Some("public/**"), None),
    ]);
    assert_eq!(
        file_effect(&p, GateKind::EditFile, "secrets/key.txt"),
        Effect::Deny
    );
    assert_eq!(
        file_effect(&p, GateKind::EditFile, "private/notes"),
        Effect::Ask
    );
    assert_eq!(
        file_effect(&p, GateKind::EditFile, "public/x"),
        Effect::Allow
    );
    assert_eq!(
        file_effect(&p, GateKind::ReadFile, "public/x"),
        Effect::Allow
    );
    // A read allow says nothing about edits; the edit allow still applies.
    let q = policy(vec![rule(Effect::Allow, "read_file", None, None)]);
    assert_eq!(file_effect(&q, GateKind::EditFile, "x"), Effect::Ask);
}

#[test]
fn an_opaque_segment_is_never_vouched_for_and_says_so() {
    let p = policy(vec![rule(
        Effect::Allow,
        "run_command",
        None,
        Some("echo *"),
    )]);
    let verdict = command_verdict(&p, &request(shell("echo hi >> log"), &[], &[]));
    assert_eq!(verdict.effect, Effect::Ask);
    assert!(verdict.note.unwrap().contains("redirections"));
}

#[test]
fn no_allow_rule_vouches_for_a_redirection_not_even_a_blanket_one() {
    for pattern in [None, Some("*")] {
        let p = policy(vec![rule(Effect::Allow, "run_command", None, pattern)]);
        let verdict = command_verdict(&p, &request(shell("echo hi >> log"), &[], &[]));
        assert_eq!(verdict.effect, Effect::Ask, "{pattern:?}");
        let note = verdict.note.expect("a note");
        assert!(note.contains("redirections"), "{note}");
        assert!(note.starts_with("allow run_command"), "{note}");
        // What it can see whole, it approves.
        let verdict = command_verdict(&p, &request(shell("ls -la && git status"), &[], &[]));
        assert_eq!(verdict.effect, Effect::Allow, "{pattern:?}");
    }
    // Unless the rule says, in as many words, that it vouches for what it cannot check.
    let mut unchecked = rule(Effect::Allow, "run_command", None, None);
    unchecked.unchecked_shell = true;
    let p = policy(vec![unchecked]);
    let verdict = command_verdict(&p, &request(shell("echo hi >> log"), &[], &[]));
    assert_eq!(verdict.effect, Effect::Allow);
    // It is refused where it means nothing.
    let mut on_deny = rule(Effect::Deny, "run_command", None, None);
    on_deny.unchecked_shell = true;
    let def = PolicyDef {
        rules: vec![on_deny],
    };
    assert!(rules_from_def(&def, "test", false).is_err());
}

#[test]
fn workflows_cannot_allow() {
    let def = PolicyDef {
        rules: vec![rule(Effect::Allow, "run_command", None, None)],
    };
    assert!(matches!(
        rules_from_def(&def, "workflow", true),
        Err(PolicyError::WorkflowAllow { .. })
    ));
}

#[test]
fn an_agents_commands_are_allowed_only_by_agent_command_rules_and_restricted_by_any() {
    let agent = |p: &Policy, words: &[&str]| {
        p.evaluate(Subject::agent_command(&request(argv(words), &[], &[])))
            .effect
    };
    // Rules written for a workflow's own commands, or for everything, do not reach agents.
    let p = policy(vec![
        rule(Effect::Allow, "run_command", None, Some("git *")),
        rule(Effect::Allow, "*", None, None),
    ]);
    assert_eq!(agent(&p, &["git", "show", "HEAD:secrets/key"]), Effect::Ask);
    assert_eq!(
        command_verdict(&p, &request(argv(&["git", "status"]), &[], &[])).effect,
        Effect::Allow
    );
    // Named for agents, they do; a deny or ask on run_command still restricts them.
    let p = policy(vec![
        rule(Effect::Allow, "agent_command", None, Some("*")),
        rule(Effect::Deny, "run_command", None, Some("rm *")),
        rule(Effect::Ask, "run_command", None, Some("curl *")),
    ]);
    assert_eq!(agent(&p, &["echo", "hi"]), Effect::Allow);
    assert_eq!(agent(&p, &["rm", "-rf", "."]), Effect::Deny);
    assert_eq!(agent(&p, &["curl", "x"]), Effect::Ask);
    // An allow for agents must name what it allows.
    let unnamed = rules_from_def(
        &PolicyDef {
            rules: vec![rule(Effect::Allow, "agent_command", None, None)],
        },
        "test",
        false,
    )
    .unwrap_err();
    assert!(
        unnamed.to_string().contains("must name the commands"),
        "{unnamed}"
    );
}

#[test]
fn mcp_calls_ask_by_default_and_rules_match_their_tool_names() {
    let mcp = |effect: Effect, tool: &str| RuleDef {
        tool: Some(OneOrMany::One(tool.into())),
        ..rule(effect, "mcp_call", None, None)
    };
    let p = policy(vec![
        mcp(Effect::Allow, "files.read_*"),
        mcp(Effect::Deny, "files.write_*"),
        rule(Effect::Allow, "*", None, None),
    ]);
    let none = serde_json::json!({});
    let effect = |name: &str| p.evaluate(Subject::mcp_tool(name, &none)).effect;
    assert_eq!(effect("files.read_text_file"), Effect::Allow);
    assert_eq!(effect("files.write_file"), Effect::Deny);
    // `allow: *` does not reach an MCP server's tools: only rules naming them do.
    assert_eq!(effect("other.echo"), Effect::Ask);
    let verdict = p.evaluate(Subject::mcp_tool("files.write_file", &none));
    assert_eq!(
        verdict.rule_text.as_deref(),
        Some("deny mcp_call tool files.write_*")
    );
    // `tool:` is for mcp_call rules, `path:` is not.
    let misplaced = RuleDef {
        tool: Some(OneOrMany::One("files.*".into())),
        ..rule(Effect::Deny, "read_file", None, None)
    };
    let def = PolicyDef {
        rules: vec![misplaced],
    };
    assert!(matches!(
        rules_from_def(&def, "test", false),
        Err(PolicyError::ToolField { .. })
    ));
    let def = PolicyDef {
        rules: vec![rule(Effect::Deny, "mcp_call", Some("a/**"), None)],
    };
    assert!(matches!(
        rules_from_def(&def, "test", false),
        Err(PolicyError::ToolField { .. })
    ));
}

#[test]
fn an_mcp_rule_may_name_the_arguments_a_call_must_have() {
    let only_data = RuleDef {
        tool: Some(OneOrMany::One("files.read_*".into())),
        arguments: Some([("path".to_string(), "/srv/data/**".to_string())].into()),
        ..rule(Effect::Allow, "mcp_call", None, None)
    };
    let p = policy(vec![only_data]);
    let effect = |arguments: serde_json::Value| {
        p.evaluate(Subject::mcp_tool("files.read_text_file", &arguments))
            .effect
    };
    assert_eq!(
        effect(serde_json::json!({"path": "/srv/data/a.csv"})),
        Effect::Allow
    );
    assert_eq!(
        effect(serde_json::json!({"path": "/etc/passwd"})),
        Effect::Ask
    );
    assert_eq!(
        effect(serde_json::json!({"other": 1})),
        Effect::Ask,
        "a missing argument does not match"
    );
    // An allowed path cannot lead out of its glob, nor a list hold one that is not allowed.
    assert_eq!(
        effect(serde_json::json!({"path": "/srv/data/../../etc/shadow"})),
        Effect::Ask
    );
    assert_eq!(
        effect(serde_json::json!({"path": ["/srv/data/a", "/srv/data/b"]})),
        Effect::Allow,
        "a list whose every value is allowed"
    );
    assert_eq!(
        effect(serde_json::json!({"path": ["/srv/data/a", "/etc/passwd"]})),
        Effect::Ask
    );
    assert_eq!(effect(serde_json::json!({"path": []})), Effect::Ask);
    let verdict = p.evaluate(Subject::mcp_tool(
        "files.read_text_file",
        &serde_json::json!({"path": "/srv/data/x"}),
    ));
    assert_eq!(
        verdict.rule_text.as_deref(),
        Some("allow mcp_call tool files.read_* arguments path=/srv/data/**")
    );
}

#[test]
fn a_denied_argument_is_found_within_lists_and_behind_dot_dot() {
    let no_etc = RuleDef {
        tool: Some(OneOrMany::One("files.*".into())),
        arguments: Some([("path".to_string(), "/etc/**".to_string())].into()),
        ..rule(Effect::Deny, "mcp_call", None, None)
    };
    let all_files = RuleDef {
        tool: Some(OneOrMany::One("files.*".into())),
        ..rule(Effect::Allow, "mcp_call", None, None)
    };
    let p = policy(vec![no_etc, all_files]);
    let effect = |arguments: serde_json::Value| {
        p.evaluate(Subject::mcp_tool("files.read_text_file", &arguments))
            .effect
    };
    assert_eq!(
        effect(serde_json::json!({"path": "/etc/passwd"})),
        Effect::Deny
    );
    assert_eq!(
        effect(serde_json::json!({"path": ["/tmp/a", "/etc/passwd"]})),
        Effect::Deny
    );
    assert_eq!(
        effect(serde_json::json!({"path": {"first": "/etc/passwd"}})),
        Effect::Deny
    );
    assert_eq!(
        effect(serde_json::json!({"path": "/srv/../etc/passwd"})),
        Effect::Deny
    );
    assert_eq!(effect(serde_json::json!({"path": "/srv/a"})), Effect::Allow);
}

#[test]
fn a_tool_glob_reaches_tool_names_with_a_slash() {
    let mcp = |effect: Effect, tool: &str| RuleDef {
        tool: Some(OneOrMany::One(tool.into())),
        ..rule(effect, "mcp_call", None, None)
    };
    let p = policy(vec![mcp(Effect::Deny, "files.*"), mcp(Effect::Allow, "*")]);
    let none = serde_json::json!({});
    let effect = |name: &str| p.evaluate(Subject::mcp_tool(name, &none)).effect;
    assert_eq!(effect("files.read/text"), Effect::Deny);
    assert_eq!(effect("other.a/b"), Effect::Allow);
}
