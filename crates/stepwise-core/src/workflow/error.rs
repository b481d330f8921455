//! Validation errors that say where: file, line, column and step.

use std::fmt;

use serde::Serialize;

/// One problem in a workflow file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidationError {
    pub file: String,
    /// 1-based; 0 when the problem is with the file as a whole.
    pub line: u32,
    pub column: u32,
    /// The step the problem is in, when it is in one.
    pub step: Option<String>,
    pub message: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Line 0: the problem is with the file as a whole (it cannot be read).
        if self.line == 0 {
            write!(f, "{}: ", self.file)?;
        } else {
            write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        }
        if let Some(step) = &self.step {
            write!(f, "step `{step}`: ")?;
        }
        write!(f, "{}", self.message)
    }
}

/// Every problem found in a workflow file, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkflowErrors(pub Vec<ValidationError>);

impl fmt::Display for WorkflowErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for WorkflowErrors {}

/// Finds where a step's field is written, by looking at the lines of the step for `field:`.
/// serde does not keep positions inside a step's type-specific fields, but the text does.
pub(super) fn field_position(
    source: &str,
    step_line: u32,
    next_step_line: Option<u32>,
    field: &str,
) -> Option<(u32, u32)> {
    let first = step_line.saturating_sub(1) as usize;
    let last = next_step_line.map_or(usize::MAX, |l| l.saturating_sub(1) as usize);
    source
        .lines()
        .enumerate()
        .skip(first)
        .take(last.saturating_sub(first))
        .find_map(|(i, line)| {
            let trimmed = line.trim_start();
            let trimmed = trimmed.strip_prefix("- ").map_or(trimmed, str::trim_start);
            let rest = trimmed.strip_prefix(field)?;
            rest.trim_start().starts_with(':').then(|| {
                let column = line.len() - trimmed.len() + 1;
                (i as u32 + 1, column as u32)
            })
        })
}
