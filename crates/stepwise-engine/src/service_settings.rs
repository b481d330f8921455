//! The user's settings for the services a long-lived process runs beside its runs: the local
//! HTTP API (`api:` in the user's `settings.yaml`). A workspace's settings may not set them: a
//! checked-out repository must not open a port on the user's machine.

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

impl Engine {
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
