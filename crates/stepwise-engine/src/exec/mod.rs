//! Operation executors: they perform what an `OperationRequest` asks, inside a [`Workspace`],
//! and turn the outcome into the `OperationResult` or `OperationError` that gets recorded.
//!
//! Each operation kind has one [`Executor`], the one place that knows how to perform it and
//! what to do when a crash left it unanswered. The engine's table of them (`executors.rs`)
//! is all the driver asks.
//!
//! [`Workspace`]: crate::sandbox::Workspace

mod command;
pub(crate) mod file;
pub(crate) mod gitignore;
pub(crate) mod kinds;
mod list;
mod output;
mod recorded;
mod search;
mod supervisor;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use stepwise_core::ids::{EventSeq, RunId, StepId};
use stepwise_core::operation::{OperationError, OperationRequest, OperationResult};
use tokio::sync::watch;

use crate::sandbox::Workspace;

pub(crate) use command::{run_command_live, start_server};
pub use file::{
    WriteRecovery, current_hash, read_file, read_small_file, recover_write, write_file,
};
pub use list::list_files;
pub(crate) use output::Live;
pub(crate) use recorded::{Commit, Recorded};
pub use search::search_files;
pub use supervisor::start_launcher as start_command_launcher;
pub(crate) use supervisor::{Supervised, discard_idle_supervisors};

/// A future an executor returns, run on a task of its own.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What an operation ended with.
pub(crate) type Outcome = Result<OperationResult, OperationError>;

/// Everything an executor may need to perform one operation of a run.
#[derive(Clone)]
pub(crate) struct OpContext {
    pub(crate) workspace: Arc<Workspace>,
    pub(crate) run_id: RunId,
    /// The seq of the operation's `OperationStarted`.
    pub(crate) op: EventSeq,
    pub(crate) step: StepId,
    /// Where the run's lock and progress files live.
    pub(crate) lock_dir: PathBuf,
    /// The file each of the run's command supervisors holds while its command's tree lives.
    pub(crate) commands_lock: Arc<crate::lock::CommandsLock>,
    /// Becomes `true` when the operation must stop (the run is cancelled, or the driver let
    /// go); dropping the sender means the same.
    pub(crate) cancel: watch::Receiver<bool>,
    /// Performed again because a crash left it unanswered.
    pub(crate) recovering: bool,
    /// Whether its request is recorded yet: an executor that prepares early (see
    /// [`Executor::prepares_early`]) waits for it before anything another process can see.
    pub(crate) recorded: Recorded,
    /// Takes the run's workspace checkpoints; `None` when the run's settings for them could
    /// not be used (then operations record no changes).
    pub(crate) checkpoint: Option<crate::checkpoint::Checkpointer>,
    /// The engine's internals, for an operation that starts and waits for a run of its own
    /// (a child run): weak, so that an operation never keeps a shut-down engine alive.
    pub(crate) engine: std::sync::Weak<crate::context::Context>,
}

/// What to do, after a crash, with an operation that was dispatched and never answered.
pub(crate) enum AfterCrash {
    /// It has no effect on the world (or none that repeating could double): perform it again.
    Repeat,
    /// Look at the world to find out whether it happened (`Executor::recover`).
    Check,
    /// Nobody can know whether it did its work: a person decides (`resolve`). Recorded before
    /// anything else is recovered.
    AskPerson,
}

/// What looking at the world found out about an unanswered operation.
pub(crate) enum Recovery {
    /// It did not happen: perform it.
    Repeat,
    /// It happened, or cannot happen any more: this is its outcome.
    Answered(Outcome),
    /// Its outcome cannot be known.
    Unknown,
}

/// One operation kind: how to perform it and how to recover it.
pub(crate) trait Executor: Send + Sync {
    /// Performs the operation. The future runs on a task of its own; blocking work inside it
    /// belongs on a blocking thread.
    fn perform(&self, ctx: OpContext, request: OperationRequest) -> BoxFuture<'static, Outcome>;

    /// Whether `perform` may be called while the request is being committed, so that it
    /// prepares what touches nothing outside the engine meanwhile. It then waits for
    /// `OpContext::recorded` before anything else, and does nothing more if that says the
    /// commit failed. Other executors are called once the request is recorded.
    fn prepares_early(&self) -> bool {
        false
    }

    /// How the operation is recovered after a crash.
    fn after_crash(&self) -> AfterCrash;

    /// For `Check` and `AskPerson`: finds out what became of it (for `AskPerson`, waits until
    /// nothing of it can still be running).
    fn recover(&self, _ctx: OpContext, _request: OperationRequest) -> BoxFuture<'static, Recovery> {
        Box::pin(async { Recovery::Repeat })
    }
}
