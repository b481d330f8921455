//! The shapes the endpoints share: a run as a list shows it and an event of a log. Each
//! endpoint's own request and answer live beside it.

use serde::Serialize;
use serde_json::Value;
use stepwise_core::event::Event;
use stepwise_engine::RunRow;
use utoipa::ToSchema;

/// A run as a list shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunItem {
    pub run_id: String,
    /// The workflow's name.
    pub workflow: String,
    /// The workflow file it was started from.
    pub workflow_path: String,
    pub workspace: String,
    /// `running`, `awaiting_approval` (waits for a person), `paused`, `succeeded`, `failed`,
    /// `cancelled`, or `interrupted` (recorded as running, but no process drives it: resume
    /// it).
    pub status: String,
    /// Who or what started it: `api`, `cli`, `app`, `watch`, `child`, …
    pub trigger: String,
    /// What a trigger saw, when one started it (`modify src/lib.rs`, `schedule 10:15`).
    pub cause: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// The seq of its last event.
    pub last_seq: u64,
    /// What its model calls have cost so far, in micro-dollars.
    pub cost_micro_usd: u64,
    /// The run it was forked from, or for a child run, its parent.
    pub parent: Option<String>,
    /// The process that drives it now (`pid 4242`), if one does.
    pub held_by: Option<String>,
}

impl RunItem {
    pub fn new(row: RunRow, held_by: Option<String>) -> RunItem {
        let status = stepwise_engine::RunSummary::status_to_show(&row, held_by.is_some());
        RunItem {
            run_id: row.run_id.to_string(),
            workflow: row.workflow_name,
            workflow_path: row.workflow_path,
            workspace: row.workspace,
            status: status.to_string(),
            trigger: row.trigger,
            cause: row.cause,
            created_at_ms: row.created_at_ms,
            updated_at_ms: row.updated_at_ms,
            last_seq: row.last_seq.get(),
            cost_micro_usd: row.cost_micro_usd,
            parent: row.parent.map(|p| p.to_string()),
            held_by,
        }
    }
}

/// One event of a run's log.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventItem {
    /// Its place in the log, from 1.
    pub seq: u64,
    pub recorded_at_ms: i64,
    /// `RunStarted`, `StepStarted`, `ApprovalRequested`, `OperationCompleted`, …
    #[serde(rename = "type")]
    pub event_type: String,
    /// What the event says (its fields depend on its type).
    #[schema(value_type = Object)]
    pub data: Value,
}

impl EventItem {
    pub fn new(seq: u64, recorded_at_ms: i64, event: &Event) -> EventItem {
        let mut value = serde_json::to_value(event).unwrap_or(Value::Null);
        let event_type = value
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_string();
        let data = value
            .get_mut("data")
            .map(Value::take)
            .unwrap_or(Value::Null);
        EventItem {
            seq,
            recorded_at_ms,
            event_type,
            data,
        }
    }
}
