//! How an engine is opened: which database, durability, who the user is, and the user's
//! policy and settings files.

use std::path::PathBuf;

use stepwise_store::Durability;

use crate::error::EngineError;

/// How to open an engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub db_path: PathBuf,
    pub durability: Durability,
    /// Who this engine records commands and runs as (the OS user for the CLI).
    pub user: String,
    /// The user's policy file, applied to every workspace.
    pub user_policy: Option<PathBuf>,
    /// The user's policy file was named explicitly (not the default location): then it must
    /// exist, so that a typo cannot silently drop every rule in it.
    pub user_policy_named: bool,
    /// The user's settings file (providers and model aliases).
    pub settings: Option<PathBuf>,
    /// The settings file was named explicitly: then it must exist.
    pub settings_named: bool,
    /// Keep driving a run while it waits for a person: commands from anywhere reach this
    /// process's driver, and it re-proposes edits whose files change (the app). Without it, a
    /// driver stops as soon as nothing can move without a person, and releases the run (the
    /// CLI).
    pub hold_waiting_runs: bool,
}

impl EngineConfig {
    pub fn new(db_path: impl Into<PathBuf>) -> EngineConfig {
        EngineConfig {
            db_path: db_path.into(),
            durability: Durability::Full,
            user: current_user(),
            user_policy: None,
            user_policy_named: false,
            settings: None,
            settings_named: false,
            hold_waiting_runs: false,
        }
    }

    /// The configuration every client of one user shares (the CLI and the app): each file
    /// where it is named (an explicitly named policy or settings file must exist), else at its
    /// default place in the user's directories (`<data dir>/stepwise/stepwise.db`,
    /// `<config dir>/stepwise/policy.yaml` and `settings.yaml`).
    pub fn for_user(
        db: Option<PathBuf>,
        user_policy: Option<PathBuf>,
        settings: Option<PathBuf>,
    ) -> Result<EngineConfig, EngineError> {
        let dirs = directories::ProjectDirs::from("", "", "stepwise");
        let db = match (db, &dirs) {
            (Some(db), _) => db,
            (None, Some(dirs)) => dirs.data_dir().join("stepwise.db"),
            (None, None) => {
                return Err(EngineError::Settings {
                    message: "no home directory to keep the database in; name one with --db or STEPWISE_DB".into(),
                });
            }
        };
        let config_file = |name: &str| dirs.as_ref().map(|d| d.config_dir().join(name));
        let mut config = EngineConfig::new(db);
        config.user_policy_named = user_policy.is_some();
        config.user_policy = user_policy.or_else(|| config_file("policy.yaml"));
        config.settings_named = settings.is_some();
        config.settings = settings.or_else(|| config_file("settings.yaml"));
        Ok(config)
    }
}

/// The name of the OS user running this process.
pub fn current_user() -> String {
    let name = whoami::username();
    if name.is_empty() {
        "unknown".to_string()
    } else {
        name
    }
}
