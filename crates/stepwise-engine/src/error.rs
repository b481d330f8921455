//! Everything that can go wrong when the engine is asked to do something.

use std::path::PathBuf;

use stepwise_core::event::EventDecodeError;
use stepwise_core::ids::{EventSeq, RunId, StepId};
use stepwise_core::run::StateError;
use stepwise_core::workflow::{InputError, WorkflowErrors};
use stepwise_store::StoreError;
use thiserror::Error;

use crate::commands::Refusal;
use crate::sandbox::SandboxError;

#[derive(Debug, Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Workflow(WorkflowErrors),
    #[error("{}: {}", path.display(), io_reason(source))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("policy file {path}: {message}")]
    Policy { path: PathBuf, message: String },
    /// The model settings are missing something a workflow needs, or are broken.
    #[error("{message}")]
    Settings { message: String },
    #[error("workspace: {0}")]
    Workspace(#[from] SandboxError),
    #[error(
        "run `{run_id}` is being driven by another stepwise process ({holder}); send it commands instead (approve, pause, cancel, …)"
    )]
    RunLocked { run_id: RunId, holder: String },
    /// The process holding the run refused a command: it does not fit the run as it is.
    #[error("{0}")]
    Refused(Refusal),
    #[error("run `{run_id}` has no step `{step}`")]
    UnknownStep { run_id: RunId, step: StepId },
    #[error("step `{step}` is {status}, not {expected}")]
    WrongStepState {
        step: StepId,
        status: String,
        expected: &'static str,
    },
    #[error("run `{run_id}` has already {status}")]
    RunFinished { run_id: RunId, status: String },
    #[error(
        "rejecting step `{step}` needs a reason, so that the run and the people after you know why"
    )]
    MissingReason { step: StepId },
    #[error(
        "step `{step}` now waits on proposal {current}, not on {expected}: look at the new one first"
    )]
    ProposalChanged {
        step: StepId,
        expected: String,
        current: String,
    },
    #[error(
        "proposal hash `{given}` does not name one proposal: it takes at least 8 hex digits of one (e.g. sha256:1a2b3c4d)"
    )]
    InvalidProposalHash { given: String },
    #[error("the edited proposal cannot be used: {0}")]
    InvalidEdit(String),
    #[error("run `{run_id}`, event {seq}: {source}")]
    Decode {
        run_id: RunId,
        seq: EventSeq,
        #[source]
        source: EventDecodeError,
    },
    #[error("run `{run_id}`: {source}")]
    State {
        run_id: RunId,
        #[source]
        source: StateError,
    },
    /// A file or directory the engine keeps for itself beside the database (the locks) is not
    /// safe to use: a link, another user's, writable by others.
    #[error("{what} `{}` {problem}", path.display())]
    UnsafeFile {
        what: &'static str,
        path: PathBuf,
        problem: String,
    },
    /// A run's log, or the workflow it recorded, cannot be read (the database is damaged, or
    /// an event or the workflow is not what this stepwise can read).
    #[error("run `{run_id}` cannot be read: {cause}")]
    UnreadableRun {
        run_id: RunId,
        cause: Box<EngineError>,
    },
    #[error("the database writer has stopped; see the errors logged before this one")]
    WriterStopped,
    /// The engine was shut down (its last handle dropped, or `Engine::shutdown`).
    #[error("the engine has shut down")]
    ShutDown,
    #[error("internal error: {0}")]
    Internal(String),
}

/// A size limit in words: `4 MiB`, or `1000 bytes` when it is not a whole number of MiB.
pub(crate) fn bytes_in_words(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// An OS error in words, without the `(os error N)` that only a programmer needs.
pub fn io_reason(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(pos) if text.ends_with(')') => text[..pos].to_string(),
        _ => text,
    }
}

impl EngineError {
    /// Whether the error is about what the caller asked (bad file, input, step or state) rather
    /// than about the machine; the CLI exits 2 for these.
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            EngineError::Workflow(_)
                | EngineError::Input(_)
                | EngineError::Policy { .. }
                | EngineError::Settings { .. }
                | EngineError::Workspace(_)
                | EngineError::UnknownStep { .. }
                | EngineError::WrongStepState { .. }
                | EngineError::RunFinished { .. }
                | EngineError::InvalidEdit(_)
                | EngineError::MissingReason { .. }
                | EngineError::ProposalChanged { .. }
                | EngineError::InvalidProposalHash { .. }
                | EngineError::Refused(_)
                | EngineError::Store(StoreError::RunNotFound(_))
                | EngineError::Store(StoreError::AmbiguousRun { .. })
        )
    }
}
