//! Stepwise's engine: drives runs over the pure core, performs operations in a sandboxed
//! workspace and records them in the store.
//!
//! The core decides what should happen; this crate is where it happens. It must never let a
//! path leave the workspace (`..`, absolute paths and symlinks pointing outside are refused, and
//! file IO goes through capability handles that cannot escape even if a link is swapped in
//! later), and it must never run a command without that command's whole process group being
//! killed on timeout or cancellation, so that nothing keeps running unseen.

pub mod exec;
pub mod sandbox;
