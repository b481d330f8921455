//! A run's child runs (its `workflow` steps') follow it: a pause, resume or cancel of the
//! parent is passed on to each child still going, and a child whose parent has ended (a
//! crash came between the parent's cancel and its passing on) cancels itself when driven.

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
        }
        Ok(())
    }
}
