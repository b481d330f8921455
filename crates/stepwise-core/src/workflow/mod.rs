//! Workflows: the file format (`def`), its checked and compiled form (this module), how a
//! file becomes one (`compile`), with errors that name file, line, column and step
//! (`error`), and the inputs a run is started with (`inputs`).

mod agent_fields;
pub mod alerts;
mod compensation;
mod compile;
mod custom_fields;
pub mod def;
mod error;
mod fields;
mod inputs;
mod iterations;
mod llm_fields;
mod outputs;
mod plan;
mod step_types;
pub mod triggers;

use std::collections::{BTreeMap, HashMap};

pub use super::custom_step::StepTypes;
pub use compile::{
    parse_recorded_workflow, parse_recorded_workflow_with, parse_workflow, parse_workflow_with,
};
pub use def::{AfterDef, InputDef, InputType, workflow_json_schema};
pub use error::{ValidationError, WorkflowErrors};
pub use inputs::InputError;
pub use plan::{PLANNABLE_TYPES, plan_schema, planned_workflow};
pub use step_types::{StepField, StepType, builtin_step_types, custom_step_types};

use crate::ids::StepId;
use crate::llm::{Budget, Role, Temperature};
use crate::policy::RuleSpec;
use crate::template::{Expr, Template, ValueTemplate};

/// Steps run at most this many at a time unless the workflow says otherwise.
pub const DEFAULT_MAX_PARALLEL: usize = 4;
/// Bytes of stdout and of stderr a command keeps unless the step says otherwise.
pub const DEFAULT_MAX_OUTPUT: u64 = 1024 * 1024;

/// The most of each output stream a command step may keep (`max_output`), whatever the
/// workflow asks: what is kept is recorded in the log. The rest is counted, not kept.
pub const MAX_OUTPUT_CEILING: u64 = 8 * 1024 * 1024;

/// A checked workflow, ready to run: every `needs` exists and is acyclic, every template
/// compiles and names only declared inputs and upstream steps.
#[derive(Debug)]
pub struct Workflow {
    pub name: String,
    pub description: Option<String>,
    /// `sha256:` of the file's bytes, recorded on every run.
    pub source_hash: String,
    pub inputs: BTreeMap<String, InputDef>,
    pub max_parallel: usize,
    /// The workflow's own (tightening) rules.
    pub policy_rules: Vec<RuleSpec>,
    /// Who may answer its runs' questions, as the workflow says.
    pub approvers: crate::approvers::Approvers,
    /// What a run may spend on models, as the workflow says.
    pub budget: Option<Budget>,
    /// Steps before which a run waits for a person to continue.
    pub breakpoints: Vec<StepId>,
    pub steps: Vec<Step>,
    /// What the workflow gives back to a workflow that runs it as a step (`None`: each
    /// step's output by id).
    pub outputs: Option<BTreeMap<String, ValueTemplate>>,
    /// What starts its runs without a person (`on:`).
    pub triggers: triggers::Triggers,
    /// `alert.slower_than` of the run, in milliseconds.
    pub alert_ms: Option<u64>,
    index: HashMap<StepId, usize>,
}

impl Workflow {
    /// This workflow with other steps (steps joined by a plan, or a loop's iterations), named
    /// by `index`.
    pub(crate) fn with_steps(&self, steps: Vec<Step>, index: HashMap<StepId, usize>) -> Workflow {
        Workflow {
            name: self.name.clone(),
            description: self.description.clone(),
            source_hash: self.source_hash.clone(),
            inputs: self.inputs.clone(),
            max_parallel: self.max_parallel,
            policy_rules: self.policy_rules.clone(),
            approvers: self.approvers.clone(),
            budget: self.budget,
            breakpoints: self.breakpoints.clone(),
            steps,
            outputs: self.outputs.clone(),
            triggers: self.triggers.clone(),
            alert_ms: self.alert_ms,
            index,
        }
    }

    /// The model aliases its steps name, each once.
    pub fn model_aliases(&self) -> std::collections::BTreeSet<&str> {
        self.steps
            .iter()
            .filter_map(|s| match &s.action {
                Action::Llm(llm) => Some(llm.model.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The workflow files its steps run as child runs (`type: workflow`), as written, each
    /// once.
    pub fn subworkflow_paths(&self) -> std::collections::BTreeSet<&str> {
        self.steps
            .iter()
            .filter_map(|s| match &s.action {
                Action::Workflow { path, .. } => Some(path.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The custom step types its steps use, each once.
    pub fn custom_step_types(&self) -> Vec<&crate::custom_step::StepManifest> {
        let mut used: Vec<&crate::custom_step::StepManifest> = Vec::new();
        for step in &self.steps {
            if let Action::Custom(custom) = &step.action
                && !used.iter().any(|m| m.name == custom.manifest.name)
            {
                used.push(&custom.manifest);
            }
        }
        used
    }

    /// The position of a step by id.
    /// Whether a breakpoint may name `id`: a step, or a step's compensation (which joins the
    /// run only when it undoes something).
    pub fn may_pause_before(&self, id: &StepId) -> bool {
        self.step_index(id).is_some()
            || self
                .steps
                .iter()
                .any(|s| s.compensation.as_ref().is_some_and(|c| c.id == *id))
    }

    pub fn step_index(&self, id: &StepId) -> Option<usize> {
        self.index.get(id).copied()
    }

    pub fn step(&self, id: &StepId) -> Option<&Step> {
        self.step_index(id).map(|i| &self.steps[i])
    }
}

/// One compiled step.
#[derive(Debug, Clone)]
pub struct Step {
    pub id: StepId,
    /// Line of the step's `id` in the file, for messages.
    pub line: u32,
    /// Indices of the steps this one needs.
    pub needs: Vec<usize>,
    /// Indices of the steps that need this one.
    pub dependents: Vec<usize>,
    /// Indices of the (upstream) steps its templates read.
    pub reads: Vec<usize>,
    pub when: Option<Expr>,
    pub after: AfterDef,
    pub retry: RetryPolicy,
    pub timeout_ms: Option<u64>,
    /// The workflow asks for a person whatever the policy says.
    pub approval_required: bool,
    /// `alert.slower_than` of the step, in milliseconds.
    pub alert_ms: Option<u64>,
    /// Rounds of the step (`repeat`).
    pub repeat: Option<Repeat>,
    /// Iterations of the step over a list (`for_each`).
    pub for_each: Option<ForEach>,
    /// For an iteration of a `for_each` step, joined to a run's workflow: which.
    pub iteration: Option<Iteration>,
    /// The step that undoes this one (`compensate`), joined to a run that fails or is
    /// cancelled after this one succeeded.
    pub compensation: Option<Box<Step>>,
    /// For a compensation joined to a run: the step it undoes.
    pub compensates: Option<StepId>,
    pub action: Action,
}

/// A step run once per item of a list.
#[derive(Debug, Clone)]
pub struct ForEach {
    pub items: Expr,
    /// How many iterations may run at once (`None`: as many as the run allows).
    pub max_parallel: Option<u32>,
    pub continue_on_error: bool,
}

/// One iteration of a `for_each` step: its parent step, its place, its item.
#[derive(Debug, Clone)]
pub struct Iteration {
    pub parent: usize,
    pub index: usize,
    pub item: serde_json::Value,
}

/// The most items a `for_each` may run over.
pub const MAX_ITEMS: usize = 1_000;

/// Rounds of a step: at most `max`, ending early once `until` is true.
#[derive(Debug, Clone)]
pub struct Repeat {
    pub max: u32,
    pub until: Option<Expr>,
}

/// The most rounds a step may run.
pub const MAX_ROUNDS: u32 = 50;

/// How often and how patiently a failing step is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub backoff_ms: u64,
    pub max_backoff_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 1,
            backoff_ms: 1_000,
            max_backoff_ms: 60_000,
        }
    }
}

impl RetryPolicy {
    /// Delay before the attempt after `failed_attempt` (1-based): the backoff, doubled
    /// after each failure, capped.
    pub fn delay_ms(&self, failed_attempt: u32) -> u64 {
        let doublings = failed_attempt.saturating_sub(1).min(32);
        self.backoff_ms
            .saturating_mul(1u64 << doublings)
            .min(self.max_backoff_ms)
    }
}

/// What a step does, with its templates compiled.
#[derive(Debug, Clone)]
pub enum Action {
    ReadFile {
        path: Template,
    },
    EditFile {
        path: Template,
        change: EditChange,
    },
    RunCommand {
        command: CommandTemplate,
        cwd: Option<Template>,
        env: BTreeMap<String, Template>,
        pass_env: Vec<String>,
        max_output_bytes: u64,
        /// Stream the whole output to files under `.stepwise/output/`.
        save_output: bool,
    },
    Set {
        values: BTreeMap<String, ValueTemplate>,
    },
    Approval {
        message: Template,
    },
    /// A model call (`prompt`, `analyze`, `summarize`).
    Llm(LlmAction),
    /// Another workflow run as this step, a child run (`path` as written; the run records
    /// the file it named when it started).
    Workflow {
        path: String,
        inputs: BTreeMap<String, ValueTemplate>,
    },
    /// A step of a type a manifest declares: its command, given the rendered `with`.
    Custom(CustomAction),
    /// Waits for a signal by this name (never a template: the name is known when it starts).
    WaitSignal {
        name: String,
    },
}

/// A step of a custom type: its manifest, and its `with:` inputs as templates.
#[derive(Debug, Clone)]
pub struct CustomAction {
    pub manifest: std::sync::Arc<crate::custom_step::StepManifest>,
    pub with: BTreeMap<String, ValueTemplate>,
}

/// A model call with its templates compiled.
#[derive(Debug, Clone)]
pub struct LlmAction {
    /// The step type as written (`prompt`, `analyze` reads as `prompt`, `summarize`).
    pub type_name: &'static str,
    /// The model alias (never a template: it is resolved when the run starts).
    pub model: String,
    pub messages: Vec<(Role, Template)>,
    pub temperature: Option<Temperature>,
    pub max_tokens: u32,
    /// A JSON Schema (already checked to compile) the reply must match.
    pub output_schema: Option<serde_json::Value>,
    /// Replies that do not match are asked again this many times.
    pub schema_retries: u32,
    /// A `plan` step: the most steps its plan may have.
    pub plan: Option<u32>,
    /// An `agent` step: the tools it may call and how many turns it may take.
    pub agent: Option<AgentSpec>,
}

/// What an `agent` step's model may do.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    /// The built-in tools offered to the model, as it sees them.
    pub tools: Vec<crate::llm::ToolSpec>,
    /// The most model calls one attempt may make.
    pub max_turns: u32,
    /// The MCP servers (of the user's settings) whose tools it is offered too.
    pub mcp: Vec<String>,
    /// The shared memory it remembers in and recalls from (`remember` and `recall` offered).
    pub memory: Option<String>,
}

impl Action {
    /// The step type as written in the file.
    pub fn type_name(&self) -> &str {
        match self {
            Action::ReadFile { .. } => "read_file",
            Action::EditFile { .. } => "edit_file",
            Action::RunCommand { .. } => "run_command",
            Action::Set { .. } => "set",
            Action::Approval { .. } => "approval",
            Action::Llm(llm) => llm.type_name,
            Action::Workflow { .. } => "workflow",
            Action::Custom(custom) => &custom.manifest.name,
            Action::WaitSignal { .. } => "wait_signal",
        }
    }
}

/// How an edit computes the new content.
#[derive(Debug, Clone)]
pub enum EditChange {
    /// The whole new content.
    Content(Template),
    /// Replace the one occurrence of `find`.
    Replace { find: Template, replace: Template },
}

/// A command with templates.
#[derive(Debug, Clone)]
pub enum CommandTemplate {
    Argv(Vec<Template>),
    Shell(Template),
}
