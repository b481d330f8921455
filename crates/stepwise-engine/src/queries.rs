//! Answers about runs, read on pooled read connections: they never wait for a driver's
//! commit.

use std::sync::Arc;

use serde::Serialize;
use stepwise_core::approvers::WhoMayAnswer;
use stepwise_core::event::Event;
use stepwise_core::ids::{EventSeq, RunId, StepId};
use stepwise_core::run::{PendingApproval, RunState, RunStatus};
use stepwise_store::{RunFilter, RunRow, StoredEvent};

use crate::engine::Engine;
use crate::error::EngineError;
use crate::loading::{LoadedRun, unreadable};
use crate::record::decode;

/// A run as a list shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    #[serde(flatten)]
    /// The run's row.
    pub row: RunRow,
    /// The process driving the run (`pid 4242`), if one is.
    pub held_by: Option<String>,
}

impl RunSummary {
    /// The status to show: a run recorded as running that no process drives was interrupted
    /// (its driver died) and waits for `resume`.
    pub fn shown_status(&self) -> &str {
        Self::status_to_show(&self.row, self.held_by.is_some())
    }

    /// [`RunSummary::shown_status`] of `row`, driven (`held`) or not.
    pub fn status_to_show(row: &RunRow, held: bool) -> &'static str {
        if row.status == RunStatus::Running && !held {
            "interrupted"
        } else {
            row.status.as_str()
        }
    }
}

/// A question waiting for a person, in one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Approval {
    /// The run.
    pub run_id: RunId,
    /// Its workflow's name.
    pub workflow: String,
    /// The step that waits.
    pub step: StepId,
    /// What it waits on.
    pub approval: PendingApproval,
    /// For a child run: the run and step that started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Box<stepwise_core::subrun::ParentLink>>,
    /// Who may answer it (`approvers`, `self_approval: false`).
    #[serde(default, skip_serializing_if = "WhoMayAnswer::is_anyone")]
    pub who_may_answer: WhoMayAnswer,
}

/// One event of a run's log: its seq, when it was recorded, and what it says.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedEvent {
    /// Its seq in the run's log.
    pub seq: EventSeq,
    /// When it was recorded.
    pub recorded_at_ms: i64,
    /// The event.
    pub event: Event,
}

/// A page of a run's log, read with the run's row in one snapshot (they agree).
#[derive(Debug, Clone)]
pub struct LogPage {
    /// The run's row, as it was when the page was read.
    pub run: RunRow,
    /// The events of the page, in seq order.
    pub events: Vec<LoggedEvent>,
}

/// Which runs a page of the runs list holds, and where the page starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunsQuery {
    /// Only runs with this recorded status.
    pub status: Option<String>,
    /// Only these runs, when given.
    pub only: Option<Vec<RunId>>,
    /// None of these runs.
    pub except: Vec<RunId>,
    /// Every word must appear in the workflow's name or path, the run id or the trigger (ASCII
    /// case aside).
    pub words: Vec<String>,
    /// How many of the matching runs to skip.
    pub offset: usize,
    /// The most runs the page holds.
    pub limit: usize,
}

/// A page of the runs list, newest first, with the counts a list shows beside it, all read in
/// one snapshot.
#[derive(Debug, Clone, Default)]
pub struct RunsPage {
    /// The page's runs, newest first.
    pub runs: Vec<RunRow>,
    /// How many runs the query admits in all.
    pub total: u64,
    /// How many runs have each recorded status, whatever the query.
    pub by_status: Vec<(String, u64)>,
}

/// A question waiting for a person, with when it was asked and the run's workspace.
#[derive(Debug, Clone, PartialEq)]
pub struct AskedApproval {
    /// The question.
    pub approval: Approval,
    /// The run's workspace.
    pub workspace: String,
    /// When the question was recorded.
    pub asked_at_ms: i64,
}

/// Everything waiting for a person across the unfinished runs, and the runs that could not be
/// read (whose questions, if any, are not in the list: a reader must say so).
#[derive(Debug, Default)]
pub struct Inbox {
    /// What waits, oldest run first.
    pub waiting: Vec<AskedApproval>,
    /// Runs that could not be read, and why.
    pub unreadable: Vec<(RunId, EngineError)>,
}

impl Engine {
    /// A run by id or unique prefix.
    pub async fn find_run(&self, id_or_prefix: &str) -> Result<RunRow, EngineError> {
        self.ctx.find_run(id_or_prefix).await
    }

    /// Reads a run (by id or unique prefix) and folds its events.
    pub async fn load_run(&self, id_or_prefix: &str) -> Result<LoadedRun, EngineError> {
        self.ctx.load_run(id_or_prefix).await
    }

    /// The runs forked from a run (by id), oldest first.
    pub async fn forks_of(&self, run_id: &RunId) -> Result<Vec<RunRow>, EngineError> {
        let runs = self.ctx.runs_from(run_id).await?;
        Ok(runs.into_iter().filter(|run| !run.is_child()).collect())
    }

    /// The child runs a run's `workflow` steps started (by id), oldest first.
    pub async fn children_of(&self, run_id: &RunId) -> Result<Vec<RunRow>, EngineError> {
        self.ctx.children_of(run_id).await
    }

    /// Up to `limit` runs, newest first, each with the process driving it, if any.
    pub async fn list_runs(&self, limit: usize) -> Result<Vec<RunSummary>, EngineError> {
        let holds = self.ctx.db.holds.clone();
        self.ctx
            .db
            .read(move |store| {
                store
                    .list_runs(limit)?
                    .into_iter()
                    .map(|row| {
                        let held_by = if !row.status.is_finished() {
                            holds.holder(store, &row.run_id)?
                        } else {
                            None
                        };
                        Ok(RunSummary { row, held_by })
                    })
                    .collect()
            })
            .await
    }

    /// Runs that have not finished, oldest first.
    pub async fn unfinished_runs(&self) -> Result<Vec<RunRow>, EngineError> {
        self.ctx.db.read(|store| Ok(store.unfinished_runs()?)).await
    }

    /// The process driving a run (`pid 4242`), if one is.
    pub async fn holder(&self, run_id: &RunId) -> Result<Option<String>, EngineError> {
        let holds = self.ctx.db.holds.clone();
        let run_id = run_id.clone();
        self.ctx
            .db
            .read(move |store| holds.holder(store, &run_id))
            .await
    }

    /// What waits for a person: in one run, or across every unfinished run (oldest run
    /// first, steps in workflow order). A run that cannot be read fails the whole answer,
    /// naming it: a list without its questions would say they are not there.
    pub async fn approvals(&self, run: Option<&str>) -> Result<Vec<Approval>, EngineError> {
        let ctx = Arc::clone(&self.ctx);
        let run = run.map(str::to_string);
        self.ctx
            .db
            .read(move |store| {
                let runs = match &run {
                    Some(run) => vec![store.find_run(run)?],
                    None => store.unfinished_runs()?,
                };
                let mut found = Vec::new();
                for row in runs {
                    let loaded = ctx.load_run_with(store, row.run_id.as_str())?;
                    found.extend(approvals_of(&loaded.row, &loaded.state));
                }
                Ok(found)
            })
            .await
    }

    /// Up to `limit` events of a run (by id or unique prefix) after `after`, read from the
    /// store by seq, with the run's row as it was at that moment: a view of a long log reads a
    /// page, never the whole log.
    pub async fn read_log(
        &self,
        run: &str,
        after: EventSeq,
        limit: usize,
    ) -> Result<LogPage, EngineError> {
        let run = run.to_string();
        self.ctx
            .db
            .read(move |store| {
                let row = store.find_run(&run)?;
                let events = logged(
                    &row.run_id,
                    store.load_events_page(&row.run_id, after, limit),
                )
                .map_err(|error| unreadable(&row.run_id, store, error))?;
                Ok(LogPage { run: row, events })
            })
            .await
    }

    /// The events of a run with these seqs (those that exist), in seq order.
    pub async fn read_events_at(
        &self,
        run_id: &RunId,
        seqs: Vec<EventSeq>,
    ) -> Result<Vec<LoggedEvent>, EngineError> {
        let run_id = run_id.clone();
        self.ctx
            .db
            .read(move |store| {
                logged(&run_id, store.load_events_at(&run_id, &seqs))
                    .map_err(|error| unreadable(&run_id, store, error))
            })
            .await
    }

    /// A page of the runs list, as the database filters and counts it (no run's lock is asked
    /// about: a list of thousands must not probe thousands of locks).
    pub async fn runs_page(&self, query: RunsQuery) -> Result<RunsPage, EngineError> {
        self.ctx
            .db
            .read(move |store| {
                let filter = RunFilter {
                    status: query.status.clone(),
                    only: query.only.clone(),
                    except: query.except.clone(),
                    words: query.words.clone(),
                };
                Ok(RunsPage {
                    runs: store.runs_page(&filter, query.offset, query.limit)?,
                    total: store.count_runs(&filter)?,
                    by_status: store.count_runs_by_status()?,
                })
            })
            .await
    }

    /// The approvals inbox across every unfinished run, each run read once (its questions, when
    /// each was asked, its workspace). A run that cannot be read is reported in
    /// [`Inbox::unreadable`], naming it, not left out in silence.
    pub async fn approvals_inbox(&self) -> Result<Inbox, EngineError> {
        let ctx = Arc::clone(&self.ctx);
        self.ctx
            .db
            .read(move |store| {
                let mut inbox = Inbox::default();
                for row in store.unfinished_runs()? {
                    let loaded = match ctx.load_run_with(store, row.run_id.as_str()) {
                        Ok(loaded) => loaded,
                        Err(error) => {
                            inbox.unreadable.push((row.run_id, error));
                            continue;
                        }
                    };
                    for approval in approvals_of(&loaded.row, &loaded.state) {
                        // Seqs are 1, 2, … with no gaps: the question's event is found by index.
                        let asked = approval.approval.requested_seq.get();
                        let asked_at_ms = usize::try_from(asked.saturating_sub(1))
                            .ok()
                            .and_then(|i| loaded.events.get(i))
                            .filter(|(stored, _)| stored.seq.get() == asked)
                            .map_or(loaded.row.updated_at_ms, |(stored, _)| {
                                stored.recorded_at_ms
                            });
                        inbox.waiting.push(AskedApproval {
                            approval,
                            workspace: loaded.row.workspace.clone(),
                            asked_at_ms,
                        });
                    }
                }
                Ok(inbox)
            })
            .await
    }
}

/// Stored events read back as typed ones.
fn logged(
    run_id: &RunId,
    stored: Result<Vec<StoredEvent>, stepwise_store::StoreError>,
) -> Result<Vec<LoggedEvent>, EngineError> {
    stored?
        .into_iter()
        .map(|stored| {
            Ok(LoggedEvent {
                seq: stored.seq,
                recorded_at_ms: stored.recorded_at_ms,
                event: decode(run_id, &stored)?,
            })
        })
        .collect()
}

/// The questions a run's state waits on.
pub(crate) fn approvals_of(row: &RunRow, state: &RunState) -> Vec<Approval> {
    state
        .pending_approvals()
        .into_iter()
        .map(|(step, pending)| Approval {
            run_id: row.run_id.clone(),
            workflow: row.workflow_name.clone(),
            step: step.clone(),
            approval: pending.clone(),
            parent: state.started().parent.clone().map(Box::new),
            who_may_answer: state.who_may_answer(&pending.proposal),
        })
        .collect()
}
