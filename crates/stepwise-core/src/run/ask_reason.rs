//! Why a person is asked about a proposal, in the words shown with it: the same for a step's
//! proposal and an agent's call.

use crate::policy::{GateKind, Verdict};

/// Why a person is asked: the workflow requires it, the edit changes policy, or the policy
/// says so (the rule that asks, or the default, and why an allow rule did not vouch when one
/// almost did).
pub(super) fn ask_reason(
    approval_required: bool,
    edits_policy: bool,
    verdict: Verdict,
    kind: GateKind,
) -> String {
    if approval_required {
        return "the workflow requires approval for this step".to_string();
    }
    if edits_policy {
        return "edits under .stepwise/ change policy and always need approval".to_string();
    }
    match (verdict.note, verdict.rule) {
        (Some(note), Some(rule)) => format!("{rule}; {note}"),
        (Some(note), None) => note,
        (None, Some(rule)) => rule,
        (None, None) => format!("{} needs approval by default", kind.as_str()),
    }
}
