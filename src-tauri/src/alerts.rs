//! Alerts (`alert: {slower_than}`): when a run or a step, driven by any process, has been
//! going for longer than its workflow said, the person is told by a system notification. The
//! engine decides and records the alert; this only shows it.

use std::time::Duration;

use stepwise_engine::RaisedAlert;
use tauri::{AppHandle, Manager, Runtime};

use crate::state::AppState;

pub fn start<R: Runtime>(app: &AppHandle<R>) {
    let engine = app.state::<AppState>().engine.clone();
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let mut alerts = match engine.subscribe_alerts().await {
            Ok(alerts) => alerts,
            Err(error) => return tracing::error!("the alerts feed could not start: {error}"),
        };
        loop {
            match alerts.next().await {
                Ok(alert) => {
                    crate::notify::show(
                        &app,
                        "Stepwise: slower than expected".into(),
                        body(&alert),
                    );
                }
                Err(error) => return tracing::error!("the alerts feed stopped: {error}"),
            }
        }
    });
}

/// What the notification says.
pub fn body(alert: &RaisedAlert) -> String {
    let what = match &alert.step {
        Some(step) => format!("step `{step}`"),
        None => "the run".to_string(),
    };
    let threshold = humantime::format_duration(Duration::from_millis(alert.slower_than_ms));
    format!(
        "{}: {what} has been going for longer than {threshold}",
        alert.workflow
    )
}
