//! What wakes a driver: its operations' outcomes, its timers, commands (from this process or,
//! through the inbox, from any other), changes to the files of its pending edits, and the
//! engine stopping.

use stepwise_core::ids::{EventSeq, StepId};
use stepwise_core::operation::{OperationError, OperationResult};
use tokio::sync::oneshot;

use crate::commands::{Applied, Command};
use crate::error::EngineError;

/// What wakes a driver.
pub(crate) enum Message {
    OperationDone {
        op: EventSeq,
        outcome: Result<OperationResult, OperationError>,
    },
    RetryDue {
        step: StepId,
        attempt: u32,
    },
    /// The run's (`None`) or a step's alert threshold has passed.
    AlertDue {
        step: Option<StepId>,
    },
    /// Commands may have arrived in the run's inbox.
    InboxChanged,
    /// A file that a pending edit targets may have changed; look once things settle.
    FilesChanged,
    /// Files settled: check the pending edits against them.
    CheckEdits,
    /// The database file was replaced: stop at once, recording nothing.
    DatabaseReplaced,
    /// The run's hold on the PostgreSQL server was lost (its connection ended): another
    /// process may drive the run now, so stop at once, recording nothing.
    #[cfg_attr(
        not(feature = "postgres"),
        expect(dead_code, reason = "PostgreSQL only")
    )]
    HoldLost,
    /// The engine shuts down: let go of the run, recording nothing (the next holder recovers
    /// what this driver leaves unanswered).
    Shutdown,
    /// Let go of the run if no operation is under way (`true` is replied, and the driver
    /// stops as for `Shutdown`); otherwise go on (`false`). A rewind asks it.
    LetGoIfIdle {
        reply: oneshot::Sender<bool>,
    },
    /// Let go of the run if what is under way is only child runs being waited for (`true`
    /// is replied, and the driver stops as for `Shutdown`: the waits are taken up again by
    /// the next holder); otherwise go on (`false`). A CLI whose family waits for a person
    /// asks it before it exits.
    LetGoIfOnlyChildrenRun {
        reply: oneshot::Sender<bool>,
    },
    /// A command handed over by this process (`Engine::send`), recorded as it is applied.
    Command {
        command: Command,
        issued_by: String,
        reply: oneshot::Sender<Result<Applied, EngineError>>,
    },
}
