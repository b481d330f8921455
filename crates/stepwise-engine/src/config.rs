//! How an engine is opened: which database, durability, who the user is, and the user's
//! policy and settings files.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::error::EngineError;

/// How hard SQLite flushes each commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Every commit is on disk before it returns (`synchronous=FULL`): a power cut loses
    /// nothing committed.
    #[default]
    Full,
    /// The write-ahead log is flushed at checkpoints (`synchronous=NORMAL`): a power cut may
    /// lose the last commits, a crash of the process never does.
    Normal,
}

impl Durability {
    /// `full` or `normal`, as `STEPWISE_SYNC` and `--sync` name them.
    pub fn parse(text: &str) -> Option<Durability> {
        match text.trim().to_ascii_lowercase().as_str() {
            "full" => Some(Durability::Full),
            "normal" => Some(Durability::Normal),
            _ => None,
        }
    }
}

impl From<Durability> for stepwise_store::Durability {
    fn from(durability: Durability) -> stepwise_store::Durability {
        match durability {
            Durability::Full => stepwise_store::Durability::Full,
            Durability::Normal => stepwise_store::Durability::Normal,
        }
    }
}

/// What a client names itself (flags, a window's choices); each wins over the environment.
#[derive(Debug, Clone, Default)]
pub struct Named {
    /// The database.
    pub db: Option<PathBuf>,
    /// The user's policy file.
    pub user_policy: Option<PathBuf>,
    /// The user's settings file.
    pub settings: Option<PathBuf>,
    /// How hard commits are flushed.
    pub durability: Option<Durability>,
}

/// The variables the engine's configuration is read from (the one place that reads them).
pub const ENV_DB: &str = "STEPWISE_DB";
/// The user's policy file.
pub const ENV_USER_POLICY: &str = "STEPWISE_USER_POLICY";
/// The user's settings file.
pub const ENV_SETTINGS: &str = "STEPWISE_SETTINGS";
/// `full` or `normal`.
pub const ENV_SYNC: &str = "STEPWISE_SYNC";

/// Who this process records runs and decisions as, instead of the OS user.
pub const ENV_USER: &str = "STEPWISE_USER";

/// Which machine this process says it is on, instead of its host name: runs record it, and
/// only a process on the machine a run recorded drives it (its workspace is there).
pub const ENV_HOST: &str = "STEPWISE_HOST";

/// The local API's port, over the user's settings (0: any free one).
pub const ENV_API_PORT: &str = "STEPWISE_API_PORT";

/// A PostgreSQL database shared by a team, where runs are kept instead of the SQLite file.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedDatabase {
    /// `postgres://user@host:port/db`: a password here is used but never shown.
    pub url: String,
    /// The environment variable that holds the password (`database.password_env` in the
    /// user's settings); else `PGPASSWORD`, else the password file (`~/.pgpass`).
    pub password_env: Option<String>,
}

impl std::fmt::Debug for SharedDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password, written in ways no parser agrees on: never shown.
        f.debug_struct("SharedDatabase")
            .field("password_env", &self.password_env)
            .finish_non_exhaustive()
    }
}

impl SharedDatabase {
    /// Whether a `--db` or `STEPWISE_DB` value names a PostgreSQL database (not a file).
    pub fn is_url(text: &str) -> bool {
        text.starts_with("postgres://") || text.starts_with("postgresql://")
    }

    /// Where this machine keeps its own files for the database (run locks' companions,
    /// progress files, inline workflows): beside where the SQLite file would be, named for the
    /// database (never by its password).
    fn local_anchor(&self, data_dir: &std::path::Path) -> PathBuf {
        let name = stepwise_core::hash::content_hash(self.url.as_bytes());
        let short = name
            .trim_start_matches("sha256:")
            .get(..16)
            .unwrap_or("shared");
        data_dir.join(format!("postgres-{short}.db"))
    }
}

/// How to open an engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The database file (created if missing); with [`EngineConfig::shared`], where this
    /// machine keeps its own files for the shared database (never opened as SQLite).
    pub db_path: PathBuf,
    /// The PostgreSQL database runs are kept in, instead of the file at `db_path`.
    pub shared: Option<SharedDatabase>,
    /// How hard each commit is flushed.
    pub durability: Durability,
    /// Who this engine records commands and runs as (the OS user for the CLI).
    pub user: String,
    /// The machine this engine is on (its host name, or `STEPWISE_HOST`): recorded with the
    /// runs it starts and the decisions it sends; it drives only runs recorded on it.
    pub host: String,
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
    /// The local API's port, over the user's settings (`STEPWISE_API_PORT`).
    pub api_port: Option<u16>,
    /// Where traces go when the user's settings say nothing: the standard
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (as is), else `OTEL_EXPORTER_OTLP_ENDPOINT` with
    /// `/v1/traces` after it.
    pub otlp_traces_url: Option<String>,
}

impl EngineConfig {
    /// A configuration with this database and every default: full durability, the OS user, no
    /// policy or settings file, waiting runs let go.
    pub fn new(db_path: impl Into<PathBuf>) -> EngineConfig {
        EngineConfig {
            db_path: db_path.into(),
            shared: None,
            durability: Durability::Full,
            user: current_user(),
            host: current_host(),
            user_policy: None,
            user_policy_named: false,
            settings: None,
            settings_named: false,
            hold_waiting_runs: false,
            api_port: None,
            otlp_traces_url: None,
        }
    }

    /// The configuration every client of one user shares (the CLI and the app): each file
    /// where it is named (an explicitly named policy or settings file must exist), else at its
    /// default place in the user's directories (`<data dir>/stepwise/stepwise.db`,
    /// `<config dir>/stepwise/policy.yaml` and `settings.yaml`). A database named by a
    /// `postgres://` URL, or else by `database.url` in the user's settings, is a
    /// [`SharedDatabase`].
    pub fn for_user(
        db: Option<PathBuf>,
        user_policy: Option<PathBuf>,
        settings: Option<PathBuf>,
    ) -> Result<EngineConfig, EngineError> {
        let dirs = directories::ProjectDirs::from("", "", "stepwise");
        let config_file = |name: &str| dirs.as_ref().map(|d| d.config_dir().join(name));
        let settings_named = settings.is_some();
        let settings = settings.or_else(|| config_file("settings.yaml"));
        let from_settings = match &settings {
            Some(path) => crate::service_settings::database_settings(path, settings_named)?,
            None => None,
        };
        let named_url = db
            .as_ref()
            .and_then(|db| db.to_str())
            .filter(|text| SharedDatabase::is_url(text))
            .map(str::to_owned);
        let shared = match (named_url, db.is_some(), from_settings.clone()) {
            (Some(url), _, settings) => Some(SharedDatabase {
                url,
                password_env: settings.and_then(|s| s.password_env),
            }),
            (None, false, Some(settings)) => settings.url.map(|url| SharedDatabase {
                url,
                password_env: settings.password_env,
            }),
            _ => None,
        };
        let data_dir = dirs.as_ref().map(|dirs| dirs.data_dir().to_path_buf());
        let db = match (&shared, db, &data_dir) {
            (Some(shared), _, Some(data_dir)) => shared.local_anchor(data_dir),
            (Some(shared), _, None) => shared.local_anchor(&std::env::temp_dir()),
            (None, Some(db), _) => db,
            (None, None, Some(data_dir)) => data_dir.join("stepwise.db"),
            (None, None, None) => return Err(EngineError::NoDatabasePlace),
        };
        let mut config = EngineConfig::new(db);
        config.shared = shared;
        if let Some(path) = &settings
            && let Some(user) = crate::service_settings::user_setting(path, settings_named)?
        {
            config.user = user;
        }
        config.user_policy_named = user_policy.is_some();
        config.user_policy = user_policy.or_else(|| config_file("policy.yaml"));
        config.settings_named = settings_named;
        config.settings = settings;
        Ok(config)
    }
}

impl EngineConfig {
    /// The configuration every client of one user shares, read from the environment (the one
    /// place that reads it): `STEPWISE_DB`, `STEPWISE_USER_POLICY`, `STEPWISE_SETTINGS` and
    /// `STEPWISE_SYNC` (`full` or `normal`) and `STEPWISE_API_PORT`, each where `named` does not name it already (a
    /// client's flags win), else the defaults of [`EngineConfig::for_user`]. An empty variable
    /// counts as unset; a `STEPWISE_SYNC` that is neither value is an error naming it.
    pub fn from_env(named: Named) -> Result<EngineConfig, EngineError> {
        let var = |name: &str| -> Option<OsString> {
            std::env::var_os(name).filter(|value| !value.is_empty())
        };
        let path = |name: &str| var(name).map(PathBuf::from);
        let durability = match named.durability {
            Some(durability) => durability,
            None => match var(ENV_SYNC) {
                None => Durability::Full,
                Some(text) => text.to_str().and_then(Durability::parse).ok_or_else(|| {
                    EngineError::Settings {
                        message: format!(
                            "{ENV_SYNC} is `{}`; it may be `full` or `normal`",
                            text.to_string_lossy()
                        ),
                    }
                })?,
            },
        };
        let mut config = EngineConfig::for_user(
            named.db.or_else(|| path(ENV_DB)),
            named.user_policy.or_else(|| path(ENV_USER_POLICY)),
            named.settings.or_else(|| path(ENV_SETTINGS)),
        )?;
        config.durability = durability;
        let name = |variable: &str, what: &str| -> Result<Option<String>, EngineError> {
            let Some(value) = var(variable) else {
                return Ok(None);
            };
            let value = value.to_string_lossy().trim().to_owned();
            if value.is_empty() || value.len() > 256 || value.chars().any(char::is_control) {
                return Err(EngineError::Settings {
                    message: format!(
                        "{variable} must be a {what} of at most 256 bytes, without control characters"
                    ),
                });
            }
            Ok(Some(value))
        };
        if let Some(user) = name(ENV_USER, "user name")? {
            config.user = user;
        }
        if let Some(host) = name(ENV_HOST, "machine's name")? {
            config.host = host;
        }
        config.otlp_traces_url = match (
            var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            var("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            (Some(traces), _) => Some(traces.to_string_lossy().into_owned()),
            (None, Some(base)) => {
                Some(crate::service_settings::traces_url(&base.to_string_lossy()))
            }
            (None, None) => None,
        };
        config.api_port = match var(ENV_API_PORT) {
            None => None,
            Some(text) => Some(
                text.to_str()
                    .and_then(|t| t.trim().parse().ok())
                    .ok_or_else(|| EngineError::Settings {
                        message: format!(
                            "{ENV_API_PORT} is `{}`; it must be a port number (0 to 65535)",
                            text.to_string_lossy()
                        ),
                    })?,
            ),
        };
        Ok(config)
    }
}

/// This machine's name, as runs and decisions record it.
pub fn current_host() -> String {
    match whoami::fallible::hostname() {
        Ok(name) if !name.trim().is_empty() => name.trim().to_owned(),
        _ => "an unnamed host".to_owned(),
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
