//! Approval policy: which operations run at once, which wait for a person, which are refused.
//!
//! Rules come from the user's policy file, the workspace's and the workflow's. Every rule that
//! matches counts and the strongest effect wins (deny beats ask beats allow); among rules of that
//! effect the first one is reported. A workflow can only add `ask` and `deny` rules, so it can
//! tighten what the user allowed but never loosen it. A shell command is judged segment by
//! segment (`a && b`, `a | b`, `a; b`), so an allowed prefix cannot smuggle in another command.

use globset::{GlobBuilder, GlobMatcher};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::operation::CommandLine;
use crate::workflow::def::{PolicyDef, RuleDef};

/// What a rule does to a matching operation. Ordered weakest to strongest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    Allow,
    Ask,
    Deny,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Ask => "ask",
            Effect::Deny => "deny",
        }
    }
}

/// The kind of operation a rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateKind {
    ReadFile,
    EditFile,
    RunCommand,
}

impl GateKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GateKind::ReadFile => "read_file",
            GateKind::EditFile => "edit_file",
            GateKind::RunCommand => "run_command",
        }
    }

    /// What happens when no rule matches: reads run, edits and commands ask.
    pub fn default_effect(self) -> Effect {
        match self {
            GateKind::ReadFile => Effect::Allow,
            GateKind::EditFile | GateKind::RunCommand => Effect::Ask,
        }
    }
}

/// A rule as recorded on a run: plain data, so that a run keeps the policy it started with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSpec {
    pub effect: Effect,
    /// `None` matches every kind (`*`).
    pub kind: Option<GateKind>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<String>,
    /// Where the rule was written, e.g. `workspace policy .stepwise/policy.yaml, rule 2`.
    pub source: String,
}

impl RuleSpec {
    /// One line naming the rule, as shown in approvals and the event log.
    pub fn describe(&self) -> String {
        let kind = self.kind.map_or("*", GateKind::as_str);
        let mut text = format!("{} {kind}", self.effect.as_str());
        if !self.paths.is_empty() {
            text.push_str(&format!(" path {}", self.paths.join(", ")));
        }
        if !self.commands.is_empty() {
            text.push_str(&format!(" command {}", self.commands.join(", ")));
        }
        format!("{text} ({})", self.source)
    }
}

/// A rule that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PolicyError {
    #[error("{origin}: a rule needs exactly one of `allow`, `ask` or `deny`")]
    EffectCount { origin: String },
    #[error("{origin}: unknown operation `{kind}`; use edit_file, run_command, read_file or *")]
    UnknownKind { origin: String, kind: String },
    #[error("{origin}: invalid pattern `{pattern}`: {message}")]
    Pattern {
        origin: String,
        pattern: String,
        message: String,
    },
    #[error(
        "{origin}: a workflow can only tighten policy; `allow` rules belong in .stepwise/policy.yaml"
    )]
    WorkflowAllow { origin: String },
}

/// Turns written rules into recorded ones. `origin` names the file, e.g. `workspace policy
/// .stepwise/policy.yaml`. With `tighten_only`, `allow` rules are refused (workflows).
pub fn rules_from_def(
    def: &PolicyDef,
    origin: &str,
    tighten_only: bool,
) -> Result<Vec<RuleSpec>, PolicyError> {
    def.rules
        .iter()
        .enumerate()
        .map(|(i, rule)| rule_from_def(rule, &format!("{origin}, rule {}", i + 1), tighten_only))
        .collect()
}

fn rule_from_def(
    rule: &RuleDef,
    source: &str,
    tighten_only: bool,
) -> Result<RuleSpec, PolicyError> {
    let chosen: Vec<(Effect, &String)> = [
        (Effect::Allow, rule.allow.as_ref()),
        (Effect::Ask, rule.ask.as_ref()),
        (Effect::Deny, rule.deny.as_ref()),
    ]
    .into_iter()
    .filter_map(|(effect, kind)| kind.map(|k| (effect, k)))
    .collect();
    let [(effect, kind)] = chosen.as_slice() else {
        return Err(PolicyError::EffectCount {
            origin: source.to_string(),
        });
    };
    if tighten_only && *effect == Effect::Allow {
        return Err(PolicyError::WorkflowAllow {
            origin: source.to_string(),
        });
    }
    let kind = match kind.as_str() {
        "*" => None,
        "read_file" => Some(GateKind::ReadFile),
        "edit_file" => Some(GateKind::EditFile),
        "run_command" => Some(GateKind::RunCommand),
        other => {
            return Err(PolicyError::UnknownKind {
                origin: source.to_string(),
                kind: other.to_string(),
            });
        }
    };
    let spec = RuleSpec {
        effect: *effect,
        kind,
        paths: rule.path.as_ref().map(|p| p.to_vec()).unwrap_or_default(),
        commands: rule
            .command
            .as_ref()
            .map(|c| c.to_vec())
            .unwrap_or_default(),
        source: source.to_string(),
    };
    CompiledRule::compile(&spec)?;
    Ok(spec)
}

/// The operation a verdict is asked for.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub kind: GateKind,
    pub path: Option<&'a str>,
    pub command: Option<&'a CommandLine>,
}

/// The policy's answer for one operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub effect: Effect,
    /// The deciding rule, described; `None` when the default for the kind applied.
    pub rule: Option<String>,
}

/// Rules ready to match.
#[derive(Debug)]
pub struct Policy {
    rules: Vec<CompiledRule>,
}

#[derive(Debug)]
struct CompiledRule {
    spec: RuleSpec,
    paths: Vec<GlobMatcher>,
    commands: Vec<GlobMatcher>,
}

impl CompiledRule {
    fn compile(spec: &RuleSpec) -> Result<CompiledRule, PolicyError> {
        let build = |pattern: &String, literal_separator: bool| {
            GlobBuilder::new(pattern)
                .literal_separator(literal_separator)
                .build()
                .map(|g| g.compile_matcher())
                .map_err(|e| PolicyError::Pattern {
                    origin: spec.source.clone(),
                    pattern: pattern.clone(),
                    message: e.kind().to_string(),
                })
        };
        Ok(CompiledRule {
            spec: spec.clone(),
            paths: spec
                .paths
                .iter()
                .map(|p| build(p, true))
                .collect::<Result<_, _>>()?,
            commands: spec
                .commands
                .iter()
                .map(|c| build(c, false))
                .collect::<Result<_, _>>()?,
        })
    }

    fn matches(&self, kind: GateKind, path: Option<&str>, segment: Option<&Segment>) -> bool {
        if self.spec.kind.is_some_and(|k| k != kind) {
            return false;
        }
        if !self.paths.is_empty() && !path.is_some_and(|p| self.paths.iter().any(|g| g.is_match(p)))
        {
            return false;
        }
        if !self.commands.is_empty() {
            let Some(segment) = segment else { return false };
            // A segment with command substitution hides what it runs: no allow rule vouches
            // for it, while ask and deny rules still match it.
            if segment.opaque && self.spec.effect == Effect::Allow {
                return false;
            }
            if !self.commands.iter().any(|g| g.is_match(&segment.text)) {
                return false;
            }
        }
        true
    }
}

impl Policy {
    pub fn compile(rules: &[RuleSpec]) -> Result<Policy, PolicyError> {
        Ok(Policy {
            rules: rules
                .iter()
                .map(CompiledRule::compile)
                .collect::<Result<_, _>>()?,
        })
    }

    /// The effect for one operation: the strongest over its command segments (if any) of the
    /// strongest matching rule, or the kind's default.
    pub fn evaluate(&self, subject: Subject<'_>) -> Verdict {
        let segments = subject.command.map(command_segments);
        match segments {
            Some(segments) if !segments.is_empty() => segments
                .iter()
                .map(|s| self.evaluate_one(subject.kind, subject.path, Some(s)))
                .max_by_key(|v| v.effect)
                .unwrap_or(Verdict {
                    effect: subject.kind.default_effect(),
                    rule: None,
                }),
            _ => self.evaluate_one(subject.kind, subject.path, None),
        }
    }

    fn evaluate_one(
        &self,
        kind: GateKind,
        path: Option<&str>,
        segment: Option<&Segment>,
    ) -> Verdict {
        let mut best: Option<&CompiledRule> = None;
        for rule in self.rules.iter().filter(|r| r.matches(kind, path, segment)) {
            // Strictly stronger replaces: the first rule of the strongest effect wins.
            if best.is_none_or(|b| rule.spec.effect > b.spec.effect) {
                best = Some(rule);
            }
        }
        match best {
            Some(rule) => Verdict {
                effect: rule.spec.effect,
                rule: Some(rule.spec.describe()),
            },
            None => Verdict {
                effect: kind.default_effect(),
                rule: None,
            },
        }
    }
}

#[derive(Debug, PartialEq)]
struct Segment {
    text: String,
    opaque: bool,
}

/// Splits a command into the simple commands it runs. An argv list `sh -c "..."` is treated
/// as the shell string it runs.
fn command_segments(command: &CommandLine) -> Vec<Segment> {
    match command {
        CommandLine::Argv(argv) => match argv.as_slice() {
            [shell, flag, script, ..]
                if matches!(shell.as_str(), "sh" | "bash" | "/bin/sh" | "/bin/bash")
                    && flag == "-c" =>
            {
                split_shell(script)
            }
            _ => vec![Segment {
                text: command.display(),
                opaque: false,
            }],
        },
        CommandLine::Shell(script) => split_shell(script),
    }
}

/// Splits a shell line at `;`, `&&`, `||`, `|`, `&` and newlines, outside quotes. This is
/// not a shell parser, so it errs towards asking: a segment whose meaning it cannot pin down
/// (redirections, command or process substitution, grouping, comments, line continuations,
/// an unfinished quote) is marked opaque, and no `allow` rule vouches for an opaque segment.
fn split_shell(script: &str) -> Vec<Segment> {
    let mut segments = Vec::new();
    let mut current = String::new();
    let mut opaque = false;
    let mut quote: Option<char> = None;
    let mut chars = script.chars().peekable();
    let mut push = |current: &mut String, opaque: &mut bool| {
        let text = current.trim().to_string();
        if !text.is_empty() {
            segments.push(Segment {
                text,
                opaque: *opaque,
            });
        }
        current.clear();
        *opaque = false;
    };
    while let Some(c) = chars.next() {
        match quote {
            Some('\'') => {
                if c == '\'' {
                    quote = None;
                }
                current.push(c);
            }
            Some(_) => {
                // Inside double quotes, `$(` and backticks still run commands.
                match c {
                    '"' => quote = None,
                    '\\' => {
                        current.push(c);
                        if let Some(next) = chars.next() {
                            current.push(next);
                        }
                        continue;
                    }
                    '`' => opaque = true,
                    '$' if chars.peek() == Some(&'(') => opaque = true,
                    _ => {}
                }
                current.push(c);
            }
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    current.push(c);
                }
                '\\' => {
                    // An escaped character (or a line continuation) outside quotes.
                    opaque = true;
                    current.push(c);
                    if let Some(next) = chars.next() {
                        current.push(next);
                    }
                }
                '#' if current.is_empty() || current.ends_with(char::is_whitespace) => {
                    // A comment hides the rest of the line from us but not from the shell.
                    opaque = true;
                    current.push(c);
                }
                '<' | '>' | '(' | ')' | '{' | '}' | '`' => {
                    opaque = true;
                    current.push(c);
                }
                '$' if chars.peek() == Some(&'(') => {
                    opaque = true;
                    current.push(c);
                }
                ';' | '\n' | '|' | '&' => {
                    if matches!(chars.peek(), Some('|') | Some('&')) {
                        chars.next();
                    }
                    push(&mut current, &mut opaque);
                }
                _ => current.push(c),
            },
        }
    }
    if quote.is_some() {
        opaque = true;
    }
    push(&mut current, &mut opaque);
    segments
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::def::OneOrMany;

    fn rule(effect: Effect, kind: &str, path: Option<&str>, command: Option<&str>) -> RuleDef {
        let kind = Some(kind.to_string());
        RuleDef {
            allow: if effect == Effect::Allow {
                kind.clone()
            } else {
                None
            },
            ask: if effect == Effect::Ask {
                kind.clone()
            } else {
                None
            },
            deny: if effect == Effect::Deny { kind } else { None },
            path: path.map(|p| OneOrMany::One(p.into())),
            command: command.map(|c| OneOrMany::One(c.into())),
        }
    }

    fn policy(rules: Vec<RuleDef>) -> Policy {
        let specs = rules_from_def(&PolicyDef { rules }, "test", false).unwrap();
        Policy::compile(&specs).unwrap()
    }

    fn shell(s: &str) -> CommandLine {
        CommandLine::Shell(s.into())
    }

    fn command_effect(p: &Policy, c: &CommandLine) -> Effect {
        p.evaluate(Subject {
            kind: GateKind::RunCommand,
            path: None,
            command: Some(c),
        })
        .effect
    }

    #[test]
    fn defaults_ask_for_edits_and_commands_and_allow_reads() {
        let p = policy(vec![]);
        assert_eq!(command_effect(&p, &shell("ls")), Effect::Ask);
        let read = p.evaluate(Subject {
            kind: GateKind::ReadFile,
            path: Some("a"),
            command: None,
        });
        assert_eq!(
            read,
            Verdict {
                effect: Effect::Allow,
                rule: None
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
        let at = |path| {
            p.evaluate(Subject {
                kind: GateKind::EditFile,
                path: Some(path),
                command: None,
            })
        };
        assert_eq!(at("docs/a.md").effect, Effect::Allow);
        assert_eq!(at("src/a.rs").effect, Effect::Ask);
        let denied = at("src/secret/key");
        assert_eq!(denied.effect, Effect::Deny);
        assert!(denied.rule.unwrap().contains("test, rule 3"));
    }

    #[test]
    fn chained_shell_commands_are_judged_per_segment() {
        let p = policy(vec![
            rule(Effect::Allow, "run_command", None, Some("cargo test*")),
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
        let argv = CommandLine::Argv(vec![
            "sh".into(),
            "-c".into(),
            "cargo test || rm -rf ~".into(),
        ]);
        assert_eq!(command_effect(&p, &argv), Effect::Deny);
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
}
