//! Who may answer a run's questions: `approvers` (names that may approve or reject, for every
//! kind of question or per kind) and `self_approval: false` (the person who started the run
//! may not approve its questions), written at the top level of a workflow or a policy file.
//!
//! What the policy files say is recorded with the run (`RunStarted::approvers`), the workflow's
//! comes with the recorded workflow, so every process that reads the log judges a decision the
//! same way. Every list that applies must name the person: a workflow can narrow who may answer,
//! never widen it. Names are compared exactly, as each process names its user (`STEPWISE_USER`,
//! else the OS user).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::event::Proposal;

/// `approvers` as written: names for every kind of question, or names per kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ApproversDef {
    /// Who may answer every kind of question.
    Everyone(Vec<String>),
    /// Who may answer each kind named (`edit_file`, `read_file`, `run_command`, `mcp_call`,
    /// `budget`, `plan`, `question`, `approval`, `breakpoint`, or `*` for every kind); a kind
    /// not named may be answered by anyone the other lists allow.
    PerKind(BTreeMap<String, Vec<String>>),
}

/// The kinds of question approvers are named for.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuestionKind {
    EditFile,
    ReadFile,
    RunCommand,
    McpCall,
    /// A model call that would cross the run's budget.
    Budget,
    Plan,
    /// An agent's question to a person.
    Question,
    /// A manual gate (`approval: required`).
    Approval,
    Breakpoint,
}

const KINDS: [QuestionKind; 9] = [
    QuestionKind::EditFile,
    QuestionKind::ReadFile,
    QuestionKind::RunCommand,
    QuestionKind::McpCall,
    QuestionKind::Budget,
    QuestionKind::Plan,
    QuestionKind::Question,
    QuestionKind::Approval,
    QuestionKind::Breakpoint,
];

impl QuestionKind {
    /// The kind as written in `approvers`.
    pub fn as_str(self) -> &'static str {
        match self {
            QuestionKind::EditFile => "edit_file",
            QuestionKind::ReadFile => "read_file",
            QuestionKind::RunCommand => "run_command",
            QuestionKind::McpCall => "mcp_call",
            QuestionKind::Budget => "budget",
            QuestionKind::Plan => "plan",
            QuestionKind::Question => "question",
            QuestionKind::Approval => "approval",
            QuestionKind::Breakpoint => "breakpoint",
        }
    }

    /// The kind of question a proposal puts.
    pub fn of(proposal: &Proposal) -> QuestionKind {
        match proposal {
            Proposal::EditFile { .. } => QuestionKind::EditFile,
            Proposal::ReadFile { .. } => QuestionKind::ReadFile,
            Proposal::RunCommand(_) => QuestionKind::RunCommand,
            Proposal::McpCall { .. } => QuestionKind::McpCall,
            Proposal::LlmCall { .. } => QuestionKind::Budget,
            Proposal::Plan { .. } => QuestionKind::Plan,
            Proposal::Question { .. } => QuestionKind::Question,
            Proposal::Gate { .. } => QuestionKind::Approval,
            Proposal::Breakpoint { .. } => QuestionKind::Breakpoint,
        }
    }

    fn parse(text: &str) -> Option<QuestionKind> {
        KINDS.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// One list of approvers, as recorded.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApproverList {
    /// The kind of question it is for; every kind when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<QuestionKind>,
    pub names: Vec<String>,
    /// Where it was written (`workflow`, `workspace policy …`).
    pub source: String,
}

/// Who may answer a run's questions, as recorded.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approvers {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lists: Vec<ApproverList>,
    /// Where `self_approval: false` was written, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_self_approval: Option<String>,
}

/// Who may answer one question, as an inbox shows it.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoMayAnswer {
    /// The only people who may approve or reject it; absent: anyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only: Option<Vec<String>>,
    /// The person who started the run, who may reject it but not approve it
    /// (`self_approval: false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_approving: Option<String>,
}

impl WhoMayAnswer {
    /// Whether anyone may answer.
    pub fn is_anyone(&self) -> bool {
        self.only.is_none() && self.not_approving.is_none()
    }
}

/// `approvers` or `self_approval` that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ApproversError {
    #[error(
        "{source_name}: `approvers` names no kind `{kind}`; use edit_file, read_file, run_command, mcp_call, budget, plan, question, approval, breakpoint or *"
    )]
    UnknownKind { source_name: String, kind: String },
    #[error(
        "{source_name}: the approvers{for_kind} are an empty list, so nobody could answer; name at least one person, or leave the list out"
    )]
    Empty {
        source_name: String,
        for_kind: String,
    },
    #[error(
        "{source_name}: approver `{name}` is not a user name (empty, longer than {MAX_NAME_BYTES} bytes, or with control characters)"
    )]
    BadName { source_name: String, name: String },
    #[error("{source_name}: more than {MAX_NAMES} approvers in one list")]
    TooMany { source_name: String },
}

/// The longest name an approver list may hold.
pub const MAX_NAME_BYTES: usize = 256;
/// The most names one list may hold.
pub const MAX_NAMES: usize = 1000;

impl Approvers {
    /// What a file says: its `approvers` and `self_approval`, checked. `source` names the file
    /// in errors and in the record.
    pub fn from_def(
        def: Option<&ApproversDef>,
        self_approval: Option<bool>,
        source: &str,
    ) -> Result<Approvers, ApproversError> {
        let mut lists = Vec::new();
        let list = |kind: Option<QuestionKind>, names: &[String]| -> Result<_, ApproversError> {
            let for_kind = kind.map_or(String::new(), |k| format!(" for {}", k.as_str()));
            if names.is_empty() {
                return Err(ApproversError::Empty {
                    source_name: source.to_string(),
                    for_kind,
                });
            }
            if names.len() > MAX_NAMES {
                return Err(ApproversError::TooMany {
                    source_name: source.to_string(),
                });
            }
            let mut checked = Vec::with_capacity(names.len());
            for name in names {
                let trimmed = name.trim();
                if trimmed.is_empty()
                    || trimmed.len() > MAX_NAME_BYTES
                    || trimmed.chars().any(char::is_control)
                {
                    return Err(ApproversError::BadName {
                        source_name: source.to_string(),
                        name: name.chars().take(64).collect(),
                    });
                }
                checked.push(trimmed.to_string());
            }
            Ok(ApproverList {
                kind,
                names: checked,
                source: source.to_string(),
            })
        };
        match def {
            None => {}
            Some(ApproversDef::Everyone(names)) => lists.push(list(None, names)?),
            Some(ApproversDef::PerKind(kinds)) => {
                for (key, names) in kinds {
                    let kind = match key.as_str() {
                        "*" => None,
                        text => Some(QuestionKind::parse(text).ok_or_else(|| {
                            ApproversError::UnknownKind {
                                source_name: source.to_string(),
                                kind: text.to_string(),
                            }
                        })?),
                    };
                    lists.push(list(kind, names)?);
                }
            }
        }
        Ok(Approvers {
            lists,
            no_self_approval: (self_approval == Some(false)).then(|| source.to_string()),
        })
    }

    /// Whether nothing restricts who may answer.
    pub fn is_empty(&self) -> bool {
        self.lists.is_empty() && self.no_self_approval.is_none()
    }

    /// These, as a run records them: nothing when they restrict nothing.
    pub fn recorded(self) -> Option<Box<Approvers>> {
        (!self.is_empty()).then(|| Box::new(self))
    }

    /// These and `other`'s restrictions together: a person must pass both.
    pub fn and(&self, other: &Approvers) -> Approvers {
        Approvers {
            lists: self.lists.iter().chain(&other.lists).cloned().collect(),
            no_self_approval: self
                .no_self_approval
                .clone()
                .or_else(|| other.no_self_approval.clone()),
        }
    }

    /// The names that may answer a question of `kind` (those every list that applies names,
    /// in the first list's order); `None` when no list applies.
    pub fn allowed(&self, kind: QuestionKind) -> Option<Vec<String>> {
        let mut applying = self
            .lists
            .iter()
            .filter(|list| list.kind.is_none_or(|k| k == kind));
        let first = applying.next()?;
        let rest: Vec<&ApproverList> = applying.collect();
        Some(
            first
                .names
                .iter()
                .filter(|name| rest.iter().all(|list| list.names.contains(name)))
                .cloned()
                .collect(),
        )
    }

    /// Who may answer a question of `kind` in a run `started_by` started.
    pub fn who_may_answer(&self, kind: QuestionKind, started_by: &str) -> WhoMayAnswer {
        WhoMayAnswer {
            only: self.allowed(kind),
            not_approving: self
                .no_self_approval
                .as_ref()
                .map(|_| started_by.to_string()),
        }
    }

    /// Whether `person` may answer a question of `kind` in a run `started_by` started:
    /// `approving` it, or rejecting it. The refusal says why, in words.
    pub fn check(
        &self,
        kind: QuestionKind,
        person: &str,
        started_by: &str,
        approving: bool,
    ) -> Result<(), String> {
        if let Some(names) = self.allowed(kind)
            && !names.iter().any(|name| name == person)
        {
            let sources: Vec<&str> = self
                .lists
                .iter()
                .filter(|list| list.kind.is_none_or(|k| k == kind))
                .map(|list| list.source.as_str())
                .collect();
            let who = if names.is_empty() {
                "nobody (the lists that apply name no one in common)".to_string()
            } else {
                names.join(", ")
            };
            return Err(format!(
                "`{person}` may not answer this {} question: only {who} may (approvers in {})",
                kind.as_str(),
                sources.join(" and ")
            ));
        }
        if approving
            && person == started_by
            && let Some(source) = &self.no_self_approval
        {
            return Err(format!(
                "`{person}` started this run and may not approve its questions (`self_approval: false` in {source}); someone else must approve, or reject it"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_list_that_applies_must_name_the_person() {
        let policy = Approvers::from_def(
            Some(&ApproversDef::Everyone(names(&["ana", "bo"]))),
            None,
            "policy",
        )
        .unwrap();
        let mut per_kind = BTreeMap::new();
        per_kind.insert("edit_file".to_string(), names(&["bo", "cy"]));
        let workflow =
            Approvers::from_def(Some(&ApproversDef::PerKind(per_kind)), None, "workflow").unwrap();
        let both = policy.and(&workflow);
        assert_eq!(both.allowed(QuestionKind::EditFile), Some(names(&["bo"])));
        assert_eq!(
            both.allowed(QuestionKind::RunCommand),
            Some(names(&["ana", "bo"]))
        );
        assert!(both.check(QuestionKind::EditFile, "bo", "x", true).is_ok());
        let refused = both
            .check(QuestionKind::EditFile, "ana", "x", true)
            .unwrap_err();
        assert!(refused.contains("only bo may"), "{refused}");
        assert!(refused.contains("policy and workflow"), "{refused}");
        assert!(
            both.check(QuestionKind::RunCommand, "ana", "x", false)
                .is_ok()
        );
        assert_eq!(Approvers::default().allowed(QuestionKind::Plan), None);
    }

    #[test]
    fn the_starter_may_reject_but_not_approve_without_self_approval() {
        let rules = Approvers::from_def(None, Some(false), "workflow").unwrap();
        assert!(rules.check(QuestionKind::Plan, "ana", "ana", false).is_ok());
        let refused = rules
            .check(QuestionKind::Plan, "ana", "ana", true)
            .unwrap_err();
        assert!(refused.contains("self_approval: false"), "{refused}");
        assert!(rules.check(QuestionKind::Plan, "bo", "ana", true).is_ok());
        assert!(
            Approvers::from_def(None, Some(true), "w")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn bad_lists_are_refused_by_name() {
        let mut per_kind = BTreeMap::new();
        per_kind.insert("edit_files".to_string(), names(&["bo"]));
        let error = Approvers::from_def(Some(&ApproversDef::PerKind(per_kind)), None, "wf")
            .unwrap_err()
            .to_string();
        assert!(error.contains("`edit_files`"), "{error}");
        let error = Approvers::from_def(Some(&ApproversDef::Everyone(vec![])), None, "wf")
            .unwrap_err()
            .to_string();
        assert!(error.contains("empty list"), "{error}");
        let error =
            Approvers::from_def(Some(&ApproversDef::Everyone(names(&["a\nb"]))), None, "wf")
                .unwrap_err()
                .to_string();
        assert!(error.contains("not a user name"), "{error}");
    }
}
