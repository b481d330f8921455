//! Stepwise's engine: drives runs over the pure core, performs operations in a sandboxed
//! workspace and records them in the store.
//!
//! The core decides what should happen; this crate is where it happens. Its API is one
//! cheap, cloneable [`Engine`] handle: start and continue runs (each driven in a task of its
//! own, handing back a [`RunHandle`]), send them [`Command`]s from any process, follow them
//! through live feeds ([`Engine::subscribe_run`], [`Engine::subscribe_runs`],
//! [`Engine::subscribe_approvals`]) and read them ([`Engine::list_runs`], [`Engine::load_run`],
//! [`Engine::approvals`]). Everything else (executors, sandbox, store access) is private.
//!
//! It must never let a path leave the workspace (`..`, absolute paths and symlinks pointing
//! outside are refused, and file IO goes through capability handles that cannot escape even if
//! a link is swapped in later), never run a command without that command's whole process group
//! being killed on timeout or cancellation, so that nothing keeps running unseen, and never
//! block an async worker on SQLite. It knows nothing of any user interface: the CLI and the
//! desktop app are both clients of [`Engine`].

mod adopt;
mod clock;
mod commands;
mod config_file;
mod db;
mod driver;
mod engine;
mod error;
mod exec;
mod feeds;
mod file_watch;
mod inbox;
mod llm;
mod lock;
mod policy_files;
mod progress;
mod queries;
mod record;
mod sandbox;
mod settings;
mod standby;
mod start;
mod workflow_file;

pub use commands::{Command, Refusal, RefusalKind};
pub use engine::{Engine, EngineConfig, EngineStats, RunHandle, current_user};
pub use error::EngineError;
pub use exec::start_command_launcher;
pub use feeds::{ApprovalChange, ApprovalChanges, RecordedEvent, RunChanges, RunEvents};
pub use inbox::Applied;
pub use progress::ProgressTail;
pub use queries::{Approval, LoadedRun, RunSummary, recorded_workflow};
pub use sandbox::SandboxError;
pub use start::StartRun;
pub use stepwise_store::{Durability, RunRow, StoreError, StoredEvent};
pub use workflow_file::read as read_workflow_file;
