//! Approval policy: which operations run at once, which wait for a person, which are refused.
//!
//! Rules come from the user's policy file, the workspace's and the workflow's. Every rule that
//! matches counts and the strongest effect wins (deny beats ask beats allow); among rules of that
//! effect the first one is reported. A workflow can only add `ask` and `deny` rules, so it can
//! tighten what the user allowed but never loosen it.
//!
//! A command is judged simple command by simple command (`a && b`, `a | b`, `a; b`, see
//! `shell`), so an allowed prefix cannot carry another command along, and its patterns match
//! word by word (see `pattern`). An `allow` rule vouches only for what it can see whole: not for
//! a segment with redirections, substitutions or expansions, not for a program named by another
//! path, and not for a step that sets environment variables (or passes any through) that the
//! rule does not name in its `env` (`pass_env`): a `PATH`, `LD_PRELOAD` or `PYTHONPATH` changes
//! what runs, and a passed secret is a secret let out. `deny` and `ask` rules match wherever the
//! command can be known: behind `sh -c`, `env`, `xargs`, `nohup` and the like, and by the
//! program's name whatever its directory.
//!
//! How rules of one kind cover the others: a `read_file` rule that denies or asks also applies to
//! `edit_file` on the same paths, because an edit shows the file's content (its snapshot and
//! diff). `edit_file` rules apply to edits only, `run_command` rules to commands only; a command
//! can read any file, so file rules do not restrict commands.
//!
//! A command an agent step's model chose is an `agent_command`: only `allow: agent_command`
//! rules, which must name the commands, let one run (an `allow: run_command` written for the
//! commands of a workflow's author does not), while `deny` and `ask` rules on `run_command`
//! restrict agents' commands too. By default an agent's command asks, which refuses it to the
//! agent.

mod arguments;
mod pattern;
mod rules;
mod shell;

use std::collections::BTreeMap;

use globset::{GlobBuilder, GlobMatcher};
use serde::{Deserialize, Serialize};

use self::pattern::CommandPattern;
pub use self::rules::{PolicyError, rules_from_def};
use self::shell::Segment;
use crate::operation::CommandLine;

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
    /// A command an agent step's model chose.
    AgentCommand,
    /// A tool of an MCP server an agent step's model called, named `SERVER.tool`.
    McpCall,
}

impl GateKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GateKind::ReadFile => "read_file",
            GateKind::EditFile => "edit_file",
            GateKind::RunCommand => "run_command",
            GateKind::AgentCommand => "agent_command",
            GateKind::McpCall => "mcp_call",
        }
    }

    /// What happens when no rule matches: reads run, edits and commands ask.
    pub fn default_effect(self) -> Effect {
        match self {
            GateKind::ReadFile => Effect::Allow,
            GateKind::EditFile
            | GateKind::RunCommand
            | GateKind::AgentCommand
            | GateKind::McpCall => Effect::Ask,
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
    /// Environment variables the rule covers (`NAME`, or `NAME=value-glob`): an `allow` rule
    /// vouches only for steps setting no others; a `deny` or `ask` rule matches steps setting
    /// one of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// Variables passed through from the engine's environment (name globs), likewise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pass_env: Vec<String>,
    /// `mcp_call` rules: a glob per argument of the call, all of which must match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub arguments: BTreeMap<String, String>,
    /// An `allow` rule that also vouches for shell lines it cannot see whole (redirections,
    /// substitutions, expansions, globs): the user said so in as many words.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unchecked_shell: bool,
    /// Where the rule was written, e.g. `workspace policy .stepwise/policy.yaml, rule 2`.
    pub source: String,
}

impl RuleSpec {
    /// One line naming the rule, as shown in approvals and the event log.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.text(), self.source)
    }

    /// The rule as written, without where: what an agent's model may be told of it.
    pub fn text(&self) -> String {
        let kind = self.kind.map_or("*", GateKind::as_str);
        let mut text = format!("{} {kind}", self.effect.as_str());
        if !self.paths.is_empty() {
            // An MCP rule's globs are over tool names (`tool:`), not paths.
            let over = if self.kind == Some(GateKind::McpCall) {
                "tool"
            } else {
                "path"
            };
            text.push_str(&format!(" {over} {}", self.paths.join(", ")));
        }
        if !self.commands.is_empty() {
            text.push_str(&format!(" command {}", self.commands.join(", ")));
        }
        if !self.env.is_empty() {
            text.push_str(&format!(" env {}", self.env.join(", ")));
        }
        if !self.pass_env.is_empty() {
            text.push_str(&format!(" pass_env {}", self.pass_env.join(", ")));
        }
        if !self.arguments.is_empty() {
            let each: Vec<String> = self
                .arguments
                .iter()
                .map(|(name, glob)| format!("{name}={glob}"))
                .collect();
            text.push_str(&format!(" arguments {}", each.join(", ")));
        }
        if self.unchecked_shell {
            text.push_str(" unchecked_shell");
        }
        text
    }
}

/// The operation a verdict is asked for.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub kind: GateKind,
    pub path: Option<&'a str>,
    pub command: Option<&'a CommandLine>,
    /// Variables the step sets for its command.
    pub env: &'a BTreeMap<String, String>,
    /// Variables the step passes through from the engine's environment.
    pub pass_env: &'a [String],
    /// An MCP call's arguments.
    pub arguments: Option<&'a serde_json::Value>,
}

static NO_ENV: BTreeMap<String, String> = BTreeMap::new();

impl<'a> Subject<'a> {
    /// A file operation.
    pub fn file(kind: GateKind, path: &'a str) -> Subject<'a> {
        Subject {
            kind,
            path: Some(path),
            command: None,
            env: &NO_ENV,
            pass_env: &[],
            arguments: None,
        }
    }

    /// A command, with the environment it gets.
    pub fn command(request: &'a crate::operation::CommandRequest) -> Subject<'a> {
        Subject {
            kind: GateKind::RunCommand,
            path: None,
            command: Some(&request.command),
            env: &request.env,
            pass_env: &request.pass_env,
            arguments: None,
        }
    }

    /// A command an agent step's model chose, with the environment it gets.
    pub fn agent_command(request: &'a crate::operation::CommandRequest) -> Subject<'a> {
        Subject {
            kind: GateKind::AgentCommand,
            ..Subject::command(request)
        }
    }

    /// A call of an MCP server's tool, named `SERVER.tool` (matched by the globs of a rule's
    /// `tool:`).
    pub fn mcp_tool(name: &'a str, arguments: &'a serde_json::Value) -> Subject<'a> {
        Subject {
            kind: GateKind::McpCall,
            path: Some(name),
            command: None,
            env: &NO_ENV,
            pass_env: &[],
            arguments: Some(arguments),
        }
    }

    /// An operation with no path or command (a manual gate).
    pub fn bare(kind: GateKind) -> Subject<'a> {
        Subject {
            kind,
            path: None,
            command: None,
            env: &NO_ENV,
            pass_env: &[],
            arguments: None,
        }
    }
}

/// The policy's answer for one operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub effect: Effect,
    /// The deciding rule, described; `None` when the default for the kind applied.
    pub rule: Option<String>,
    /// The deciding rule as written, without where it was written (which may name places on
    /// this machine): what an agent's model is told of a refusal.
    #[serde(skip)]
    pub rule_text: Option<String>,
    /// Why an `allow` rule that matched the command did not vouch for it, when one did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
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
    commands: Vec<CommandPattern>,
    env: Vec<(GlobMatcher, Option<GlobMatcher>)>,
    pass_env: Vec<GlobMatcher>,
    arguments: Vec<(String, GlobMatcher)>,
}

/// Whether a rule applies to an operation, and if an `allow` rule does not, why.
enum Match {
    Yes,
    No,
    /// An `allow` rule that would have matched, but cannot vouch: the reason.
    NotVouched(String),
}

impl CompiledRule {
    fn compile(spec: &RuleSpec) -> Result<CompiledRule, PolicyError> {
        let pattern_error = |pattern: &String, message: String| PolicyError::Pattern {
            origin: spec.source.clone(),
            pattern: pattern.clone(),
            message,
        };
        let glob = |pattern: &String, literal_separator: bool| {
            GlobBuilder::new(pattern)
                .literal_separator(literal_separator)
                .build()
                .map(|g| g.compile_matcher())
                .map_err(|e| pattern_error(pattern, e.kind().to_string()))
        };
        // An MCP rule's globs are over tool names (`SERVER.tool`), whose `/` is no separator.
        let over_paths = spec.kind != Some(GateKind::McpCall);
        Ok(CompiledRule {
            spec: spec.clone(),
            paths: spec
                .paths
                .iter()
                .map(|p| glob(p, over_paths))
                .collect::<Result<_, _>>()?,
            commands: spec
                .commands
                .iter()
                .map(|c| CommandPattern::compile(c).map_err(|e| pattern_error(c, e)))
                .collect::<Result<_, _>>()?,
            env: spec
                .env
                .iter()
                .map(|e| match e.split_once('=') {
                    Some((name, value)) => Ok((
                        glob(&name.to_string(), false)?,
                        Some(glob(&value.to_string(), false)?),
                    )),
                    None => Ok((glob(e, false)?, None)),
                })
                .collect::<Result<_, _>>()?,
            pass_env: spec
                .pass_env
                .iter()
                .map(|p| glob(p, false))
                .collect::<Result<_, _>>()?,
            arguments: spec
                .arguments
                .iter()
                .map(|(name, pattern)| Ok((name.clone(), glob(pattern, true)?)))
                .collect::<Result<_, PolicyError>>()?,
        })
    }

    fn applies_to(&self, kind: GateKind) -> bool {
        match self.spec.kind {
            // An agent's commands and MCP calls are allowed only by rules that say so by name.
            None => {
                !(matches!(kind, GateKind::AgentCommand | GateKind::McpCall)
                    && self.spec.effect == Effect::Allow)
            }
            Some(k) if k == kind => true,
            // An edit shows the file: a read rule that restricts also restricts edits.
            Some(GateKind::ReadFile) => {
                kind == GateKind::EditFile && self.spec.effect != Effect::Allow
            }
            // What restricts commands restricts an agent's too; what allows them does not.
            Some(GateKind::RunCommand) => {
                kind == GateKind::AgentCommand && self.spec.effect != Effect::Allow
            }
            Some(_) => false,
        }
    }

    fn covers_var(&self, name: &str, value: &str) -> bool {
        self.env
            .iter()
            .any(|(n, v)| n.is_match(name) && v.as_ref().is_none_or(|v| v.is_match(value)))
    }

    fn matches(&self, subject: &Subject<'_>, segment: Option<&Segment>) -> Match {
        if !self.applies_to(subject.kind) {
            return Match::No;
        }
        if !self.paths.is_empty()
            && !subject
                .path
                .is_some_and(|p| self.paths.iter().any(|g| g.is_match(p)))
        {
            return Match::No;
        }
        if !self.arguments.is_empty()
            && !arguments::arguments_match(
                &self.arguments,
                subject.arguments,
                self.spec.effect == Effect::Allow,
            )
        {
            return Match::No;
        }
        if self.spec.effect == Effect::Allow {
            self.vouches(subject, segment)
        } else {
            self.restricts(subject, segment)
        }
    }

    /// An `allow` rule: it must see the whole of what runs.
    fn vouches(&self, subject: &Subject<'_>, segment: Option<&Segment>) -> Match {
        if !self.commands.is_empty() {
            let Some(segment) = segment else {
                return Match::No;
            };
            if !self
                .commands
                .iter()
                .any(|c| c.matches(&segment.words, false))
            {
                return Match::No;
            }
        }
        if let Some(segment) = segment
            && segment.opaque
            && !self.spec.unchecked_shell
        {
            return Match::NotVouched(format!(
                "{} matches, but a shell line with redirections, substitutions, expansions or globs is approved only by a rule with `unchecked_shell: true`",
                self.spec.describe()
            ));
        }
        if !matches!(subject.kind, GateKind::RunCommand | GateKind::AgentCommand) {
            return Match::Yes;
        }
        let set: Vec<(&str, &str)> = subject
            .env
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .chain(
                segment
                    .into_iter()
                    .flat_map(|s| s.assignments.iter().map(|(n, v)| (n.as_str(), v.as_str()))),
            )
            .collect();
        let uncovered: Vec<&str> = set
            .iter()
            .filter(|(n, v)| !self.covers_var(n, v))
            .map(|(n, _)| *n)
            .collect();
        if !uncovered.is_empty() {
            return Match::NotVouched(format!(
                "{} matches, but the step sets {}, which the rule does not name in its `env` (variables change what runs)",
                self.spec.describe(),
                uncovered.join(", ")
            ));
        }
        let unnamed: Vec<&str> = subject
            .pass_env
            .iter()
            .filter(|p| !self.pass_env.iter().any(|g| g.is_match(p.as_str())))
            .map(String::as_str)
            .collect();
        if !unnamed.is_empty() {
            return Match::NotVouched(format!(
                "{} matches, but the step passes {} from the engine's environment, which the rule does not name in its `pass_env`",
                self.spec.describe(),
                unnamed.join(", ")
            ));
        }
        Match::Yes
    }

    /// A `deny` or `ask` rule: it matches wherever the command can be known.
    fn restricts(&self, subject: &Subject<'_>, segment: Option<&Segment>) -> Match {
        if !self.commands.is_empty() {
            let Some(segment) = segment else {
                return Match::No;
            };
            let hit = segment
                .commands_within()
                .iter()
                .any(|words| self.commands.iter().any(|c| c.matches(words, true)));
            if !hit {
                return Match::No;
            }
        }
        if !self.env.is_empty() {
            let sets_one = subject
                .env
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .chain(
                    segment
                        .into_iter()
                        .flat_map(|s| s.assignments.iter().map(|(n, v)| (n.as_str(), v.as_str()))),
                )
                .any(|(n, v)| self.covers_var(n, v));
            if !sets_one {
                return Match::No;
            }
        }
        if !self.pass_env.is_empty()
            && !subject
                .pass_env
                .iter()
                .any(|p| self.pass_env.iter().any(|g| g.is_match(p.as_str())))
        {
            return Match::No;
        }
        Match::Yes
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

    /// The effect for one operation: the strongest over its command's segments (if any) of the
    /// strongest matching rule, or the kind's default.
    pub fn evaluate(&self, subject: Subject<'_>) -> Verdict {
        let segments = subject.command.map(shell::segments).unwrap_or_default();
        if segments.is_empty() {
            return self.evaluate_one(&subject, None);
        }
        let mut verdicts = segments
            .iter()
            .map(|s| self.evaluate_one(&subject, Some(s)))
            .collect::<Vec<_>>();
        // The strongest; among equals, one that says why an allow did not vouch.
        verdicts.sort_by_key(|v| (v.effect, v.note.is_some()));
        verdicts.pop().unwrap_or(Verdict {
            effect: subject.kind.default_effect(),
            rule: None,
            rule_text: None,
            note: None,
        })
    }

    /// Globs covering every path an agent may not read without asking (the paths of the
    /// `deny` and `ask` rules that reach reads; `**` for such a rule naming no path). A
    /// superset, never less: what a search must not even open.
    pub fn unreadable_globs(&self) -> Vec<String> {
        let mut globs: Vec<String> = Vec::new();
        for rule in &self.rules {
            if rule.spec.effect == Effect::Allow || !rule.applies_to(GateKind::ReadFile) {
                continue;
            }
            if rule.spec.paths.is_empty() {
                return vec!["**".into()];
            }
            for path in &rule.spec.paths {
                if !globs.contains(path) {
                    globs.push(path.clone());
                }
            }
        }
        globs
    }

    fn evaluate_one(&self, subject: &Subject<'_>, segment: Option<&Segment>) -> Verdict {
        let mut best: Option<&CompiledRule> = None;
        let mut note = None;
        for rule in &self.rules {
            match rule.matches(subject, segment) {
                Match::Yes => {
                    // Strictly stronger replaces: the first rule of the strongest effect wins.
                    if best.is_none_or(|b| rule.spec.effect > b.spec.effect) {
                        best = Some(rule);
                    }
                }
                Match::NotVouched(why) => {
                    note.get_or_insert(why);
                }
                Match::No => {}
            }
        }
        match best {
            Some(rule) => Verdict {
                effect: rule.spec.effect,
                rule: Some(rule.spec.describe()),
                rule_text: Some(rule.spec.text()),
                note: (rule.spec.effect != Effect::Allow)
                    .then_some(note)
                    .flatten(),
            },
            None => Verdict {
                effect: subject.kind.default_effect(),
                rule: None,
                rule_text: None,
                note,
            },
        }
    }
}

#[cfg(test)]
mod tests;
