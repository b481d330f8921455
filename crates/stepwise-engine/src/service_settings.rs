//! The user's settings for the services a process runs beside its runs: the local HTTP API
//! (`api:` in the user's `settings.yaml`) and telemetry (`telemetry:`). A workspace's settings
//! may not set them: a checked-out repository must not open a port on the user's machine, nor
//! send what the user's runs do to a host of its choosing.

use serde::Deserialize;

use crate::engine::Engine;
use crate::error::EngineError;
use crate::settings::{UserSettings, read_user_section};

/// The port the local API listens on unless the settings or `--port` say otherwise.
pub const DEFAULT_API_PORT: u16 = 7483;

/// `api:` in the user's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    /// Whether the desktop app serves the API while it runs (default: yes).
    #[serde(default = "serve_by_default")]
    pub serve: bool,
    /// The port on 127.0.0.1 (default 7483; 0 picks a free one).
    #[serde(default = "default_port")]
    pub port: u16,
}

fn serve_by_default() -> bool {
    true
}

fn default_port() -> u16 {
    DEFAULT_API_PORT
}

impl Default for ApiSettings {
    fn default() -> ApiSettings {
        ApiSettings {
            serve: serve_by_default(),
            port: DEFAULT_API_PORT,
        }
    }
}

/// `telemetry:` in the user's settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    /// The collector's OTLP/HTTP base URL (`http://127.0.0.1:4318`): traces go to
    /// `/v1/traces` under it (a URL that ends so already is taken as it is).
    pub otlp_endpoint: Option<String>,
}

/// `database:` in the user's settings: a PostgreSQL database shared by a team.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `postgres://user@host:port/db` (`--db` and `STEPWISE_DB` win over it).
    #[serde(default)]
    pub url: Option<String>,
    /// The environment variable that holds the password.
    #[serde(default)]
    pub password_env: Option<String>,
}

impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: never shown.
        f.debug_struct("DatabaseSettings")
            .field("password_env", &self.password_env)
            .finish_non_exhaustive()
    }
}

/// The `database:` section of the user's settings file at `path`, if any.
pub(crate) fn database_settings(
    path: &std::path::Path,
    named: bool,
) -> Result<Option<DatabaseSettings>, EngineError> {
    let user = UserSettings {
        path: path.to_path_buf(),
        named,
    };
    let found = read_user_section(&user, |file| file.database)?;
    if let Some(url) = found.as_ref().and_then(|d| d.url.as_deref())
        && !crate::config::SharedDatabase::is_url(url)
    {
        return Err(EngineError::Settings {
            message: format!(
                "settings file {}: database.url must be a postgres:// URL",
                path.display()
            ),
        });
    }
    Ok(found)
}

/// `user:` in the user's settings file at `path`, if set: checked as `STEPWISE_USER` is.
pub(crate) fn user_setting(
    path: &std::path::Path,
    named: bool,
) -> Result<Option<String>, EngineError> {
    let user = UserSettings {
        path: path.to_path_buf(),
        named,
    };
    let Some(name) = read_user_section(&user, |file| file.user)? else {
        return Ok(None);
    };
    let name = name.trim().to_owned();
    if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
        return Err(EngineError::Settings {
            message: format!(
                "settings file {}: `user` must be a user name of at most 256 bytes, without control characters",
                path.display()
            ),
        });
    }
    Ok(Some(name))
}

/// A URL as it may be shown (in a log, an error): without a user name or password in it.
pub fn shown_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

/// The traces URL of an OTLP/HTTP base URL.
pub(crate) fn traces_url(base: &str) -> String {
    let base = base.trim().trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_string()
    } else {
        format!("{base}/v1/traces")
    }
}

impl Engine {
    /// Where this engine exports traces: the user's settings' `telemetry.otlp_endpoint`, else
    /// the standard OTLP variables; `None` when neither says. A URL that is not http(s) is an
    /// error naming where it came from.
    pub fn telemetry_url(&self) -> Result<Option<String>, EngineError> {
        Ok(self.telemetry_target()?.map(|(url, _)| url))
    }

    /// [`Engine::telemetry_url`], and whether it came from the environment (whose OTLP headers
    /// may then go with it).
    pub(crate) fn telemetry_target(&self) -> Result<Option<(String, bool)>, EngineError> {
        let config = self.config();
        let from_settings = match config.settings.clone() {
            None => None,
            Some(path) => {
                let user = UserSettings {
                    path,
                    named: config.settings_named,
                };
                read_user_section(&user, |file| file.telemetry)?
                    .and_then(|t| t.otlp_endpoint)
                    .map(|base| {
                        (
                            traces_url(&base),
                            "telemetry.otlp_endpoint in your settings",
                        )
                    })
            }
        };
        let Some((url, from)) = from_settings.or_else(|| {
            config
                .otlp_traces_url
                .clone()
                .map(|url| (url, "OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT"))
        }) else {
            return Ok(None);
        };
        match reqwest::Url::parse(&url) {
            Ok(parsed)
                if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some() =>
            {
                Ok(Some((url, from.starts_with("OTEL_"))))
            }
            _ => Err(EngineError::Settings {
                message: format!(
                    "{from}: `{}` is not an http(s) URL of a collector",
                    shown_url(&url)
                ),
            }),
        }
    }

    /// The local API's settings from the user's settings file (the defaults where it says
    /// nothing), its port overridden by `STEPWISE_API_PORT`; a broken file is an error naming
    /// it, never silently the defaults.
    pub fn api_settings(&self) -> Result<ApiSettings, EngineError> {
        let config = self.config();
        let mut settings = match config.settings.clone() {
            None => ApiSettings::default(),
            Some(path) => {
                let user = UserSettings {
                    path,
                    named: config.settings_named,
                };
                read_user_section(&user, |file| file.api)?.unwrap_or_default()
            }
        };
        if let Some(port) = config.api_port {
            settings.port = port;
        }
        Ok(settings)
    }
}
