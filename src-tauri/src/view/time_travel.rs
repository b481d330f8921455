//! Time travel as the window shows it: a rewind's proposal (a multi-file diff, conflicts to
//! include or leave), what a fork did, and two runs compared step by step.

use serde::Serialize;
use stepwise_core::ids::{RunId, StepId};
use stepwise_core::run::{Comparison, Verdict};
use stepwise_engine::{RestoreAction, RewindProposal};
use ts_rs::TS;

/// What rewinding a run to a step's start would put back.
#[derive(Debug, Clone, Serialize, TS)]
pub struct RewindView {
    pub run_id: RunId,
    pub to: StepId,
    /// Approving it names this hash.
    pub proposal_hash: String,
    pub files: Vec<RestoreView>,
}

/// One file of a rewind.
#[derive(Debug, Clone, Serialize, TS)]
pub struct RestoreView {
    pub path: String,
    /// `restore`, `delete` or `recreate`.
    pub action: String,
    /// Put back by this proposal (a conflict only when included).
    pub included: bool,
    /// Changed since by something other than the run.
    pub conflict: bool,
    /// Why it cannot be put back.
    pub problem: Option<String>,
    /// From what it holds now to what it goes back to, when both are text.
    pub diff: Option<String>,
}

impl From<RewindProposal> for RewindView {
    fn from(proposal: RewindProposal) -> RewindView {
        RewindView {
            run_id: proposal.run_id,
            to: proposal.to,
            proposal_hash: proposal.proposal_hash,
            files: proposal
                .files
                .into_iter()
                .map(|file| RestoreView {
                    path: file.restore.path,
                    action: match file.action {
                        RestoreAction::Restore => "restore",
                        RestoreAction::Delete => "delete",
                        RestoreAction::Recreate => "recreate",
                    }
                    .to_string(),
                    included: file.included,
                    conflict: file.restore.conflict,
                    problem: file.problem,
                    diff: file.diff,
                })
                .collect(),
        }
    }
}

/// What asking for a fork did: started the new run, or showed what must be put back first.
#[derive(Debug, Clone, Serialize, TS)]
pub struct ForkResult {
    pub run_id: Option<RunId>,
    pub restore: Option<RewindView>,
}

/// Two runs compared: what differs in the runs themselves, then step by step, aligned.
#[derive(Debug, Clone, Serialize, TS)]
pub struct ComparisonView {
    pub first: RunId,
    pub second: RunId,
    pub same: bool,
    /// The first difference, in words (`None`: they recorded the same).
    pub first_difference: Option<String>,
    /// Differences of the runs themselves (workflow, inputs).
    pub run: Vec<String>,
    pub steps: Vec<StepCompared>,
}

/// One step of both runs.
#[derive(Debug, Clone, Serialize, TS)]
pub struct StepCompared {
    pub step: StepId,
    /// `same`, `differs`, `only_first` or `only_second`.
    pub verdict: String,
    /// What differs first in it, in words.
    pub difference: Option<String>,
}

impl ComparisonView {
    /// The comparison of `first` and `second`, in words.
    pub fn new(first: RunId, second: RunId, comparison: &Comparison) -> ComparisonView {
        let said = |d: &stepwise_core::run::Difference| {
            let field = d
                .field
                .as_deref()
                .map(|f| format!(" ({f})"))
                .unwrap_or_default();
            format!("{}{field}: {} ≠ {}", d.what, d.first, d.second)
        };
        ComparisonView {
            first,
            second,
            same: comparison.is_same(),
            first_difference: comparison.first.as_ref().map(|d| match &d.step {
                Some(step) => format!("step `{step}`: {}", said(d)),
                None => said(d),
            }),
            run: comparison.run.iter().map(said).collect(),
            steps: comparison
                .steps
                .iter()
                .map(|s| StepCompared {
                    step: s.step.clone(),
                    verdict: match s.verdict {
                        Verdict::Same => "same",
                        Verdict::Differs => "differs",
                        Verdict::OnlyInFirst => "only_first",
                        Verdict::OnlyInSecond => "only_second",
                    }
                    .to_string(),
                    difference: s.difference.as_ref().map(said),
                })
                .collect(),
        }
    }
}
