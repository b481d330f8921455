//! Exit codes, as scripts rely on them: 0 succeeded, 1 failed, 2 invalid input, 3 waiting for a
//! person.

use std::process::ExitCode;

use stepwise_core::run::RunStatus;
use stepwise_engine::EngineError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success,
    Failure,
    InvalidInput,
    Waiting,
}

impl Exit {
    pub fn code(self) -> ExitCode {
        ExitCode::from(match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::InvalidInput => 2,
            Exit::Waiting => 3,
        })
    }

    pub fn for_status(status: RunStatus) -> Exit {
        match status {
            RunStatus::Succeeded => Exit::Success,
            RunStatus::Failed | RunStatus::Cancelled => Exit::Failure,
            RunStatus::AwaitingApproval | RunStatus::Paused => Exit::Waiting,
            // A run still running here is driven by another process (this one stopped
            // following it), or nobody drives it any more: either way it waits for someone.
            RunStatus::Running => Exit::Waiting,
        }
    }
}

/// The exit code for an error: 2 when the caller asked for something invalid; 3 for a run of
/// another machine, which waits for a process there (what was sent waits in its inbox).
pub fn classify(error: &anyhow::Error) -> Exit {
    match error.downcast_ref::<EngineError>() {
        Some(EngineError::DrivenElsewhere { .. }) => Exit::Waiting,
        Some(e) if e.is_invalid_input() => Exit::InvalidInput,
        _ if error.downcast_ref::<InvalidInput>().is_some() => Exit::InvalidInput,
        _ => Exit::Failure,
    }
}

/// An error and its causes on one line, each cause once: a cause whose words the message
/// already holds (`path: No such file or directory`) is not repeated.
pub fn describe(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        let words = strip_os_error(strip_error_code(&cause));
        if !text.to_lowercase().contains(&words.to_lowercase()) {
            text.push_str(": ");
            text.push_str(words);
        }
    }
    text
}

/// `Error code 8: Attempt to write…` (SQLite's own wording) without the code.
fn strip_error_code(text: &str) -> &str {
    match text
        .strip_prefix("Error code ")
        .and_then(|rest| rest.split_once(": "))
    {
        Some((code, words)) if code.chars().all(|c| c.is_ascii_digit()) => words,
        _ => text,
    }
}

/// `No such file or directory (os error 2)` without the part only a programmer needs.
fn strip_os_error(text: &str) -> &str {
    match text.rfind(" (os error ") {
        Some(pos) if text.ends_with(')') => &text[..pos],
        _ => text,
    }
}

/// An error in what the user typed, found by the CLI itself.
#[derive(Debug)]
pub struct InvalidInput(pub String);

impl std::fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidInput {}
