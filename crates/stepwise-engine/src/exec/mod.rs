//! Operation executors: they perform what an `OperationRequest` asks, inside a [`Workspace`],
//! and turn the outcome into the `OperationResult` or `OperationError` that gets recorded.
//!
//! [`Workspace`]: crate::sandbox::Workspace

mod command;
mod file;
mod output;
mod supervisor;

pub use command::run_command;
pub use file::{WriteRecovery, current_hash, is_larger_than, read_file, recover_write, write_file};
