//! Alerts as they are raised (`AlertRaised`, by whichever process drives the run), for a
//! window to tell a person at once: a feed over the runs feed that reads each changed run's
//! events past where it last looked. Alerts raised before the feed started are not news.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use stepwise_core::event::Event;
use stepwise_core::ids::{EventSeq, RunId, StepId};

use crate::context::Context;
use crate::engine::Engine;
use crate::error::EngineError;
use crate::feeds::RunChanges;
use crate::record::decode;

/// How many events one look at a changed run reads at most (the rest at its next change).
const EVENTS_PER_LOOK: usize = 2_000;

/// An alert that was raised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaisedAlert {
    /// The run.
    pub run_id: RunId,
    /// Its workflow's name.
    pub workflow: String,
    /// The step that is slow; `None`: the run as a whole.
    pub step: Option<StepId>,
    /// Its `alert.slower_than`, in milliseconds.
    pub slower_than_ms: u64,
    /// How long it had been going when the alert was raised.
    pub elapsed_ms: u64,
}

/// Alerts as they are raised, in any process.
pub struct AlertFeed {
    ctx: Arc<Context>,
    runs: RunChanges,
    /// How far each run's log has been looked at.
    seen: HashMap<RunId, EventSeq>,
    queue: VecDeque<RaisedAlert>,
}

impl Engine {
    /// Subscribes to alerts raised from now on.
    pub async fn subscribe_alerts(&self) -> Result<AlertFeed, EngineError> {
        // The cursor is taken before the runs are read: nothing in between is missed.
        let runs = self.subscribe_runs().await?;
        let seen = self
            .ctx
            .db
            .read(|store| {
                Ok(store
                    .unfinished_runs()?
                    .into_iter()
                    .map(|row| (row.run_id, row.last_seq))
                    .collect())
            })
            .await?;
        Ok(AlertFeed {
            ctx: Arc::clone(&self.ctx),
            runs,
            seen,
            queue: VecDeque::new(),
        })
    }
}

impl AlertFeed {
    /// The next alert raised, waiting for one.
    pub async fn next(&mut self) -> Result<RaisedAlert, EngineError> {
        loop {
            if let Some(alert) = self.queue.pop_front() {
                return Ok(alert);
            }
            let row = self.runs.next().await?;
            let after = self
                .seen
                .get(&row.run_id)
                .copied()
                .unwrap_or(EventSeq::ZERO);
            if row.last_seq <= after {
                continue;
            }
            let run_id = row.run_id.clone();
            let (events, last) = self
                .ctx
                .db
                .read(move |store| {
                    let page = store.load_events_page(&run_id, after, EVENTS_PER_LOOK)?;
                    let last = page.last().map_or(after, |stored| stored.seq);
                    let mut alerts = Vec::new();
                    for stored in page.iter().filter(|s| s.event_type == "AlertRaised") {
                        alerts.push(decode(&run_id, stored)?);
                    }
                    Ok((alerts, last))
                })
                .await?;
            for event in events {
                if let Event::AlertRaised {
                    step,
                    slower_than_ms,
                    elapsed_ms,
                } = event
                {
                    self.queue.push_back(RaisedAlert {
                        run_id: row.run_id.clone(),
                        workflow: row.workflow_name.clone(),
                        step,
                        slower_than_ms,
                        elapsed_ms,
                    });
                }
            }
            self.seen.insert(row.run_id, last);
        }
    }
}
