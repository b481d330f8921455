//! Starting a child run: the workflow file the parent recorded, the inputs its step gave,
//! the parent's workspace, policy, approvers and checkpoints; the models as the settings define them
//! now (recorded by the child, as any run records them when it starts).

use std::sync::Arc;

use serde_json::Value;
use stepwise_core::custom_step::StepTypes;
use stepwise_core::event::{RunStarted, StepPauses};
use stepwise_core::ids::{EventSeq, RunId, StepId};
use stepwise_core::subrun::ParentLink;
use stepwise_core::workflow::parse_recorded_workflow_with;

use super::CHILD_TRIGGER;
use crate::context::Context;
use crate::error::EngineError;
use crate::settings::UserSettings;

/// What a `workflow` step's operation asks to start.
pub(super) struct ChildStart {
    pub(super) parent: RunId,
    pub(super) step: StepId,
    pub(super) op: EventSeq,
    pub(super) child: RunId,
    /// The file, by `path` as the step wrote it (a key of the parent's `subworkflows`).
    pub(super) workflow: String,
    pub(super) inputs: Value,
    pub(super) depth: u32,
}

/// Records the child run and starts driving it here.
pub(super) async fn start(ctx: &Arc<Context>, start: ChildStart) -> Result<(), EngineError> {
    ctx.db.check_writable()?;
    let parent = ctx.load_run(start.parent.as_str()).await?;
    // Whoever may answer the parent's questions, as its policy files and workflow say, is
    // who may answer its children's (and their own workflows may narrow it further).
    let approvers = parent.state.approvers().recorded();
    let parent = parent.state.started().clone();
    let user_settings = ctx.config.settings.clone().map(|path| UserSettings {
        path,
        named: ctx.config.settings_named,
    });
    let holds = ctx.db.holds.clone();
    let now = ctx.clock.now_ms();
    let prepared = ctx
        .exec
        .spawn_blocking(move || {
            let sub = parent.subworkflows.get(&start.workflow).ok_or_else(|| {
                EngineError::Internal(format!(
                    "the parent run did not record workflow file `{}`",
                    start.workflow
                ))
            })?;
            let step_types = StepTypes::from_recorded(&parent.step_types);
            let workflow = Arc::new(
                parse_recorded_workflow_with(&sub.path, &sub.source, &step_types)
                    .map_err(EngineError::Workflow)?,
            );
            let given = start.inputs.as_object().cloned().unwrap_or_default();
            let inputs = workflow
                .resolve_input_values(&given)
                .map_err(|e| EngineError::Internal(format!("`{}`: {e}", start.workflow)))?;
            let workspace = std::path::PathBuf::from(&parent.workspace);
            let models =
                crate::start::resolve_models(&workflow, user_settings.as_ref(), &workspace)?;
            let root = parent
                .parent
                .as_ref()
                .map_or_else(|| parent.run_id.clone(), |link| link.root.clone());
            let started = RunStarted {
                run_id: start.child.clone(),
                workflow_name: workflow.name.clone(),
                workflow_path: sub.path.clone(),
                workflow_hash: workflow.source_hash.clone(),
                workflow_source: sub.source.clone(),
                workspace: parent.workspace.clone(),
                inputs,
                trigger: CHILD_TRIGGER.to_string(),
                started_by: parent.started_by.clone(),
                host: parent.host.clone(),
                max_parallel: workflow.max_parallel.max(1),
                policy: parent.policy.clone(),
                approvers,
                models,
                budget: workflow.budget,
                checkpoint: parent.checkpoint.clone(),
                // Stepping through the parent steps through its children too; its
                // breakpoints name its own steps.
                pauses: StepPauses {
                    every_step: parent.pauses.every_step,
                    breakpoints: Vec::new(),
                },
                fork: None,
                subworkflows: sub.subworkflows.clone(),
                step_types: parent.step_types.clone(),
                parent: Some(ParentLink {
                    run_id: parent.run_id.clone(),
                    step: start.step,
                    op: start.op,
                    depth: start.depth,
                    root,
                }),
                cause: None,
            };
            crate::start::prepared(workflow, started, &holds, now)
        })
        .await
        .map_err(|e| EngineError::Internal(format!("preparing the child run stopped: {e}")))??;
    crate::drivers::record_and_spawn(ctx, prepared, Vec::new()).await?;
    Ok(())
}
