//! Retries: the timers of steps whose retry was scheduled, armed again after a restart for
//! what is left of their delay.

use std::collections::HashMap;
use std::time::Duration;

use stepwise_core::event::Event;
use stepwise_core::ids::StepId;
use stepwise_store::StoredEvent;

use super::Driver;
use crate::messages::Message;

impl Driver {
    pub(super) fn arm_pending_retries(&mut self) {
        let now = self.ctx.clock.now_ms();
        let pending: Vec<(StepId, u32)> = self
            .state
            .pending_retries()
            .into_iter()
            .map(|(s, a)| (s.clone(), a))
            .collect();
        for (step, attempt) in pending {
            let remaining = match self.retry_scheduled_at.get(&step) {
                Some((at, delay)) => {
                    let due = at.saturating_add(i64::try_from(*delay).unwrap_or(i64::MAX));
                    u64::try_from(due.saturating_sub(now).max(0)).unwrap_or(0)
                }
                None => 0,
            };
            self.arm_timer(step, attempt, remaining);
        }
    }

    pub(super) fn arm_timer(&mut self, step: StepId, attempt: u32, delay_ms: u64) {
        let tx = self.tx.clone();
        let key = step.clone();
        let handle = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            let _ = tx.send(Message::RetryDue { step, attempt });
        });
        if let Some(old) = self.timers.insert(key, handle) {
            old.abort();
        }
    }
}

/// When each step's latest retry was scheduled and for how long.
pub(super) fn retry_schedule(events: &[(StoredEvent, Event)]) -> HashMap<StepId, (i64, u64)> {
    events
        .iter()
        .filter_map(|(stored, event)| match event {
            Event::StepRetryScheduled { step, delay_ms, .. } => {
                Some((step.clone(), (stored.recorded_at_ms, *delay_ms)))
            }
            _ => None,
        })
        .collect()
}
