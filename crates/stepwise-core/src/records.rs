//! What the store keeps of a run and of each of its events, as plain data: the records a
//! client of the engine reads (lists, logs, feeds). The store reads and writes them; their
//! meaning is the rest of this crate's.

use serde::Serialize;

use crate::ids::{EventSeq, RunId};
use crate::run::RunStatus;

/// A run as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRow {
    pub run_id: RunId,
    pub workflow_name: String,
    pub workflow_path: String,
    pub workflow_hash: String,
    pub workspace: String,
    pub trigger: String,
    pub status: RunStatus,
    pub created_at_ms: i64,
    /// The `recorded_at_ms` of the last event (`created_at_ms` before any).
    pub updated_at_ms: i64,
    /// The seq of the last event, 0 before any.
    pub last_seq: EventSeq,
    /// A database-wide counter: higher for a run written to later. Followers ask for the runs
    /// that changed since the highest value they have seen.
    pub change_seq: u64,
    /// What the run's model calls have cost so far, in micro-dollars.
    pub cost_micro_usd: u64,
    /// The run it was forked from (`stepwise fork`), or, for a child run (see `is_child`),
    /// the run whose `workflow` step started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<RunId>,
    /// What started it, when a trigger did (`modify src/lib.rs`, `schedule 10:15`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

impl RunRow {
    /// Whether a parent's `workflow` step started it (rather than a fork).
    pub fn is_child(&self) -> bool {
        self.parent.is_some() && self.trigger == crate::subrun::CHILD_TRIGGER
    }
}

/// An event read back from the log, with blobs resolved into its payload.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub seq: EventSeq,
    pub event_type: String,
    pub schema_version: u32,
    pub recorded_at_ms: i64,
    pub correlation_id: Option<String>,
    pub causation_seq: Option<EventSeq>,
    pub payload: serde_json::Value,
}
