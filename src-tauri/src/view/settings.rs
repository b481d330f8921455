//! The Settings view: the database runs are kept in.

use serde::Serialize;
use ts_rs::TS;

/// The database in use, and the connection the user's settings file keeps.
#[derive(Debug, Clone, Serialize, TS)]
pub struct DatabaseSettingsView {
    /// The database this app uses now (a file, or a URL without its password).
    pub in_use: String,
    /// The user's settings file, where the connection is kept.
    pub settings_file: Option<String>,
    /// The PostgreSQL URL the settings keep (`database.url`); none: the SQLite file.
    pub url: Option<String>,
    /// The environment variable the password comes from (`database.password_env`).
    pub password_env: Option<String>,
    /// `STEPWISE_DB` or `--db` names the database, over the settings.
    pub named_elsewhere: bool,
}

/// What checking a connection found.
#[derive(Debug, Clone, Serialize, TS)]
pub struct DatabaseCheckView {
    /// The database reached, as it is shown (never with a password).
    pub database: String,
    pub server_version: String,
    /// The version of stepwise's schema there; none before stepwise first used it.
    #[ts(type = "number | null")]
    pub schema_version: Option<usize>,
}
