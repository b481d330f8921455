//! Starting a run: the workflow, its inputs, the workspace, the policy and the models (from
//! the settings) are checked and resolved, and the run's first event, `RunStarted`, records
//! all of it, so that the run resumes and replays with exactly what it started with.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use stepwise_core::event::{Event, ForkOrigin, RunStarted, StepPauses};
use stepwise_core::ids::RunId;
use stepwise_core::llm::Budget;
use stepwise_core::run::{RunState, RunStatus};
use stepwise_core::workflow::Workflow;
use stepwise_store::NewRun;

use crate::error::EngineError;
use crate::lock::RunLock;
use crate::policy_files::{UserPolicy, load_policy};
use crate::record::new_event;
use crate::sandbox::Workspace;
use crate::settings::{Settings, UserSettings, WORKSPACE_SETTINGS};

/// What to start.
#[derive(Debug, Clone)]
pub struct StartRun {
    /// The workflow file.
    pub workflow_path: PathBuf,
    /// The workspace directory the run works in.
    pub workspace: PathBuf,
    /// The workflow's inputs, as text (`name=value`), checked against their declared types.
    pub inputs: BTreeMap<String, String>,
    /// What started the run (`cli`, `app`, …), recorded.
    pub trigger: String,
    /// Overrides the workflow's `max_parallel`.
    pub max_parallel: Option<usize>,
    /// Overrides the workflow's `budget` in dollars (`--budget-usd`), as micro-dollars.
    pub budget_micro_usd: Option<u64>,
    /// Where the run waits for a person before a step starts (`--step`, `--break`), besides
    /// the workflow's own `breakpoints`.
    pub pauses: StepPauses,
    /// What started it, when a trigger did (a watcher); one run per cause and workflow file.
    pub cause: Option<stepwise_core::cause::RunCause>,
}

/// A run checked and ready to be recorded.
pub(crate) struct PreparedRun {
    pub(crate) workflow: Arc<Workflow>,
    pub(crate) row: NewRun,
    pub(crate) first: stepwise_store::NewEvent,
    pub(crate) lock: RunLock,
    /// What `first` records.
    pub(crate) started: RunStarted,
}

/// The engine's files and identity a start reads.
pub(crate) struct StartFiles<'a> {
    pub(crate) user: &'a str,
    pub(crate) host: &'a str,
    pub(crate) user_policy: Option<&'a UserPolicy>,
    pub(crate) user_settings: Option<&'a UserSettings>,
    pub(crate) holds: &'a crate::lock::Holds,
}

pub(crate) fn prepare_run(
    start: &StartRun,
    files: &StartFiles<'_>,
    now: i64,
) -> Result<PreparedRun, EngineError> {
    let read = crate::workflow_file::load_in(&start.workflow_path, Some(&start.workspace))?;
    prepare_started(start, read, files, now, None)
}

/// A workflow read and checked: its text, and the workflow files and step types its steps
/// use.
pub(crate) type ReadWorkflow = (Arc<Workflow>, String, crate::subrun::Gathered);

/// [`prepare_run`] for a workflow already read, and, for a fork, where it comes from.
pub(crate) fn prepare_started(
    start: &StartRun,
    (workflow, source, gathered): ReadWorkflow,
    files: &StartFiles<'_>,
    now: i64,
    fork: Option<ForkOrigin>,
) -> Result<PreparedRun, EngineError> {
    let inputs = workflow.resolve_inputs(&start.inputs)?;
    let workspace = Workspace::open(&start.workspace)?;
    let mut policy_files = load_policy(files.user_policy, workspace.root())?;
    // Under `approvers` (or `self_approval: false`), what runs without asking is for the
    // workspace's policy to say: the starter's own file may not let their run past the people
    // named to answer its questions.
    if !policy_files.approvers.and(&workflow.approvers).is_empty() {
        policy_files.rules.retain(|rule| {
            !(rule.effect == stepwise_core::policy::Effect::Allow
                && rule
                    .source
                    .starts_with(crate::policy_files::USER_POLICY_ORIGIN))
        });
    }
    let models = resolve_models(&workflow, files.user_settings, workspace.root())?;
    let budget = match (start.budget_micro_usd, workflow.budget) {
        (Some(micro_usd), Some(budget)) => Some(Budget {
            micro_usd: Some(micro_usd),
            ..budget
        }),
        (Some(micro_usd), None) => Some(Budget {
            micro_usd: Some(micro_usd),
            tokens: None,
        }),
        (None, budget) => budget,
    };
    if let Some(unknown) = start
        .pauses
        .breakpoints
        .iter()
        .find(|id| !workflow.may_pause_before(id))
    {
        return Err(EngineError::UnknownBreakpoint {
            step: unknown.clone(),
            workflow: workflow.name.clone(),
        });
    }
    let run_id = RunId::from(uuid::Uuid::new_v4().to_string());
    let workflow_path =
        std::path::absolute(&start.workflow_path).unwrap_or_else(|_| start.workflow_path.clone());
    let started = RunStarted {
        run_id: run_id.clone(),
        workflow_name: workflow.name.clone(),
        workflow_path: workflow_path.display().to_string(),
        workflow_hash: workflow.source_hash.clone(),
        workflow_source: source,
        workspace: workspace.root().display().to_string(),
        inputs,
        trigger: start.trigger.clone(),
        started_by: files.user.to_string(),
        host: Some(files.host.to_string()),
        max_parallel: start.max_parallel.unwrap_or(workflow.max_parallel).max(1),
        policy: policy_files.rules,
        approvers: policy_files.approvers.recorded(),
        models,
        budget,
        checkpoint: policy_files.checkpoint,
        pauses: start.pauses.clone(),
        fork: fork.map(Box::new),
        subworkflows: gathered.subworkflows,
        step_types: gathered.step_types,
        parent: None,
        cause: start.cause.clone().map(Box::new),
    };
    prepared(workflow, started, files.holds, now)
}

/// A run whose `RunStarted` is decided, checked and ready to be recorded: its lock taken, its
/// row and first event made.
pub(crate) fn prepared(
    workflow: Arc<Workflow>,
    started: RunStarted,
    holds: &crate::lock::Holds,
    now: i64,
) -> Result<PreparedRun, EngineError> {
    let run_id = started.run_id.clone();
    // Check now that the recorded policy compiles, so that a bad rule fails the start, not the
    // first drive.
    RunState::new(workflow.clone(), started.clone()).map_err(|source| EngineError::State {
        run_id: run_id.clone(),
        source,
    })?;
    // Held from before the run exists, so that nobody ever sees it running without a holder.
    let lock = holds
        .try_acquire(&run_id, now)?
        .map_err(|holder| EngineError::RunLocked {
            run_id: run_id.clone(),
            holder,
        })?;
    let row = NewRun {
        run_id,
        workflow_name: started.workflow_name.clone(),
        workflow_path: started.workflow_path.clone(),
        workflow_hash: started.workflow_hash.clone(),
        workspace: started.workspace.clone(),
        trigger: started.trigger.clone(),
        status: RunStatus::Running.as_str().to_string(),
        created_at_ms: now,
        parent: (started.fork.as_ref().map(|fork| &fork.parent))
            .or(started.parent.as_ref().map(|link| &link.run_id))
            .cloned(),
        cause: started.cause.as_deref().cloned(),
    };
    let first = new_event(&Event::RunStarted(started.clone()), None, now)?;
    Ok(PreparedRun {
        workflow,
        row,
        first,
        lock,
        started,
    })
}

/// The models the workflow names, as the settings define them now.
pub(crate) fn resolve_models(
    workflow: &Workflow,
    user_settings: Option<&UserSettings>,
    workspace: &Path,
) -> Result<BTreeMap<String, stepwise_core::llm::ModelSpec>, EngineError> {
    let aliases = workflow.model_aliases();
    if aliases.is_empty() {
        return Ok(BTreeMap::new());
    }
    let settings = Settings::load(user_settings, workspace)?;
    // The MCP servers its agents use must be the user's: known now, not at the first call.
    for step in &workflow.steps {
        let stepwise_core::workflow::Action::Llm(llm) = &step.action else {
            continue;
        };
        for server in llm.agent.iter().flat_map(|agent| &agent.mcp) {
            if settings.mcp_server(server).is_none() {
                return Err(EngineError::Settings {
                    message: format!(
                        "step `{}` uses MCP server `{server}`, which your settings do not define; add it under `mcp_servers:`",
                        step.id
                    ),
                });
            }
        }
    }
    let mut looked_at: Vec<PathBuf> = user_settings.iter().map(|u| u.path.clone()).collect();
    looked_at.push(workspace.join(WORKSPACE_SETTINGS));
    settings.resolve(&aliases, &looked_at)
}
