//! Stepwise's engine: drives runs over the pure core, performs operations in a sandboxed
//! workspace and records them in the store.
//!
//! The core decides what should happen; this crate is where it happens. It must never let a
//! path leave the workspace (`..`, absolute paths and symlinks pointing outside are refused, and
//! file IO goes through capability handles that cannot escape even if a link is swapped in
//! later), and it must never run a command without that command's whole process group being
//! killed on timeout or cancellation, so that nothing keeps running unseen. It knows nothing
//! of any user interface: the CLI and the desktop app are both clients of [`Engine`].

pub mod clock;
mod commands;
mod driver;
mod engine;
mod error;
pub mod exec;
mod lock;
pub mod policy_files;
pub mod record;
pub mod sandbox;

pub use engine::{
    Command, DriveOptions, Engine, EngineConfig, LoadedRun, NoObserver, Observer, StartRun,
    current_user, recorded_workflow,
};
pub use error::EngineError;
pub use lock::RunLock;
