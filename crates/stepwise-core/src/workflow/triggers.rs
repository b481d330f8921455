//! A workflow's triggers (`on:`): what starts its runs without a person — files changing in
//! its workspace, a cron schedule, a named signal — as written (`*Def`) and as checked.
//! Watching and starting is the engine's (a watcher); this module only says what to watch.

use std::collections::BTreeSet;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The debounce of a file trigger unless it says otherwise.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_secs(2);
/// The longest debounce a file trigger may ask for.
pub const MAX_DEBOUNCE: Duration = Duration::from_secs(3600);
/// The most path patterns a file trigger may have.
pub const MAX_PATH_PATTERNS: usize = 100;
/// The longest path pattern.
pub const MAX_PATTERN_BYTES: usize = 1024;

/// `on:` as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggersDef {
    /// Start a run when files in the workspace change.
    #[serde(default)]
    pub files: Option<FilesTriggerDef>,
    /// Start a run on a cron schedule (five fields, local time).
    #[serde(default)]
    pub schedule: Option<ScheduleTriggerDef>,
    /// Start a run when a signal of this name is recorded (`stepwise signal NAME`).
    #[serde(default)]
    pub signal: Option<String>,
}

/// `on.files` as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilesTriggerDef {
    /// Globs relative to the workspace (`src/**/*.rs`); `*` stays within a directory.
    pub paths: Vec<String>,
    /// Which changes count (default all three).
    #[serde(default)]
    pub events: Option<Vec<FileEvent>>,
    /// How long the files must stay quiet before a run starts (default `2s`).
    #[serde(default)]
    pub debounce: Option<String>,
    /// Whether changes Stepwise's own runs made count too (default false: no feedback loops).
    #[serde(default)]
    pub include_own: bool,
}

/// `on.schedule` as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleTriggerDef {
    /// Standard five-field cron (`*/15 * * * *`), in the local time zone.
    pub cron: String,
    /// What a watcher does about slots missed while none ran: start one run for the latest
    /// (`latest`, the default) or none.
    #[serde(default)]
    pub catch_up: Option<CatchUp>,
}

/// A change to a file.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum FileEvent {
    Create,
    Modify,
    Delete,
}

impl FileEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            FileEvent::Create => "create",
            FileEvent::Modify => "modify",
            FileEvent::Delete => "delete",
        }
    }
}

/// What to do about schedule slots missed while no watcher ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// One run for the latest missed slot.
    #[default]
    Latest,
    /// None.
    None,
}

/// A workflow's checked triggers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Triggers {
    pub files: Option<FilesTrigger>,
    pub schedule: Option<ScheduleTrigger>,
    pub signal: Option<String>,
}

impl Triggers {
    /// Whether anything starts this workflow's runs.
    pub fn any(&self) -> bool {
        self.files.is_some() || self.schedule.is_some() || self.signal.is_some()
    }
}

/// A checked file trigger.
#[derive(Debug, Clone, PartialEq)]
pub struct FilesTrigger {
    /// Each compiles as a glob (`*` within a directory, `**` across).
    pub paths: Vec<String>,
    pub events: BTreeSet<FileEvent>,
    pub debounce: Duration,
    pub include_own: bool,
}

impl FilesTrigger {
    /// The patterns as one matcher of workspace-relative paths (with `/`).
    pub fn matcher(&self) -> Result<globset::GlobSet, String> {
        let mut set = globset::GlobSetBuilder::new();
        for pattern in &self.paths {
            set.add(glob(pattern)?);
        }
        set.build().map_err(|e| e.to_string())
    }
}

/// A checked schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleTrigger {
    /// As written; it parses ([`parse_cron`]).
    pub cron: String,
    pub catch_up: CatchUp,
}

/// A five-field cron expression (`minute hour day-of-month month day-of-week`), as `croner`
/// reads it: the standard fields, ranges, steps, lists and names.
pub fn parse_cron(text: &str) -> Result<croner::Cron, String> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .build()
        .parse(text)
        .map_err(|e| format!("`{text}` is not a five-field cron schedule: {e}"))
}

fn glob(pattern: &str) -> Result<globset::Glob, String> {
    globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|e| format!("`{pattern}` is not a path pattern: {}", e.kind()))
}

/// The input a triggered run is given what started it in (when the workflow declares it):
/// the changed files, the schedule's slot, or the signal.
pub const TRIGGER_INPUT: &str = "trigger";

/// `on:` checked, with the workflow's inputs (a run nobody starts by hand gets only their
/// defaults): each message names the field it is about.
pub(super) fn compile(
    def: &TriggersDef,
    inputs: &std::collections::BTreeMap<String, super::InputDef>,
) -> Result<Triggers, Vec<String>> {
    let mut errors = Vec::new();
    for (name, input) in inputs {
        if name == TRIGGER_INPUT {
            if input.kind != super::InputType::Object {
                errors.push(format!(
                    "input `{TRIGGER_INPUT}` of a workflow with `on:` is given what started the run: it must be of type object"
                ));
            }
        } else if input.default.is_none() {
            errors.push(format!(
                "input `{name}` has no default, and a run started by `on:` is given none: give it a default"
            ));
        }
    }
    let files = def.files.as_ref().and_then(|files| {
        let before = errors.len();
        if files.paths.is_empty() {
            errors.push("`on.files.paths` needs at least one path pattern".to_string());
        }
        if files.paths.len() > MAX_PATH_PATTERNS {
            errors.push(format!(
                "`on.files.paths` has {} patterns; at most {MAX_PATH_PATTERNS}",
                files.paths.len()
            ));
        }
        for pattern in &files.paths {
            if pattern.len() > MAX_PATTERN_BYTES {
                errors.push(format!(
                    "`on.files.paths`: a pattern is longer than {MAX_PATTERN_BYTES} bytes"
                ));
            } else if pattern.trim().is_empty() {
                errors.push("`on.files.paths`: a pattern is empty".to_string());
            } else if pattern.starts_with('/')
                || pattern.split('/').any(|part| part == "..")
                || pattern.contains('\\')
            {
                errors.push(format!(
                    "`on.files.paths`: `{pattern}` must be relative to the workspace and stay inside it (no leading `/`, no `..`, `/` between directories)"
                ));
            } else if let Err(message) = glob(pattern) {
                errors.push(format!("`on.files.paths`: {message}"));
            }
        }
        let events: BTreeSet<FileEvent> = match &files.events {
            Some(events) if events.is_empty() => {
                errors.push(
                    "`on.files.events` is empty; leave it out for create, modify and delete"
                        .to_string(),
                );
                BTreeSet::new()
            }
            Some(events) => events.iter().copied().collect(),
            None => [FileEvent::Create, FileEvent::Modify, FileEvent::Delete].into(),
        };
        let debounce = match &files.debounce {
            None => DEFAULT_DEBOUNCE,
            Some(text) => match humantime::parse_duration(text) {
                Ok(d) if d <= MAX_DEBOUNCE => d,
                Ok(_) => {
                    errors.push(format!(
                        "`on.files.debounce` is `{text}`; at most {}",
                        humantime::format_duration(MAX_DEBOUNCE)
                    ));
                    DEFAULT_DEBOUNCE
                }
                Err(e) => {
                    errors.push(format!(
                        "`on.files.debounce` is `{text}`, not a duration like `2s` or `500ms`: {e}"
                    ));
                    DEFAULT_DEBOUNCE
                }
            },
        };
        (errors.len() == before).then(|| FilesTrigger {
            paths: files.paths.clone(),
            events,
            debounce,
            include_own: files.include_own,
        })
    });
    let schedule = def
        .schedule
        .as_ref()
        .and_then(|schedule| match parse_cron(&schedule.cron) {
            Ok(_) => Some(ScheduleTrigger {
                cron: schedule.cron.trim().to_string(),
                catch_up: schedule.catch_up.unwrap_or_default(),
            }),
            Err(message) => {
                errors.push(format!("`on.schedule.cron`: {message}"));
                None
            }
        });
    let signal = def
        .signal
        .as_ref()
        .and_then(|name| match crate::signal::check_name(name) {
            Ok(()) => Some(name.clone()),
            Err(message) => {
                errors.push(format!("`on.signal`: {message}"));
                None
            }
        });
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Triggers {
        files,
        schedule,
        signal,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(paths: &[&str]) -> TriggersDef {
        TriggersDef {
            files: Some(FilesTriggerDef {
                paths: paths.iter().map(|p| p.to_string()).collect(),
                events: None,
                debounce: None,
                include_own: false,
            }),
            schedule: None,
            signal: None,
        }
    }

    #[test]
    fn path_patterns_stay_in_the_workspace_and_star_stays_in_a_directory() {
        let triggers =
            compile(&files(&["src/*.rs", "docs/**"]), &Default::default()).expect("valid");
        let matcher = triggers.files.expect("files").matcher().expect("matcher");
        assert!(matcher.is_match("src/lib.rs"));
        assert!(!matcher.is_match("src/deep/lib.rs"));
        assert!(matcher.is_match("docs/a/b.md"));
        for bad in ["/etc/*", "../x", "src/../../x", "a\\b", "src/[", ""] {
            let errors = compile(&files(&[bad]), &Default::default()).expect_err(bad);
            assert!(errors[0].contains("on.files.paths"), "{bad}: {errors:?}");
        }
        assert!(compile(&files(&[]), &Default::default()).is_err());
    }

    #[test]
    fn a_schedule_is_five_fields() {
        assert!(parse_cron("*/15 * * * *").is_ok());
        assert!(parse_cron("0 9 * * MON-FRI").is_ok());
        for bad in ["* * * * * *", "61 * * * *", "every day", ""] {
            assert!(parse_cron(bad).is_err(), "{bad}");
        }
    }
}
