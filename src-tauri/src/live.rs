//! Live updates, pushed from the engine (no polling): the runs feed and the approvals inbox
//! become small signals on a broadcast that every `subscribe_live` channel forwards to the
//! webview; `follow_run` sends what each batch of a run's new events changed (and a running
//! model call's or command's text) over a channel of its own. A question that arrives while
//! the window is in the background also raises a system notification.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use stepwise_core::ids::{EventSeq, RunId, StepId};
use stepwise_engine::{
    Approval, ApprovalChange, Engine, LoggedEvent, RecordedEvent, RunFeed, RunUpdate as FeedUpdate,
};
use tauri::ipc::Channel;
use tauri::{AppHandle, Manager, Runtime};
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::demo;
use crate::failures::RecentFailures;
use crate::holders::Holders;
use crate::model::{RunModels, SharedModel, lock};
use crate::state::AppState;
use crate::view::{ChangedStep, LiveSignal, RunFeedItem, RunUpdate};

/// Changes of one run closer together than this are one signal: a run committing a hundred
/// events a second must not send the window a hundred signals.
const RUN_SIGNAL_GAP: Duration = Duration::from_millis(100);

/// A followed run's updates are sent at most this often; events arriving meanwhile go in the
/// next one.
const UPDATE_GAP: Duration = Duration::from_millis(60);

/// While a run is busy (its last update went out less than [`QUIET`] ago), an update waits
/// this long after its first event for the events that follow, so that a run committing
/// every 50 ms is shown in one frame per two commits, not one per commit: each frame costs
/// the window several milliseconds to draw without a GPU (BENCHMARKS.md). Short enough that
/// every event is on screen within a tenth of a second of its commit.
const GATHER: Duration = Duration::from_millis(55);

/// An event after this long without an update is sent at once: a run that changes now and
/// then shows each change as it happens.
const QUIET: Duration = Duration::from_millis(250);

/// Starts the app's background work: drives the runs nobody drives (now and whenever one is
/// let go), seeds the demo on an empty database, and turns the engine's feeds into live
/// signals.
pub fn start<R: Runtime>(app: &AppHandle<R>) {
    let state = app.state::<AppState>();
    let engine = state.engine.clone();
    let workspace = state.default_workspace.clone();
    let seed = state.demo_workspace;
    tauri::async_runtime::spawn(async move {
        // The holder of last resort: a run whose holder dies is taken over here at once.
        match engine.adopt_unheld_runs().await {
            // Adopting runs until the engine stops.
            Ok(task) => drop(task),
            Err(error) => tracing::warn!("not adopting unfinished runs here: {error}"),
        }
        if seed && let Err(error) = demo::seed_first_run(&engine, &workspace).await {
            tracing::warn!("could not start the demo run: {error:#}");
        }
    });
    let engine = state.engine.clone();
    let live = state.live.clone();
    let holders = Arc::clone(&state.holders);
    tauri::async_runtime::spawn(forward_runs(engine, holders, live.clone()));
    let engine = state.engine.clone();
    tauri::async_runtime::spawn(forward_failures(
        engine.subscribe_failures(),
        Arc::clone(&state.failures),
        live.clone(),
    ));
    tauri::async_runtime::spawn(forward_approvals(app.clone(), engine, live));
}

/// Each failure of a driver of this app's becomes a signal the window shows (a toast naming the
/// run and why): nothing fails unseen.
async fn forward_failures(
    mut failures: broadcast::Receiver<stepwise_engine::DriverFailure>,
    recent: Arc<RecentFailures>,
    live: broadcast::Sender<LiveSignal>,
) {
    loop {
        match failures.recv().await {
            Ok(failure) => {
                let signal = LiveSignal::Failed {
                    run_id: failure.run_id,
                    message: failure.message,
                };
                // A window that opens later is told too.
                recent.keep(signal.clone());
                let _ = live.send(signal);
            }
            // Missed ones were logged at `error` by the engine all the same.
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

async fn forward_runs(engine: Engine, holders: Arc<Holders>, live: broadcast::Sender<LiveSignal>) {
    let mut runs = match engine.subscribe_runs().await {
        Ok(runs) => runs,
        Err(error) => return tracing::error!("the runs feed could not start: {error}"),
    };
    // Who drives each run that was unfinished before the feed started.
    match engine.unfinished_runs().await {
        Ok(rows) => {
            for row in rows {
                holders.refresh(&engine, &row).await;
            }
        }
        Err(error) => tracing::warn!("cannot tell who drives the unfinished runs: {error}"),
    }
    loop {
        // The first change is signalled at once; those that follow within the gap are
        // gathered, each run signalled once.
        let mut changed: Vec<RunId> = Vec::new();
        let deadline = Instant::now() + RUN_SIGNAL_GAP;
        loop {
            let next = if changed.is_empty() {
                Ok(runs.next().await)
            } else {
                tokio::time::timeout_at(deadline, runs.next()).await
            };
            let row = match next {
                Ok(Ok(row)) => row,
                Ok(Err(error)) => return tracing::error!("the runs feed stopped: {error}"),
                Err(_) => break,
            };
            holders.refresh(&engine, &row).await;
            let first = changed.is_empty();
            if !changed.contains(&row.run_id) {
                changed.push(row.run_id.clone());
            }
            if first {
                let _ = live.send(LiveSignal::Run { run_id: row.run_id });
            }
        }
        for run_id in changed.into_iter().skip(1) {
            let _ = live.send(LiveSignal::Run { run_id });
        }
    }
}

async fn forward_approvals<R: Runtime>(
    app: AppHandle<R>,
    engine: Engine,
    live: broadcast::Sender<LiveSignal>,
) {
    let mut changes = match engine.subscribe_approvals().await {
        Ok(changes) => changes,
        Err(error) => return tracing::error!("the approvals feed could not start: {error}"),
    };
    // The questions already waiting when the window opened are not news.
    let mut already_waiting = changes.backlog();
    // Every question waiting now, for the count a notification gives.
    let mut waiting: HashSet<(RunId, StepId)> = HashSet::new();
    loop {
        let change = match changes.next().await {
            Ok(change) => change,
            Err(error) => return tracing::error!("the approvals feed stopped: {error}"),
        };
        match &change {
            ApprovalChange::Waiting(approval) => {
                waiting.insert((approval.run_id.clone(), approval.step.clone()));
                let _ = live.send(LiveSignal::Asked {
                    run_id: approval.run_id.clone(),
                    step: approval.step.clone(),
                });
                if already_waiting == 0 {
                    notify_if_away(&app, approval, waiting.len());
                }
            }
            ApprovalChange::Settled { run_id, step, .. } => {
                waiting.remove(&(run_id.clone(), step.clone()));
            }
            ApprovalChange::RunEnded { run_id, .. } => waiting.retain(|(run, _)| run != run_id),
        }
        already_waiting = already_waiting.saturating_sub(1);
        let _ = live.send(LiveSignal::Approvals {});
    }
}

/// A system notification, only when the window is not the one in front: the new question,
/// and how many wait in all when it is not the only one.
fn notify_if_away<R: Runtime>(app: &AppHandle<R>, approval: &Approval, waiting: usize) {
    let focused = app
        .get_webview_window("main")
        .and_then(|w| w.is_focused().ok())
        .unwrap_or(false);
    if focused {
        return;
    }
    let mut body = format!(
        "{}: step `{}` waits for you",
        approval.workflow,
        approval.step.as_str()
    );
    if waiting > 1 {
        body.push_str(&format!(" ({waiting} questions wait)"));
    }
    crate::notify::show(app, "Stepwise: approval needed".to_owned(), body);
}

/// Forwards live signals to one window channel until the window stops listening.
pub fn forward_signals(signals: broadcast::Receiver<LiveSignal>, channel: Channel<LiveSignal>) {
    tauri::async_runtime::spawn(relay_signals(signals, move |signal| {
        channel.send(signal).is_ok()
    }));
}

/// Hands each signal to `send` until it returns `false` or the broadcast closes. A receiver
/// that fell behind lost signals it cannot know: it is told that anything may be stale.
pub async fn relay_signals(
    mut signals: broadcast::Receiver<LiveSignal>,
    send: impl Fn(LiveSignal) -> bool,
) {
    loop {
        let signal = match signals.recv().await {
            Ok(signal) => signal,
            Err(broadcast::error::RecvError::Lagged(_)) => LiveSignal::Lagged {},
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if !send(signal) {
            return;
        }
    }
}

/// Follows a run for the Run view: from `after_seq` (what the window has), each batch of new
/// events is folded into the run's model and what it changed is sent, with the text of its
/// running model calls and commands, until the run ends or the window stops listening.
pub async fn follow_run(
    engine: Engine,
    models: Arc<RunModels>,
    holders: Arc<Holders>,
    run: String,
    after_seq: u64,
    channel: Channel<RunFeedItem>,
) {
    let model = match models.current(&engine, &run).await {
        Ok(model) => model,
        Err(error) => return tracing::warn!(%run, "cannot follow the run: {error}"),
    };
    let run_id = lock(&model).row().run_id.clone();
    let send = |item: RunFeedItem| channel.send(item).is_ok();
    // One engine subscription: the run's events and its operations' progress, which ends
    // with each operation.
    let mut feed = engine.follow_run(run_id.as_str(), EventSeq::new(after_seq));
    let mut last_sent: Option<Instant> = None;
    loop {
        let Some(batch) = next_batch(&mut feed, last_sent, &send).await else {
            return;
        };
        let batch = match batch {
            Ok(batch) => batch,
            Err(error) => return tracing::warn!(%run, "following the run stopped: {error}"),
        };
        let update = match apply_batch(&engine, &models, &holders, &model, batch).await {
            Ok(update) => update,
            Err(error) => return tracing::warn!(%run, "following the run stopped: {error}"),
        };
        last_sent = Some(Instant::now());
        if !send(RunFeedItem::Update {
            update: Box::new(update),
        }) {
            return;
        }
    }
}

/// The most events one update carries (a follower far behind catches up in several).
const BATCH_MAX: usize = 2_000;

/// The next events of a followed run: the first as soon as it is committed, with every other
/// already read and, until the update is due (at once after a quiet spell; else `GATHER`
/// after its first event, and no sooner than `UPDATE_GAP` after the last update), every other
/// that arrives meanwhile. Progress met on the way is sent at once through `send`. `None` once
/// the run has ended and everything was handed out, or the window stopped listening.
async fn next_batch(
    feed: &mut RunFeed,
    last_sent: Option<Instant>,
    send: &impl Fn(RunFeedItem) -> bool,
) -> Option<Result<Vec<RecordedEvent>, stepwise_engine::EngineError>> {
    let mut batch = Vec::new();
    let mut due: Option<Instant> = None;
    loop {
        let next = match due {
            None => Ok(feed.next().await),
            Some(due) => tokio::time::timeout_at(due, feed.next()).await,
        };
        match next {
            Ok(Some(Ok(FeedUpdate::Event(event)))) => {
                batch.push(*event);
                if due.is_none() {
                    let first = Instant::now();
                    due = Some(match last_sent {
                        Some(sent) if first.saturating_duration_since(sent) < QUIET => {
                            (sent + UPDATE_GAP).max(first + GATHER)
                        }
                        _ => first,
                    });
                }
                if batch.len() >= BATCH_MAX {
                    return Some(Ok(batch));
                }
            }
            Ok(Some(Ok(FeedUpdate::Progress { step, text, .. }))) => {
                if !send(RunFeedItem::Progress { step, text }) {
                    return None;
                }
            }
            Ok(Some(Err(error))) => return Some(Err(error)),
            Ok(None) => return (!batch.is_empty()).then_some(Ok(batch)),
            Err(_) => return Some(Ok(batch)),
        }
        // What is ready already goes in this batch; the update waits for no more once due.
        if due.is_some_and(|due| Instant::now() >= due) {
            return Some(Ok(batch));
        }
    }
}

/// Folds a batch into the model and says what it changed.
async fn apply_batch(
    engine: &Engine,
    models: &RunModels,
    holders: &Holders,
    model: &SharedModel,
    batch: Vec<RecordedEvent>,
) -> Result<RunUpdate, stepwise_engine::EngineError> {
    let logged: Vec<LoggedEvent> = batch
        .into_iter()
        .map(|r| LoggedEvent {
            seq: r.seq(),
            recorded_at_ms: r.stored.recorded_at_ms,
            event: r.event,
        })
        .collect();
    let applied = lock(model).apply(&logged);
    let changes = match applied {
        Ok(changes) => changes,
        // The feed and the model disagree (the model was read again meanwhile): read what
        // is missing from the log.
        Err(_) => {
            let mut changes = models.catch_up(engine, model).await?;
            changes.steps.extend(
                logged
                    .iter()
                    .filter_map(|l| l.event.step().cloned())
                    .collect::<BTreeSet<_>>(),
            );
            changes
        }
    };
    let row = lock(model).row().clone();
    let held_by = holders.held_by(engine, &row).await;
    let now = crate::model::now_ms();
    let model = lock(model);
    Ok(RunUpdate {
        head: model.head(held_by),
        changed: changes
            .steps
            .iter()
            .filter_map(|step| model.row_of(step, now))
            .map(|row| ChangedStep { row })
            .collect(),
        reshaped: changes.reshaped,
        first_at_ms: if changes.oldest_at_ms == i64::MAX {
            changes.newest_at_ms
        } else {
            changes.oldest_at_ms
        },
    })
}
