//! A run as a deterministic state machine: the state folded from events (`state`), the
//! decisions it takes (`decide`), the requests and proposals it renders (`proposal`), and
//! replay of a recorded log (`replay`), and how long each step waited and ran (`timing`).

mod agent_context;
mod agent_step;
mod agent_turn;
mod apply;
mod ask_reason;
mod compare;
mod compensate;
mod conversation;
mod cost;
mod custom_step;
mod decide;
mod hunks;
mod iterations;
mod llm_step;
mod plan_step;
mod proposal;
mod replay;
mod returned;
mod rewind;
mod rounds;
mod state;
mod status;
mod step;
mod subrun;
mod timing;
mod workspace_changes;

pub use compare::{Comparison, Difference, StepComparison, Verdict, compare_runs};
pub use conversation::{CallGate, ConversationCall, ConversationTurn};
pub use cost::{CostLine, CostReport, CostTally, cost_report, utc_day};
pub use hunks::{Hunk, HunkOutcome, apply_hunks, edit_hunks, hunk_list, review_hunks};
pub use proposal::{EditedProposal, edited_proposal, unified_diff};
pub use replay::{Divergence, ReplayError, ReplayReport, replay};
pub use rewind::{RecordedRewind, RewindTarget, recorded_rewinds, rewind_hash, rewind_targets};
pub use state::{PendingApproval, RunState, RunStatus, StateError, StepState, StepStatus};
pub use timing::{Segment, SegmentKind, StepTiming, Timings, step_timings};
pub use workspace_changes::workspace_changes;

#[cfg(test)]
mod agent_gate_tests;
#[cfg(test)]
mod agent_mcp_tests;
#[cfg(test)]
mod agent_tests;
#[cfg(test)]
mod tests;
