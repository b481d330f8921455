//! `alert:` on a workflow or a step: a person is told (a desktop notification, and an
//! `AlertRaised` event in the run's log) once the run, or the step, has been going for longer
//! than `slower_than`, wall-clock from its start (waits for a person included).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// When to tell a person that something takes too long.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertDef {
    /// How long is too long, e.g. `30s`, `5m`.
    pub slower_than: String,
}

/// `slower_than` in milliseconds, or why it cannot be one.
pub(super) fn slower_than_ms(def: &AlertDef) -> Result<u64, String> {
    match humantime::parse_duration(def.slower_than.trim()) {
        Ok(d) if d.is_zero() => Err("`alert.slower_than` must be more than 0".into()),
        Ok(d) => Ok(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        Err(e) => Err(format!(
            "`alert.slower_than`: `{}` is not a duration like `30s` or `2m` ({e})",
            def.slower_than
        )),
    }
}
