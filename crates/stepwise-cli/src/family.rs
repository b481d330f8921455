//! A run and its child runs (its `workflow` steps'), as the CLI follows them. A parent waits
//! for its child as for any operation, so it never settles on its own while a child waits for
//! a person; the CLI sees the family as waiting when everything it has under way is child runs
//! that wait (for a person, or paused), and says which, as it does for a run's own approvals.

use std::time::Duration;

use stepwise_core::ids::RunId;
use stepwise_core::run::{RunStatus, StepStatus};
use stepwise_engine::Engine;

/// How often a family under way is looked at.
const LOOK_EVERY: Duration = Duration::from_millis(200);

/// Resolves once nothing in the family of `run_id` can move without a person, with the runs
/// below it that wait; never for a run whose workflow runs no other workflow.
pub async fn until_waiting(engine: &Engine, run_id: &RunId) -> Vec<RunId> {
    let has_children = engine
        .load_run(run_id.as_str())
        .await
        .is_ok_and(|loaded| !loaded.state.started().subworkflows.is_empty());
    if !has_children {
        return std::future::pending().await;
    }
    loop {
        tokio::time::sleep(LOOK_EVERY).await;
        if let Ok(Some(waiting)) = waiting_children(engine, run_id).await {
            return waiting;
        }
    }
}

/// Lets go of the run and the runs below it that this process drives only to wait for their
/// children, so that the process can exit: whoever continues a waiting child continues them.
pub async fn let_go(engine: &Engine, run_id: &RunId) {
    let mut family = vec![run_id.clone()];
    let mut at = 0;
    while at < family.len() && family.len() < 256 {
        if let Ok(loaded) = engine.load_run(family[at].as_str()).await {
            family.extend(
                stepwise_engine::child_runs(&loaded)
                    .into_iter()
                    .map(|(_, id)| id),
            );
        }
        at += 1;
    }
    // The deepest first: a parent waits on them.
    for run in family.iter().rev() {
        if engine.drives(run) {
            engine.let_go_while_children_wait(run).await;
        }
    }
}

/// The runs below `run_id` that wait for a person (or are paused), when everything the run
/// has under way is such child runs; `None` while anything can move.
pub async fn waiting_children(
    engine: &Engine,
    run_id: &RunId,
) -> anyhow::Result<Option<Vec<RunId>>> {
    Box::pin(waiting_below(engine, run_id, 0)).await
}

async fn waiting_below(
    engine: &Engine,
    run_id: &RunId,
    depth: u32,
) -> anyhow::Result<Option<Vec<RunId>>> {
    let loaded = engine.load_run(run_id.as_str()).await?;
    if loaded.state.status() != RunStatus::Running || depth > stepwise_core::subrun::MAX_DEPTH {
        return Ok(None);
    }
    let children = stepwise_engine::child_runs(&loaded);
    let mut waiting = Vec::new();
    for (def, state) in loaded.state.steps() {
        match state.status {
            StepStatus::Running if def.action.type_name() == "workflow" => {
                let Some((_, child)) = children.iter().rev().find(|(step, _)| *step == def.id)
                else {
                    return Ok(None);
                };
                let Ok(row) = engine.find_run(child.as_str()).await else {
                    return Ok(None);
                };
                match row.status {
                    RunStatus::AwaitingApproval | RunStatus::Paused => waiting.push(child.clone()),
                    RunStatus::Running => {
                        match Box::pin(waiting_below(engine, child, depth + 1)).await? {
                            Some(below) => waiting.extend(below),
                            None => return Ok(None),
                        }
                    }
                    // Its end is about to reach the parent.
                    _ => return Ok(None),
                }
            }
            StepStatus::Running | StepStatus::WaitingRetry => return Ok(None),
            _ => {}
        }
    }
    Ok((!waiting.is_empty()).then_some(waiting))
}
