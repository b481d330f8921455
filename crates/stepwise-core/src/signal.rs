//! Signals: what a signal's name may be, and the bounds of what one carries. A signal is
//! recorded by the store (immutable, once per name and idempotency key) and taken by a
//! `wait_signal` step, whose output is its payload.

/// The longest name a signal may have.
pub const MAX_NAME_BYTES: usize = 128;

/// The largest payload a signal may carry, as JSON (it becomes a step's output, in the log).
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

/// The longest idempotency key.
pub const MAX_KEY_BYTES: usize = 512;

/// Whether `c` may be in a signal's name.
pub fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/')
}

/// Why `name` cannot be a signal's name, if it cannot.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES || !name.chars().all(is_name_char) {
        return Err(format!(
            "`{name}` is not a signal's name: letters, digits, `_`, `-`, `.` and `/`, at most {MAX_NAME_BYTES} bytes"
        ));
    }
    Ok(())
}
