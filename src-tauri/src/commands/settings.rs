//! The Settings view's database connection: what is in use and kept, a connection checked,
//! and the user's settings file's `database:` section written (the engine's
//! `connection_settings`: the password is never taken, only where it comes from). A new
//! connection is used from the next start.

use stepwise_engine::SharedDatabase;
use stepwise_engine::connection_settings::{check_connection, save_connection, saved_connection};
use tauri::State;

use crate::error::{AppError, ErrorCode};
use crate::state::AppState;
use crate::view::{DatabaseCheckView, DatabaseSettingsView};

#[tauri::command]
pub fn database_settings(state: State<'_, AppState>) -> Result<DatabaseSettingsView, AppError> {
    settings_view(&state)
}

fn settings_view(state: &AppState) -> Result<DatabaseSettingsView, AppError> {
    let config = state.engine.config();
    let saved = match &config.settings {
        Some(path) => saved_connection(path)?,
        None => None,
    };
    let named_elsewhere = std::env::var_os(stepwise_engine::ENV_DB).is_some_and(|v| !v.is_empty());
    Ok(DatabaseSettingsView {
        in_use: state.engine.database_name(),
        settings_file: config.settings.as_ref().map(|p| p.display().to_string()),
        url: saved.as_ref().map(|s| s.url.clone()),
        password_env: saved.and_then(|s| s.password_env),
        named_elsewhere,
    })
}

fn connection(url: String, password_env: Option<String>) -> SharedDatabase {
    SharedDatabase {
        url: url.trim().to_owned(),
        password_env: password_env
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty()),
    }
}

/// Connects once to the database the form names; changes nothing there.
#[tauri::command]
pub async fn check_database(
    url: String,
    password_env: Option<String>,
) -> Result<DatabaseCheckView, AppError> {
    let connection = connection(url, password_env);
    let found = tauri::async_runtime::spawn_blocking(move || check_connection(&connection))
        .await
        .map_err(|e| AppError::internal(format!("checking the connection stopped: {e}")))??;
    Ok(DatabaseCheckView {
        database: found.database,
        server_version: found.server_version,
        schema_version: found.schema_version,
    })
}

/// Keeps the connection in the user's settings file (`url` none: back to the SQLite file).
#[tauri::command]
pub async fn save_database(
    state: State<'_, AppState>,
    url: Option<String>,
    password_env: Option<String>,
) -> Result<DatabaseSettingsView, AppError> {
    let Some(path) = state.engine.config().settings.clone() else {
        return Err(AppError::new(
            ErrorCode::Invalid,
            "there is no settings file to keep the connection in (no config directory)",
        ));
    };
    let connection = url
        .filter(|url| !url.trim().is_empty())
        .map(|url| connection(url, password_env));
    tauri::async_runtime::spawn_blocking(move || save_connection(&path, connection.as_ref()))
        .await
        .map_err(|e| AppError::internal(format!("saving the settings stopped: {e}")))??;
    settings_view(&state)
}
