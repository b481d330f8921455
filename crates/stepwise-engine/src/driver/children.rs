//! A run's child runs (its `workflow` steps') follow it: a pause, resume or cancel of the
//! parent is passed on to each child still going. Passing on is not in the parent's commit,
//! so a child also looks at its parent whenever it is driven (a crash may have come between
//! the two): one whose parent has ended cancels itself, one whose parent is paused pauses, and
//! one paused through its parent whose parent is no longer paused resumes.

use std::sync::Arc;

use stepwise_core::event::Event;
use stepwise_core::ids::RunId;

use super::Driver;
use crate::commands::Command;
use crate::error::EngineError;

impl Driver {
    /// Passes a pause, resume or cancel of this run on to its child runs still going, each
    /// through its inbox (whoever drives it), in the background. (A resume reaches every
    /// paused child, one a person paused too: the parent waits on its children, and a CLI
    /// driving it would otherwise wait on a child nobody resumes.)
    pub(super) fn pass_to_children(&self, command: Command, issued_by: &str) {
        let ctx = Arc::clone(&self.ctx);
        let run_id = self.run_id.clone();
        let by = format!("{issued_by} {}", through_parent(&run_id));
        self.ctx.exec.spawn(async move {
            let children = match ctx.children_of(&run_id).await {
                Ok(children) => children,
                Err(error) => {
                    tracing::warn!(%run_id, %error, "the child runs could not be listed");
                    return;
                }
            };
            for child in children.into_iter().filter(|c| !c.status.is_finished()) {
                let ctx = Arc::clone(&ctx);
                let (command, by) = (command.clone(), by.clone());
                let exec = ctx.exec.clone();
                exec.spawn(async move {
                    let sent = crate::inbox::send_command(&ctx, &child.run_id, command, by).await;
                    if let Err(error) = sent {
                        tracing::debug!(child = %child.run_id, %error, "not passed on to a child run");
                    }
                });
            }
        });
    }

    /// A child run whose parent has ended or was asked to cancel has nobody to give its
    /// output to: it is cancelled.
    pub(super) async fn cancel_if_parent_ended(&mut self) -> Result<(), EngineError> {
        let Some(parent) = self.state.started().parent.clone() else {
            return Ok(());
        };
        if self.state.cancel_requested() || self.state.status().is_finished() {
            return Ok(());
        }
        if crate::subrun::parent_cancelled(&self.ctx, &parent.run_id).await {
            self.record_input(Event::RunCancelRequested {
                by: format!(
                    "stepwise (its parent run {} has ended or was cancelled)",
                    parent.run_id
                ),
            })?;
            return Ok(());
        }
        self.follow_parent_pause(&parent.run_id).await
    }

    /// Pauses this child run if its parent is paused (unless a person resumed it since), or
    /// resumes it if it was paused through its parent and the parent is not paused any more.
    async fn follow_parent_pause(
        &mut self,
        parent: &stepwise_core::ids::RunId,
    ) -> Result<(), EngineError> {
        let parent_paused = match self.ctx.load_run(parent.as_str()).await {
            Ok(loaded) => loaded.state.paused_by().is_some(),
            Err(_) => return Ok(()),
        };
        let resumed_by_person = self
            .state
            .resumed_by()
            .is_some_and(|by| !paused_through(by, parent));
        match self.state.paused_by() {
            None if parent_paused && !resumed_by_person => {
                self.record_input(Event::RunPauseRequested {
                    by: format!("stepwise {}", parent_is_paused(parent)),
                })?;
            }
            Some(by) if !parent_paused && paused_through(by, parent) => {
                self.record_input(Event::RunResumeRequested {
                    by: format!("stepwise {}", through_parent(parent)),
                })?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// How a decision passed on from a parent run is recorded in its child (after who made it).
fn through_parent(parent: &RunId) -> String {
    format!("(through parent run {parent})")
}

fn parent_is_paused(parent: &RunId) -> String {
    format!("(its parent run {parent} is paused)")
}

/// Whether a pause or resume recorded `by` came from the parent run `parent`.
fn paused_through(by: &str, parent: &RunId) -> bool {
    by.ends_with(&through_parent(parent)) || by.ends_with(&parent_is_paused(parent))
}
