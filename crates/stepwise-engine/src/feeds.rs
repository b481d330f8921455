//! Live feeds: a run's events as they are committed, which runs changed, and what waits for a
//! person, whichever process commits. Each feed first catches up from the store, then wakes on
//! the database's change signal (see `db::changes`) and reads what is new, so it yields every
//! event exactly once and in order, at most a few milliseconds after its commit, and an idle
//! subscriber costs nothing.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use futures_core::Stream;
use stepwise_core::event::{DecisionMode, Event};
use stepwise_core::ids::{EventSeq, RunId, StepId};
use stepwise_core::run::{RunState, RunStatus};
use stepwise_store::{RunRow, StoredEvent};
use tokio::sync::watch;

use crate::context::Context;
use crate::engine::Engine;
use crate::error::EngineError;
use crate::loading::unreadable;
use crate::queries::{Approval, approvals_of};
use crate::record::decode;

/// How many events one read of a run's feed takes: a feed catching up on a long run holds
/// one page at a time.
const EVENTS_PAGE: usize = 1000;

/// How many changed runs one read of the runs feed takes.
const RUNS_PAGE: usize = 256;

/// An event of a run, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    /// The run.
    pub run_id: RunId,
    /// The event as the log holds it.
    pub stored: StoredEvent,
    /// The event, typed.
    pub event: Event,
}

impl RecordedEvent {
    /// Its seq in the run's log.
    pub fn seq(&self) -> EventSeq {
        self.stored.seq
    }

    /// Whether this event ends its run (succeeded, failed, cancelled, or aborted by the engine).
    pub fn ends_run(&self) -> bool {
        matches!(
            self.event,
            Event::RunSucceeded {}
                | Event::RunFailed { .. }
                | Event::RunCancelled {}
                | Event::RunAborted { .. }
        )
    }
}

/// A run's events after a given seq: first those already recorded, then each new one as it
/// is committed. Ends after the event that ends the run.
pub struct RunEvents {
    ctx: Arc<Context>,
    /// The run as it was named, then, once it is found, its full id.
    run: String,
    last_seq: EventSeq,
    buffer: VecDeque<RecordedEvent>,
    changes: watch::Receiver<u64>,
    done: bool,
}

impl Engine {
    /// Subscribes to a run's events (by id or unique prefix) with seq greater than
    /// `after_seq`: 0 for all of them.
    pub fn subscribe_run(&self, run: &str, after_seq: EventSeq) -> RunEvents {
        RunEvents {
            ctx: Arc::clone(&self.ctx),
            run: run.to_string(),
            last_seq: after_seq,
            buffer: VecDeque::new(),
            changes: self.ctx.db.watch_changes(),
            done: false,
        }
    }
}

impl RunEvents {
    /// The seq of the last event handed out (or the `after_seq` subscribed with).
    pub fn last_seq(&self) -> EventSeq {
        self.last_seq
    }

    /// The next event, waiting for it to be committed if need be; `None` once the run has
    /// ended and its last event was handed out. An error ends the feed.
    pub async fn next(&mut self) -> Option<Result<RecordedEvent, EngineError>> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                self.last_seq = event.seq();
                if event.ends_run() {
                    self.done = true;
                    self.buffer.clear();
                }
                return Some(Ok(event));
            }
            if self.done {
                return None;
            }
            // Marked seen before reading: a commit after this point wakes the wait below.
            self.changes.borrow_and_update();
            let run = self.run.clone();
            let after = self.last_seq;
            let read = self
                .ctx
                .db
                .read(move |store| {
                    let row = store.find_run(&run)?;
                    let page = || {
                        store
                            .load_events_page(&row.run_id, after, EVENTS_PAGE)?
                            .into_iter()
                            .map(|stored| {
                                let event = decode(&row.run_id, &stored)?;
                                Ok(RecordedEvent {
                                    run_id: row.run_id.clone(),
                                    stored,
                                    event,
                                })
                            })
                            .collect::<Result<Vec<_>, EngineError>>()
                    };
                    let events = page().map_err(|error| unreadable(&row.run_id, store, error))?;
                    Ok((row, events))
                })
                .await;
            let (row, events) = match read {
                Ok(read) => read,
                Err(error) => {
                    self.done = true;
                    return Some(Err(error));
                }
            };
            self.run = row.run_id.to_string();
            if !events.is_empty() {
                self.buffer.extend(events);
                continue;
            }
            let finished = row.status.is_finished();
            if finished && row.last_seq <= self.last_seq {
                self.done = true;
                return None;
            }
            if let Err(error) = self.ctx.changed(&mut self.changes).await {
                self.done = true;
                return Some(Err(error));
            }
        }
    }

    /// The same feed as a `Stream`.
    pub fn into_stream(self) -> impl Stream<Item = Result<RecordedEvent, EngineError>> + Send {
        futures_util::stream::unfold(self, |mut events| async move {
            events.next().await.map(|item| (item, events))
        })
    }
}

/// Runs as they change: each time a run is created or an event is appended to it, its row as
/// it is then. Many changes to one run between two reads come as one.
pub struct RunChanges {
    ctx: Arc<Context>,
    cursor: u64,
    buffer: VecDeque<RunRow>,
    changes: watch::Receiver<u64>,
}

impl Engine {
    /// Subscribes to changes of every run from now on (new runs, new events, new statuses).
    pub async fn subscribe_runs(&self) -> Result<RunChanges, EngineError> {
        let changes = self.ctx.db.watch_changes();
        let cursor = self
            .ctx
            .db
            .read(|store| Ok(store.last_change_seq()?))
            .await?;
        Ok(RunChanges {
            ctx: Arc::clone(&self.ctx),
            cursor,
            buffer: VecDeque::new(),
            changes,
        })
    }
}

impl RunChanges {
    /// The next changed run, waiting for one if need be.
    pub async fn next(&mut self) -> Result<RunRow, EngineError> {
        loop {
            if let Some(row) = self.buffer.pop_front() {
                return Ok(row);
            }
            self.changes.borrow_and_update();
            let cursor = self.cursor;
            let rows = self
                .ctx
                .db
                .read(move |store| Ok(store.runs_changed_since(cursor, RUNS_PAGE)?))
                .await?;
            if let Some(last) = rows.last() {
                self.cursor = last.change_seq;
                self.buffer.extend(rows);
                continue;
            }
            self.ctx.changed(&mut self.changes).await?;
        }
    }

    /// The same feed as a `Stream`; it ends at the first error.
    pub fn into_stream(self) -> impl Stream<Item = Result<RunRow, EngineError>> + Send {
        futures_util::stream::unfold(Some(self), |state| async move {
            let mut changes = state?;
            match changes.next().await {
                Ok(row) => Some((Ok(row), Some(changes))),
                Err(error) => Some((Err(error), None)),
            }
        })
    }
}

/// A change in what waits for a person.
#[derive(Debug, Clone, PartialEq)]
pub enum ApprovalChange {
    /// A question now waits for a person (or did when the feed started).
    Waiting(Box<Approval>),
    /// A question no longer waits: `how` says what happened (approved, rejected, voided
    /// because its file changed, cancelled).
    Settled {
        /// The run.
        run_id: RunId,
        /// The step.
        step: StepId,
        /// The proposal that waited.
        proposal_hash: String,
        /// What happened to it, in words.
        how: String,
    },
    /// A run ended: nothing of it will wait for a person again.
    RunEnded {
        /// The run.
        run_id: RunId,
        /// How it ended.
        status: RunStatus,
    },
}

/// The approvals inbox across all runs, live: first every question waiting now, then each
/// change as it is committed.
pub struct ApprovalChanges {
    ctx: Arc<Context>,
    runs: RunChanges,
    tracked: HashMap<RunId, RunState>,
    /// Changed runs not looked at yet (kept until done, so that dropping `next` midway loses
    /// nothing).
    pending: VecDeque<RunRow>,
    queue: VecDeque<ApprovalChange>,
}

impl Engine {
    /// Subscribes to the approvals inbox across all runs.
    pub async fn subscribe_approvals(&self) -> Result<ApprovalChanges, EngineError> {
        // The cursor is taken before the runs are read, so nothing that happens in between
        // is missed (it may be seen twice, which tracking makes harmless).
        let runs = self.subscribe_runs().await?;
        let ctx = Arc::clone(&self.ctx);
        let loaded = self
            .ctx
            .db
            .read(move |store| {
                // A run that cannot be read fails the feed, naming it: leaving it out would say
                // that nothing of it waits.
                store
                    .unfinished_runs()?
                    .into_iter()
                    .map(|row| ctx.load_run_with(store, row.run_id.as_str()))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        let mut queue = VecDeque::new();
        let mut tracked = HashMap::new();
        for run in loaded {
            queue.extend(
                approvals_of(&run.row, &run.state)
                    .into_iter()
                    .map(|approval| ApprovalChange::Waiting(Box::new(approval))),
            );
            tracked.insert(run.row.run_id.clone(), run.state);
        }
        Ok(ApprovalChanges {
            ctx: Arc::clone(&self.ctx),
            runs,
            tracked,
            pending: VecDeque::new(),
            queue,
        })
    }
}

impl ApprovalChanges {
    /// How many changes are queued and not taken yet. Right after subscribing these are the
    /// questions that were already waiting (what a new window shows, not news).
    pub fn backlog(&self) -> usize {
        self.queue.len()
    }

    /// The next change, waiting for one if need be. Cancel-safe: dropping the future loses
    /// no change.
    pub async fn next(&mut self) -> Result<ApprovalChange, EngineError> {
        loop {
            if let Some(change) = self.queue.pop_front() {
                return Ok(change);
            }
            if let Some(row) = self.pending.front().cloned() {
                self.catch_up(row).await?;
                self.pending.pop_front();
                continue;
            }
            let row = self.runs.next().await?;
            self.pending.push_back(row);
        }
    }

    /// Brings one run's tracked state up to date and queues what changed. Nothing changes
    /// before its one read is done.
    async fn catch_up(&mut self, row: RunRow) -> Result<(), EngineError> {
        let before: Vec<Approval> = match self.tracked.get(&row.run_id) {
            Some(state) => approvals_of(&row, state),
            None => Vec::new(),
        };
        let after_seq = self.tracked.get(&row.run_id).map(RunState::last_seq);
        let ctx = Arc::clone(&self.ctx);
        let run_id = row.run_id.clone();
        let (state, new_events) = match after_seq {
            Some(after) => {
                let events = self
                    .ctx
                    .db
                    .read(move |store| {
                        let read = || {
                            store
                                .load_events(&run_id, after)?
                                .iter()
                                .map(|stored| Ok((stored.seq, decode(&run_id, stored)?)))
                                .collect::<Result<Vec<_>, EngineError>>()
                        };
                        read().map_err(|error| unreadable(&run_id, store, error))
                    })
                    .await?;
                let Some(mut state) = self.tracked.remove(&row.run_id) else {
                    return Ok(());
                };
                for (seq, event) in &events {
                    state
                        .apply(*seq, event)
                        .map_err(|source| EngineError::State {
                            run_id: row.run_id.clone(),
                            source,
                        })?;
                }
                (state, events.into_iter().map(|(_, e)| e).collect())
            }
            None => {
                let loaded = self
                    .ctx
                    .db
                    .read(move |store| ctx.load_run_with(store, run_id.as_str()))
                    .await?;
                let events: Vec<Event> = loaded.events.into_iter().map(|(_, e)| e).collect();
                (loaded.state, events)
            }
        };
        let after = approvals_of(&row, &state);
        let still: HashSet<(&str, &str)> = after
            .iter()
            .map(|a| (a.step.as_str(), a.approval.proposal_hash.as_str()))
            .collect();
        let was: HashSet<(&str, &str)> = before
            .iter()
            .map(|a| (a.step.as_str(), a.approval.proposal_hash.as_str()))
            .collect();
        for gone in before
            .iter()
            .filter(|a| !still.contains(&(a.step.as_str(), a.approval.proposal_hash.as_str())))
        {
            self.queue.push_back(ApprovalChange::Settled {
                run_id: row.run_id.clone(),
                step: gone.step.clone(),
                proposal_hash: gone.approval.proposal_hash.clone(),
                how: how_settled(&new_events, &gone.step, &gone.approval.proposal_hash),
            });
        }
        for new in after
            .iter()
            .filter(|a| !was.contains(&(a.step.as_str(), a.approval.proposal_hash.as_str())))
        {
            self.queue
                .push_back(ApprovalChange::Waiting(Box::new(new.clone())));
        }
        let status = state.status();
        if status.is_finished() {
            self.queue.push_back(ApprovalChange::RunEnded {
                run_id: row.run_id.clone(),
                status,
            });
        } else {
            self.tracked.insert(row.run_id.clone(), state);
        }
        Ok(())
    }
}

/// What became of a question, from the events that followed it.
fn how_settled(events: &[Event], step: &StepId, proposal_hash: &str) -> String {
    for event in events {
        match event {
            Event::ApprovalGranted(granted)
                if &granted.step == step && granted.proposal_hash == proposal_hash =>
            {
                return match &granted.mode {
                    DecisionMode::Manual if granted.edited.is_some() => {
                        format!("approved (edited) by {}", granted.by)
                    }
                    DecisionMode::Manual => format!("approved by {}", granted.by),
                    DecisionMode::Rule { rule } => format!("approved by rule: {rule}"),
                };
            }
            Event::ApprovalRejected {
                step: s,
                proposal_hash: p,
                by,
                reason,
                ..
            } if s == step && p == proposal_hash => {
                return format!("rejected by {by}: {reason}");
            }
            Event::ProposalVoided {
                step: s,
                proposal_hash: p,
                path,
                ..
            } if s == step && p == proposal_hash => {
                return format!("voided: `{path}` changed since it was proposed; proposed again");
            }
            Event::StepCancelled { step: s } if s == step => return "cancelled".to_string(),
            _ => {}
        }
    }
    "no longer waits".to_string()
}
