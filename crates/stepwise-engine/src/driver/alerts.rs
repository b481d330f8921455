//! Alerts (`alert: {slower_than}` on a workflow or a step): a timer for the run and for each
//! step that has one, armed when it starts (and again, for what is left, by a driver that
//! takes the run over), raising `AlertRaised` if the run or step is still going when it fires.
//! The timers never keep a driver alive: a run nobody drives is told about by the next holder.

use std::collections::HashMap;
use std::time::Duration;

use stepwise_core::event::Event;
use stepwise_core::ids::StepId;
use stepwise_core::run::StepStatus;
use stepwise_store::StoredEvent;
use tokio::task::JoinHandle;

use super::Driver;
use crate::messages::Message;

/// The run's (`None`) and its steps' alert timers, and when each watched thing started.
#[derive(Default)]
pub(super) struct Alerts {
    timers: HashMap<Option<StepId>, JoinHandle<()>>,
    since: HashMap<Option<StepId>, i64>,
}

impl Alerts {
    /// When the run and each step last started, from the log.
    pub(super) fn from_log(events: &[(StoredEvent, Event)]) -> Alerts {
        let mut since = HashMap::new();
        for (stored, event) in events {
            match event {
                Event::RunStarted(_) => {
                    since.insert(None, stored.recorded_at_ms);
                }
                Event::StepStarted { step, .. } => {
                    since.insert(Some(step.clone()), stored.recorded_at_ms);
                }
                _ => {}
            }
        }
        Alerts {
            timers: HashMap::new(),
            since,
        }
    }

    pub(super) fn stop(&mut self) {
        for (_, timer) in self.timers.drain() {
            timer.abort();
        }
    }
}

/// Whether a step is under way (started, not ended).
fn going(status: StepStatus) -> bool {
    !status.is_terminal() && status != StepStatus::Pending
}

impl Driver {
    /// The threshold of the run's or a step's alert, if it has one not raised yet and it is
    /// still going.
    fn alert_pending(&self, step: Option<&StepId>) -> Option<u64> {
        if self.state.status().is_finished() || self.state.alert_raised(step) {
            return None;
        }
        match step {
            None => self.state.workflow().alert_ms,
            Some(id) => {
                let state = self.state.step_state(id)?;
                self.state
                    .workflow()
                    .step(id)?
                    .alert_ms
                    .filter(|_| going(state.status))
            }
        }
    }

    /// Arms every alert still to come, for what is left of it (a driver's start).
    pub(super) fn arm_alerts(&mut self) {
        let watched: Vec<Option<StepId>> = std::iter::once(None)
            .chain(self.state.steps().map(|(def, _)| Some(def.id.clone())))
            .collect();
        for step in watched {
            self.arm_alert(step);
        }
    }

    /// Steps that have just started (at `now`): their alerts are armed.
    pub(super) fn alerts_started(&mut self, steps: Vec<StepId>, now: i64) {
        for step in steps {
            self.alerts.since.insert(Some(step.clone()), now);
            self.arm_alert(Some(step));
        }
    }

    fn arm_alert(&mut self, step: Option<StepId>) {
        let (Some(threshold), Some(&since)) = (
            self.alert_pending(step.as_ref()),
            self.alerts.since.get(&step),
        ) else {
            return;
        };
        let due = since.saturating_add(i64::try_from(threshold).unwrap_or(i64::MAX));
        let delay = u64::try_from(due.saturating_sub(self.ctx.clock.now_ms())).unwrap_or(0);
        let tx = self.tx.clone();
        let watched = step.clone();
        let timer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let _ = tx.send(Message::AlertDue { step: watched });
        });
        if let Some(old) = self.alerts.timers.insert(step, timer) {
            old.abort();
        }
    }

    /// An alert's timer fired: the event that records it, if what it watches is still going
    /// and its alert was not raised yet.
    pub(super) fn alert_due(&mut self, step: Option<StepId>) -> Option<Event> {
        self.alerts.timers.remove(&step);
        let threshold = self.alert_pending(step.as_ref())?;
        let since = *self.alerts.since.get(&step)?;
        let elapsed = self.ctx.clock.now_ms().saturating_sub(since);
        Some(Event::AlertRaised {
            step,
            slower_than_ms: threshold,
            elapsed_ms: u64::try_from(elapsed).unwrap_or(0),
        })
    }
}
