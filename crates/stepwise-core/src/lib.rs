//! The pure core of Stepwise.
//!
//! It holds the workflow model and its validation, `${...}` templates, approval policy,
//! the event types and the deterministic run state machine that decides, from a workflow,
//! its inputs and the events so far, what happens next.
//!
//! It must never perform IO, read the clock or draw random numbers: everything that comes
//! from the world arrives as a recorded event. That is what makes replay exact.

pub mod agent_tools;
pub mod approvers;
pub mod cause;
pub mod checkpoint;
pub mod custom_step;
pub mod event;
pub mod hash;
pub mod ids;
pub mod json_depth;
pub mod llm;
pub mod operation;
pub mod paths;
pub mod policy;
pub mod records;
pub mod run;
pub mod signal;
pub mod subrun;
pub mod template;
pub mod workflow;
pub mod yaml;
