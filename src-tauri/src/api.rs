//! The local HTTP API, served by the app while it runs (on by default; `api: {serve: false}`
//! in the user's settings turns it off, `api: {port: N}` moves it) over the app's own engine
//! handle: a run an editor or script starts over HTTP is in the window at once, and driven
//! here. The server itself is `stepwise-api`'s; this only starts it.

use stepwise_api::ServeOptions;
use tauri::{AppHandle, Manager, Runtime};

use crate::state::AppState;

/// Starts serving, unless the settings say not to; a port taken (by `stepwise serve`, another
/// app) or a token file that is not safe is said in the log, and the app goes on without it.
pub fn start<R: Runtime>(app: &AppHandle<R>) {
    let state = app.state::<AppState>();
    let engine = state.engine.clone();
    let workspace = state.default_workspace.clone();
    let settings = match engine.api_settings() {
        Ok(settings) => settings,
        Err(error) => {
            tracing::warn!("the local API is not served: {error}");
            return;
        }
    };
    if !settings.serve {
        tracing::info!("the local API is off (api.serve: false in the settings)");
        return;
    }
    tauri::async_runtime::spawn(async move {
        let token_file = match stepwise_api::token_path() {
            Ok(path) => path,
            Err(error) => {
                tracing::warn!("the local API is not served: {error}");
                return;
            }
        };
        let options = ServeOptions {
            port: settings.port,
            workspace,
            token_file,
        };
        match stepwise_api::serve(engine, options).await {
            Ok(mut serving) => {
                tracing::info!(
                    "serving the local API at {} (token in {})",
                    serving.url(),
                    serving.token_file().display()
                );
                // Served for as long as the app runs.
                serving.wait().await;
                tracing::warn!("the local API stopped");
            }
            Err(error) => tracing::warn!("the local API is not served: {error}"),
        }
    });
}
