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

/// What went wrong, in the engine's terms. Each client adds its own hints (the CLI its flags,
/// the app its buttons).
#[derive(Debug, Error)]
pub enum EngineError {
    /// No run has this id (or id prefix).
    #[error("run `{given}` not found")]
    RunNotFound {
        /// The id or prefix given.
        given: String,
    },
    /// An id prefix matched several runs (some of them listed).
    #[error("run prefix `{prefix}` is ambiguous: it matches {}", joined(.matches))]
    AmbiguousRun {
        /// The prefix given.
        prefix: String,
        /// Runs it matches.
        matches: Vec<RunId>,
    },
    /// The database could not be read or written, or is not one this engine can use.
    #[error(transparent)]
    Database(DatabaseError),
    /// A workflow file is not valid: every error found, each with its place.
    #[error("{0}")]
    Workflow(WorkflowErrors),
    /// A file or directory the engine uses could not be read or written.
    #[error("{}: {}", path.display(), io_reason(source))]
    Io {
        /// What it is (a path, or what the engine was doing).
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A workflow input is missing, unknown or of the wrong type.
    #[error(transparent)]
    Input(#[from] InputError),
    /// A policy file is not valid.
    #[error("policy file {path}: {message}")]
    Policy {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        message: String,
    },
    /// The model settings are missing something a workflow needs, or are broken; or the
    /// engine's configuration cannot be made (a variable it cannot mean).
    #[error("{message}")]
    Settings {
        /// What is wrong, naming the file, variable or model.
        message: String,
    },
    /// No database was named and this user has no home directory to keep one in.
    #[error("there is no home directory to keep the database in, and none was named")]
    NoDatabasePlace,
    /// The workspace cannot be used (missing, not a directory, a path leaving it).
    #[error("workspace: {0}")]
    Workspace(#[from] SandboxError),
    /// Another process drives the run.
    #[error(
        "run `{run_id}` is being driven by another stepwise process ({holder}); send it commands instead (approve, pause, cancel, …)"
    )]
    RunLocked {
        /// The run.
        run_id: RunId,
        /// Who holds it (`pid 4242`).
        holder: String,
    },
    /// This process lost its hold of the run on the PostgreSQL server (the connection that
    /// held it ended): it stopped driving the run, which goes to whoever takes it next.
    #[error(
        "lost the hold of run `{run_id}` on the database server (its connection ended); this process stopped driving it, and the next holder goes on"
    )]
    HoldLost {
        /// The run.
        run_id: RunId,
    },
    /// The database server did not answer for as long as a driver waits for it: the driver
    /// stopped, recording nothing; the run goes on with whoever drives it once it is back.
    #[error(
        "the database server has not answered for {minutes} minutes: stopped driving run `{run_id}`, which goes on once a process drives it again (last: {last})"
    )]
    ServerGone {
        /// The run.
        run_id: RunId,
        /// How long the driver waited.
        minutes: u64,
        /// The last failure, in words.
        last: String,
    },
    /// The run was started on another machine, where its workspace is: only a process there
    /// drives it.
    #[error(
        "run `{run_id}` belongs to machine `{host}`, where its workspace is, and this is `{here}`: a process there drives it; from here it can be followed, approved, rejected, paused or cancelled (what is sent waits in its inbox until a process on `{host}` drives it)"
    )]
    DrivenElsewhere {
        /// The run.
        run_id: RunId,
        /// The machine it was started on.
        host: String,
        /// This machine.
        here: String,
    },
    /// The process holding the run refused a command: it does not fit the run as it is.
    #[error("{0}")]
    Refused(Refusal),
    /// A command named a step the run does not have.
    #[error("run `{run_id}` has no step `{step}`")]
    UnknownStep {
        /// The run.
        run_id: RunId,
        /// The step named.
        step: StepId,
    },
    /// A command does not fit the step as it is.
    #[error("step `{step}` is {status}, not {expected}")]
    WrongStepState {
        /// The step.
        step: StepId,
        /// Its status now.
        status: String,
        /// The status the command needs.
        expected: &'static str,
    },
    /// A command was sent to a run that has ended.
    #[error("run `{run_id}` has already {status}")]
    RunFinished {
        /// The run.
        run_id: RunId,
        /// How it ended.
        status: String,
    },
    /// A rejection without a reason.
    #[error(
        "rejecting step `{step}` needs a reason, so that the run and the people after you know why"
    )]
    MissingReason {
        /// The step.
        step: StepId,
    },
    /// The step waits on another proposal than the one the person saw.
    #[error(
        "step `{step}` now waits on proposal {current}, not on {expected}: look at the new one first"
    )]
    ProposalChanged {
        /// The step.
        step: StepId,
        /// The proposal hash the person saw.
        expected: String,
        /// The one the step waits on now.
        current: String,
    },
    /// A breakpoint (`--break`) names a step the workflow does not have.
    #[error("a breakpoint names step `{step}`, which workflow `{workflow}` does not have")]
    UnknownBreakpoint {
        /// The step named.
        step: StepId,
        /// The workflow's name.
        workflow: String,
    },
    /// A run cannot be forked as asked, and why.
    #[error("cannot fork: {0}")]
    Fork(String),
    /// A rewind cannot be proposed or done as asked, and why.
    #[error("cannot rewind: {0}")]
    Rewind(String),
    /// A signal cannot be sent as asked, and why.
    #[error("cannot send the signal: {0}")]
    Signal(String),
    /// A watcher could not start (a workspace that is not there, no file watch).
    #[error("{0}")]
    Watch(String),
    /// A proposal hash (or prefix) that cannot name one proposal.
    #[error(
        "proposal hash `{given}` does not name one proposal: it takes at least 8 hex digits of one (e.g. sha256:1a2b3c4d)"
    )]
    InvalidProposalHash {
        /// What was given.
        given: String,
    },
    /// An approval's edit of a proposal cannot be used, and why.
    #[error("the edited proposal cannot be used: {0}")]
    InvalidEdit(String),
    /// An event of a run's log cannot be read.
    #[error("run `{run_id}`, event {seq}: {source}")]
    Decode {
        /// The run.
        run_id: RunId,
        /// The event.
        seq: EventSeq,
        /// What is wrong with it.
        #[source]
        source: EventDecodeError,
    },
    /// A run's state refused an event (its log is not one the core can fold).
    #[error("run `{run_id}`: {source}")]
    State {
        /// The run.
        run_id: RunId,
        /// Why.
        #[source]
        source: StateError,
    },
    /// A file or directory the engine keeps for itself beside the database (the locks) is not
    /// safe to use: a link, another user's, writable by others.
    #[error("{what} `{}` {problem}", path.display())]
    UnsafeFile {
        /// What the file is for.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A run's log, or the workflow it recorded, cannot be read (the database is damaged, or
    /// an event or the workflow is not what this stepwise can read).
    #[error("run `{run_id}` cannot be read: {cause}")]
    UnreadableRun {
        /// The run.
        run_id: RunId,
        /// Why.
        cause: Box<EngineError>,
    },
    /// The engine's database writer stopped unexpectedly.
    #[error("the database writer has stopped; see the errors logged before this one")]
    WriterStopped,
    /// The engine was shut down (its last handle dropped, or `Engine::shutdown`).
    #[error("the engine has shut down")]
    ShutDown,
    /// A defect of the engine's own.
    #[error("internal error: {0}")]
    Internal(String),
}

/// A failure of the database, in words that name the file where SQLite's do.
#[derive(Debug, Error)]
#[error(transparent)]
pub struct DatabaseError(pub(crate) StoreError);

impl DatabaseError {
    /// The database may not be written by this user (it was opened for reading).
    pub fn is_read_only(&self) -> bool {
        matches!(self.0, StoreError::ReadOnly { .. })
    }

    /// A trigger's firing had already started a run of the workflow: another watcher's start.
    pub fn is_cause_started(&self) -> bool {
        matches!(self.0, StoreError::CauseStarted { .. })
    }

    /// The database was busy: another process held its lock longer than the wait allows.
    pub fn is_busy(&self) -> bool {
        self.0.is_busy()
    }

    /// The database server went away or could not be reached (PostgreSQL only).
    pub fn is_server_gone(&self) -> bool {
        self.0.is_server_gone()
    }
}

#[doc(hidden)]
impl From<StoreError> for EngineError {
    fn from(error: StoreError) -> EngineError {
        match error {
            StoreError::RunNotFound(given) => EngineError::RunNotFound { given },
            StoreError::AmbiguousRun { prefix, matches } => {
                EngineError::AmbiguousRun { prefix, matches }
            }
            other => EngineError::Database(DatabaseError(other)),
        }
    }
}

/// Run ids as a list in a sentence.
fn joined(ids: &[RunId]) -> String {
    ids.iter().map(RunId::as_str).collect::<Vec<_>>().join(", ")
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
                | EngineError::NoDatabasePlace
                | EngineError::Workspace(_)
                | EngineError::UnknownStep { .. }
                | EngineError::WrongStepState { .. }
                | EngineError::RunFinished { .. }
                | EngineError::InvalidEdit(_)
                | EngineError::MissingReason { .. }
                | EngineError::ProposalChanged { .. }
                | EngineError::InvalidProposalHash { .. }
                | EngineError::Rewind(_)
                | EngineError::Signal(_)
                | EngineError::Watch(_)
                | EngineError::Fork(_)
                | EngineError::UnknownBreakpoint { .. }
                | EngineError::Refused(_)
                | EngineError::RunNotFound { .. }
                | EngineError::AmbiguousRun { .. }
        )
    }
}
