//! Traces of the runs, exported while the app runs when the user's settings (or the standard
//! OTLP variables) name a collector. The engine exports from its log; this only starts it and
//! keeps it going for the app's lifetime.

use tauri::{AppHandle, Manager, Runtime};

use crate::state::AppState;

pub fn start<R: Runtime>(app: &AppHandle<R>) {
    let engine = app.state::<AppState>().engine.clone();
    tauri::async_runtime::spawn(async move {
        match engine.export_telemetry().await {
            Ok(Some(export)) => {
                tracing::info!("exporting traces to {}", export.url());
                // Kept for as long as the app runs (dropping it stops the export).
                let _export = export;
                std::future::pending::<()>().await;
            }
            Ok(None) => {}
            Err(error) => tracing::warn!("traces are not exported: {error}"),
        }
    });
}
