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

#![warn(missing_docs)]

mod adopt;
mod alert_feed;
mod checkpoint;
mod clock;
mod commands;
mod config;
mod config_file;
pub mod connection_settings;
mod context;
mod db;
pub mod db_copy;
mod driver;
mod drivers;
mod engine;
mod error;
mod exec;
mod executors;
mod export;
mod failures;
mod feeds;
mod file_changes;
mod file_watch;
mod fork;
mod inbox;
mod lifetime;
mod live;
mod llm;
mod loading;
mod lock;
mod locks_dir_watch;
mod machines;
mod mcp;
mod memory;
mod messages;
mod policy_files;
mod progress;
mod queries;
mod record;
mod replay;
mod rewind;
mod run_feed;
mod sandbox;
mod service_settings;
mod settings;
mod signals;
mod standby;
mod start;
mod step_types;
mod subrun;
mod telemetry;
mod test_hooks;
mod verify;
mod watch;
mod workflow_file;

pub use alert_feed::{AlertFeed, RaisedAlert};
pub use commands::{Applied, Command, Refusal, RefusalKind};
pub use config::{
    Durability, ENV_API_PORT, ENV_DB, ENV_HOST, ENV_SETTINGS, ENV_SYNC, ENV_USER, ENV_USER_POLICY,
    EngineConfig, Named, SharedDatabase, current_host, current_user,
};
pub use drivers::RunHandle;
pub use engine::{Engine, EngineStats};
pub use error::{DatabaseError, EngineError};
pub use exec::start_command_launcher;
pub use export::{CommandEntry, Decision, ModelCall, RunExport, TimelineEntry};
pub use failures::DriverFailure;
pub use feeds::{ApprovalChange, ApprovalChanges, RecordedEvent, RunChanges, RunEvents};
pub use file_changes::{OperationChanges, ShownChange};
pub use fork::{ForkRun, Forked};
pub use loading::{LoadedRun, recorded_workflow};
pub use queries::{
    Approval, AskedApproval, Inbox, LogPage, LoggedEvent, RunSummary, RunsPage, RunsQuery,
};
pub use replay::{ReplayAgainst, Replayed};
pub use rewind::{ProposedRestore, RestoreAction, RewindDone, RewindProposal};
pub use run_feed::{RunFeed, RunUpdate};
pub use sandbox::SandboxError;
pub use service_settings::{ApiSettings, DEFAULT_API_PORT, DatabaseSettings, TelemetrySettings};
pub use signals::{SendSignal, SignalSent};
pub use start::StartRun;
pub use step_types::{WORKSPACE_STEPS_DIR, load_step_types, user_steps_dir};
pub use stepwise_core::records::{RunRow, StoredEvent};
pub use stepwise_store::{MemoryEntry, MemorySummary, Verified};
pub use subrun::{CHILD_TRIGGER, child_run_id, child_runs};
#[doc(hidden)]
pub use test_hooks::TestHooks;
pub use watch::{WatchEvent, WatchOptions, WatchedWorkflow, Watcher};
pub use workflow_file::{check as check_workflow_file, read as read_workflow_file, workflow_files};
