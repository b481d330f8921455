//! Sub-workflows: a step that runs another workflow as a child run in the same workspace.
//! What a run records of the files its steps run (so that resume and replay use the files
//! as they were when it started), and of the run that started it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{EventSeq, RunId, StepId};

/// How deep child runs may nest: a top-level run is at depth 0, its children at 1.
pub const MAX_DEPTH: u32 = 8;

/// What the trigger of a child run is recorded as.
pub const CHILD_TRIGGER: &str = "workflow";

/// The most workflow files one run may name, its children's included.
pub const MAX_FILES: usize = 64;

/// A workflow file a step runs, as it was when the run started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubWorkflow {
    /// The file it was read from.
    pub path: String,
    /// Its text.
    pub source: String,
    /// The files its own `workflow` steps run, by `path` as written there.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub subworkflows: BTreeMap<String, SubWorkflow>,
}

impl SubWorkflow {
    /// The files this one and those below it hold, itself included.
    pub fn file_count(&self) -> usize {
        1 + self
            .subworkflows
            .values()
            .map(SubWorkflow::file_count)
            .sum::<usize>()
    }
}

/// The run and step that started a child run.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentLink {
    pub run_id: RunId,
    pub step: StepId,
    /// The seq of the parent's operation that started this run.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub op: EventSeq,
    /// 1 for a child of a top-level run.
    pub depth: u32,
    /// The top-level run of the family, which every run of it shares (its correlation id).
    pub root: RunId,
}
