//! Live updates, pushed from the engine (no polling): the runs feed and the approvals inbox
//! become small signals on a broadcast that every `subscribe_live` channel forwards to the
//! webview; `follow_run` streams one run's events (and a running model call's text) over a
//! channel of its own. A question that arrives while the window is in the background also
//! raises a system notification.

use std::collections::HashSet;

use stepwise_core::ids::{EventSeq, RunId, StepId};
use stepwise_engine::{Approval, ApprovalChange, Engine, RunUpdate};
use tauri::ipc::Channel;
use tauri::{AppHandle, Manager, Runtime};
use tokio::sync::broadcast;

use crate::demo;
use crate::state::AppState;
use crate::view::{LiveSignal, RunFeedItem, event_view};

/// Starts the app's background work: resumes the runs nobody drives, seeds the demo on an
/// empty database, and turns the engine's feeds into live signals.
pub fn start<R: Runtime>(app: &AppHandle<R>) {
    let state = app.state::<AppState>();
    let engine = state.engine.clone();
    let workspace = state.default_workspace.clone();
    let seed = state.demo_workspace;
    let live = state.live.clone();
    tauri::async_runtime::spawn(async move {
        match engine.resume_unheld().await {
            Ok(runs) => {
                for (run, outcome) in runs {
                    if let Err(error) = outcome {
                        tracing::info!(%run, "not resumed here: {error}");
                    }
                }
            }
            Err(error) => tracing::warn!("could not resume unfinished runs: {error}"),
        }
        if seed && let Err(error) = demo::seed_first_run(&engine, &workspace).await {
            tracing::warn!("could not start the demo run: {error:#}");
        }
    });
    let engine = state.engine.clone();
    tauri::async_runtime::spawn(forward_runs(engine, live.clone()));
    let engine = state.engine.clone();
    tauri::async_runtime::spawn(forward_approvals(app.clone(), engine, live));
}

async fn forward_runs(engine: Engine, live: broadcast::Sender<LiveSignal>) {
    let mut runs = match engine.subscribe_runs().await {
        Ok(runs) => runs,
        Err(error) => return tracing::error!("the runs feed could not start: {error}"),
    };
    loop {
        match runs.next().await {
            Ok(row) => {
                let _ = live.send(LiveSignal::Run { run_id: row.run_id });
            }
            Err(error) => return tracing::error!("the runs feed stopped: {error}"),
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
pub fn forward_signals(mut signals: broadcast::Receiver<LiveSignal>, channel: Channel<LiveSignal>) {
    tauri::async_runtime::spawn(async move {
        loop {
            let signal = match signals.recv().await {
                Ok(signal) => signal,
                // Fell behind: a signal for everything makes the window reload what it shows.
                Err(broadcast::error::RecvError::Lagged(_)) => LiveSignal::Approvals {},
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if channel.send(signal).is_err() {
                return;
            }
        }
    });
}

/// Streams a run's events after `after_seq`, and the text of its running model calls and
/// commands' output, to `channel` until the run ends or the window stops listening. One engine
/// subscription carries both; an operation's progress ends when the operation does.
pub async fn follow_run(
    engine: Engine,
    run: String,
    after_seq: u64,
    channel: Channel<RunFeedItem>,
) {
    let mut feed = engine.follow_run(&run, EventSeq::new(after_seq));
    while let Some(next) = feed.next().await {
        let item = match next {
            Ok(RunUpdate::Event(recorded)) => RunFeedItem::Event {
                event: event_view(&recorded.stored, &recorded.event),
            },
            Ok(RunUpdate::Progress { step, text, .. }) => RunFeedItem::Progress { step, text },
            Err(error) => return tracing::warn!(%run, "following the run stopped: {error}"),
        };
        if channel.send(item).is_err() {
            return;
        }
    }
}
