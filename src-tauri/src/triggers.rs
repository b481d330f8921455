//! The app as a watcher: while it runs (its window closed to the tray icon included), the
//! triggers (`on:`) of its workspace's workflows start runs here, driven here, as
//! `stepwise watch` would. The engine watches, records each firing and starts the run; this
//! only starts the watcher, keeps whether it watches anything (closing the window then hides
//! it to the tray), and offers the tray icon that brings the window back or quits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use stepwise_engine::{WatchEvent, WatchOptions};
use tauri::menu::{Menu, MenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager, Runtime, WindowEvent};

use crate::state::AppState;

/// What the app's watcher watches, as the window's close needs to know.
#[derive(Debug, Default)]
pub struct Triggers {
    /// Workflows with triggers in the workspace.
    workflows: AtomicUsize,
    /// The tray icon is there (the window can come back once hidden).
    tray: AtomicBool,
}

impl Triggers {
    /// Whether closing the window hides it to the tray (triggers go on) rather than quitting.
    pub fn keep_running(&self) -> bool {
        self.workflows.load(Ordering::Relaxed) > 0 && self.tray.load(Ordering::Relaxed)
    }
}

/// Starts watching the app's workspace, and puts the tray icon up.
pub fn start<R: Runtime>(app: &AppHandle<R>) {
    let state = app.state::<AppState>();
    let triggers = Arc::clone(&state.triggers);
    match tray(app) {
        Ok(()) => triggers.tray.store(true, Ordering::Relaxed),
        Err(error) => tracing::warn!("no tray icon; closing the window quits: {error}"),
    }
    let engine = state.engine.clone();
    let workspace = state.default_workspace.clone();
    tauri::async_runtime::spawn(async move {
        let options = WatchOptions {
            workspaces: vec![workspace],
            clock_file: None,
        };
        let mut watcher = match engine.watch(options).await {
            Ok(watcher) => watcher,
            Err(error) => {
                tracing::warn!("triggers are not watched here: {error}");
                return;
            }
        };
        while let Some(event) = watcher.next_event().await {
            match event {
                WatchEvent::Watching {
                    workflows,
                    problems,
                    ..
                } => {
                    triggers.workflows.store(workflows.len(), Ordering::Relaxed);
                    for problem in problems {
                        tracing::warn!(%problem, "a workflow's triggers are not watched");
                    }
                }
                // The runs feed shows the run, with its cause.
                WatchEvent::Started { run_id, cause, .. } => {
                    tracing::info!(%run_id, cause = %cause.summary, "a trigger started a run");
                }
                WatchEvent::Problem { message } => tracing::warn!(%message, "watching triggers"),
            }
        }
        // The watcher ended (the engine is shutting down): closing the window quits.
        triggers.workflows.store(0, Ordering::Relaxed);
    });
}

/// Closing the window while triggers are watched hides it: the app goes on in the tray.
pub fn on_window_event<R: Runtime>(window: &tauri::Window<R>, event: &WindowEvent) {
    let WindowEvent::CloseRequested { api, .. } = event else {
        return;
    };
    if window.state::<AppState>().triggers.keep_running() {
        api.prevent_close();
        if let Err(error) = window.hide() {
            tracing::warn!("could not hide the window: {error}");
        }
    }
}

fn tray<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<()> {
    let open = MenuItem::with_id(app, "open", "Open Stepwise", true, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit Stepwise", true, None::<&str>)?;
    let menu = Menu::with_items(app, &[&open, &quit])?;
    let mut tray = TrayIconBuilder::with_id("stepwise")
        .tooltip("Stepwise: watching the workspace's triggers")
        .menu(&menu)
        .on_menu_event(|app, event| match event.id.as_ref() {
            "open" => {
                if let Some(window) = app.get_webview_window("main") {
                    let _ = window.show();
                    let _ = window.set_focus();
                }
            }
            "quit" => app.exit(0),
            _ => {}
        });
    if let Some(icon) = app.default_window_icon() {
        tray = tray.icon(icon.clone());
    }
    tray.build(app)?;
    Ok(())
}
