//! A run's child runs (its `workflow` steps') follow it: a pause, resume or cancel of the
//! parent is passed on to each child still going. Passing on is not in the parent's commit,
//! so a child also looks at its parent whenever it is driven (a crash may have come between
//! the two): one whose parent has ended cancels itself, one whose parent is paused pauses, and
//! one paused through its parent whose parent is no longer paused resumes.

use std::sync::Arc;

use stepwise_core::event::Event;

use super::Driver;
use crate::commands::Command;
use crate::error::EngineError;

impl Driver {
    /// Passes a pause, resume or cancel of this run on to its child runs still going, each
    /// through its inbox (whoever drives it), in the background.
    pub(super) fn pass_to_children(&self, command: Command, issued_by: &str) {
        let ctx = Arc::clone(&self.ctx);
        let run_id = self.run_id.clone();
        let by = format!("{issued_by} (through parent run {run_id})");
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

    /// Pauses this child run if its parent is paused, or resumes it if it was paused through
    /// its parent (and by nobody else) and the parent is not paused any more.
    async fn follow_parent_pause(
        &mut self,
        parent: &stepwise_core::ids::RunId,
    ) -> Result<(), EngineError> {
        let parent_paused = match self.ctx.load_run(parent.as_str()).await {
            Ok(loaded) => loaded.state.paused_by().is_some(),
            Err(_) => return Ok(()),
        };
        let through_parent = format!("(through parent run {parent})");
        let by_parent = format!("(its parent run {parent} is paused)");
        match self.state.paused_by() {
            None if parent_paused => self.record_input(Event::RunPauseRequested {
                by: format!("stepwise {by_parent}"),
            })?,
            Some(by)
                if !parent_paused
                    && (by.ends_with(&through_parent) || by.ends_with(&by_parent)) =>
            {
                self.record_input(Event::RunResumeRequested {
                    by: format!("stepwise (its parent run {parent} is not paused)"),
                })?;
            }
            _ => {}
        }
        Ok(())
    }
}
