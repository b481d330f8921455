//! Reading a workflow file from disk: bounded in size, UTF-8, and every failure a
//! [`ValidationError`] that names the file (there is no line to point at).

use std::io::Read;
use std::path::Path;

use stepwise_core::workflow::ValidationError;

use crate::error::io_reason;

/// The largest workflow file Stepwise reads. Real workflows are a few KiB; this only keeps a
/// mistaken path (a log, a disk image) from being read into memory.
pub const MAX_WORKFLOW_BYTES: u64 = 16 * 1024 * 1024;

/// The text of a workflow file, or why it cannot be one.
pub fn read(path: &Path) -> Result<String, ValidationError> {
    let problem = |message: String| ValidationError {
        file: path.display().to_string(),
        line: 0,
        column: 0,
        step: None,
        message,
    };
    if path.is_dir() {
        return Err(problem("is a directory, not a workflow file".into()));
    }
    let file = std::fs::File::open(path)
        .map_err(|e| problem(format!("cannot be read: {}", io_reason(&e))))?;
    let mut bytes = Vec::new();
    file.take(MAX_WORKFLOW_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| problem(format!("cannot be read: {}", io_reason(&e))))?;
    if bytes.len() as u64 > MAX_WORKFLOW_BYTES {
        return Err(problem(format!(
            "is larger than {} MiB, the most a workflow file may be",
            MAX_WORKFLOW_BYTES / (1024 * 1024)
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        problem(format!(
            "is not UTF-8 text (the first invalid byte is at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })
}
