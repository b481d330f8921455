//! What started a run without a person: a trigger's firing or a named signal, recorded first
//! as a signal (immutable, once per idempotency key), whose id the run then records as its
//! cause, with a line people read (`modify src/lib.rs`, `schedule 10:15`, `signal deploy`).

use serde::{Deserialize, Serialize};

use crate::workflow::triggers::FileEvent;

/// The `trigger` a run started by a watcher records (as `cli` or `app` for a person's).
pub const WATCH_TRIGGER: &str = "watch";

/// A run's cause.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCause {
    /// The signal recorded for it.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub signal_id: i64,
    pub kind: CauseKind,
    /// As people read it.
    pub summary: String,
}

/// Which kind of trigger fired.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CauseKind {
    Files,
    Schedule,
    Signal,
}

/// The name of the signals a workflow's file trigger records (not a name a `wait_signal` step
/// can wait for: `:` is not allowed there).
pub fn files_signal_name(workflow_path: &str) -> String {
    format!("files:{workflow_path}")
}

/// The name of the signals a workflow's schedule records.
pub fn schedule_signal_name(workflow_path: &str) -> String {
    format!("schedule:{workflow_path}")
}

/// The longest summary kept: a line, not a list.
const MAX_SHOWN_PATHS: usize = 3;

/// `modify src/lib.rs`, `create a.txt, b.txt and 4 more`: changes in path order.
pub fn files_summary(changes: &[(String, FileEvent)]) -> String {
    let mut shown: Vec<String> = changes
        .iter()
        .take(MAX_SHOWN_PATHS)
        .map(|(path, event)| format!("{} {path}", event.as_str()))
        .collect();
    if changes.len() > MAX_SHOWN_PATHS {
        shown.push(format!("{} more", changes.len() - MAX_SHOWN_PATHS));
    }
    match shown.len() {
        0 => "files changed".to_string(),
        1 => shown.remove(0),
        _ => {
            let last = shown.pop().unwrap_or_default();
            format!("{} and {last}", shown.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_names_the_first_changes_and_counts_the_rest() {
        let change = |p: &str, e| (p.to_string(), e);
        assert_eq!(
            files_summary(&[change("src/lib.rs", FileEvent::Modify)]),
            "modify src/lib.rs"
        );
        let many: Vec<_> = (0..6)
            .map(|i| change(&format!("f{i}"), FileEvent::Create))
            .collect();
        assert_eq!(
            files_summary(&many),
            "create f0, create f1, create f2 and 3 more"
        );
    }
}
