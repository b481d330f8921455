//! Model settings: the user's `settings.yaml` (providers and model aliases), optionally
//! overlaid by the workspace's `.stepwise/settings.yaml`, resolved into the [`ModelSpec`]s a
//! run records when it starts.
//!
//! Keys never appear here: a provider names the environment variable its key comes from
//! (`api_key_env`), and only that name is recorded.
//!
//! A workspace is not trusted with the user's money or keys: its settings may add providers
//! and model aliases of its own, which carry no key, but may not redefine, re-price or
//! re-target a provider or alias of the user's, nor put an alias of its own on a provider
//! whose key comes from the user (a price of 0 there would spend the user's money without a
//! budget ever asking). Such a file is refused whole, naming the file, line and name.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;
use stepwise_core::llm::{ModelSpec, Price, ProviderKind, builtin_price};

use crate::config_file::{Links, Unreadable, read_text};
use crate::error::EngineError;
use crate::mcp::def::McpServerDef;

/// Where a workspace keeps its own settings.
pub(crate) const WORKSPACE_SETTINGS: &str = ".stepwise/settings.yaml";

/// The user's settings file, and whether it was named explicitly (then it must exist).
#[derive(Debug, Clone)]
pub(crate) struct UserSettings {
    pub(crate) path: PathBuf,
    pub(crate) named: bool,
}

/// A settings file as written; each name keeps its line, for the errors that name it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SettingsFile {
    #[serde(default)]
    providers: HashMap<Spanned<String>, ProviderDef>,
    #[serde(default)]
    models: HashMap<Spanned<String>, ModelDef>,
    /// MCP servers agent steps may use (the user's settings only: they run programs).
    #[serde(default)]
    mcp_servers: HashMap<Spanned<String>, McpServerDef>,
    /// The local API (the user's settings only; see `service_settings`).
    #[serde(default)]
    pub(crate) api: Option<Spanned<crate::service_settings::ApiSettings>>,
    /// Where runs are exported as traces (the user's settings only).
    #[serde(default)]
    pub(crate) telemetry: Option<Spanned<crate::service_settings::TelemetrySettings>>,
    /// The PostgreSQL database shared by a team (the user's settings only).
    #[serde(default)]
    pub(crate) database: Option<Spanned<crate::service_settings::DatabaseSettings>>,
    /// Who this user's processes act as, over the OS user (the user's settings only;
    /// `STEPWISE_USER` wins over it): what decisions record and `approvers` name.
    #[serde(default)]
    pub(crate) user: Option<Spanned<String>>,
}

/// Where a settings file came from: the user's own, or a workspace's (which is not trusted
/// with the user's keys or money).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    User,
    Workspace,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderDef {
    kind: ProviderKind,
    #[serde(default)]
    base_url: Option<String>,
    #[serde(default)]
    api_key_env: Option<String>,
    /// Stream replies (default true).
    #[serde(default)]
    stream: Option<bool>,
    /// The most one call may take, in seconds.
    #[serde(default)]
    timeout_s: Option<u32>,
    /// The most a reply may stay silent, in seconds.
    #[serde(default)]
    idle_timeout_s: Option<u32>,
}

/// The most `timeout_s` may say: a day.
const MAX_TIMEOUT_S: u32 = 86_400;
/// The most `idle_timeout_s` may say: an hour.
const MAX_IDLE_TIMEOUT_S: u32 = 3_600;
/// What `context_tokens` may say.
const MIN_CONTEXT_TOKENS: u32 = 512;
const MAX_CONTEXT_TOKENS: u32 = 10_000_000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelDef {
    provider: String,
    model: String,
    #[serde(default)]
    price: Option<PriceDef>,
    /// How many tokens its context holds (an agent's conversation is shortened to fit).
    #[serde(default)]
    context_tokens: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceDef {
    input_per_mtok_usd: f64,
    output_per_mtok_usd: f64,
}

/// A definition and the file it came from.
#[derive(Debug)]
struct Defined<T> {
    def: T,
    file: String,
    origin: Origin,
}

/// The settings in force for a workspace.
#[derive(Debug, Default)]
pub(crate) struct Settings {
    providers: BTreeMap<String, Defined<ProviderDef>>,
    models: BTreeMap<String, Defined<ModelDef>>,
    mcp_servers: BTreeMap<String, McpServerDef>,
}

impl Settings {
    /// The user's settings, then the workspace's on top. A missing file has nothing (unless
    /// it was named explicitly); a broken one is an error, never silently ignored.
    pub(crate) fn load(
        user: Option<&UserSettings>,
        workspace: &Path,
    ) -> Result<Settings, EngineError> {
        let mut settings = Settings::default();
        if let Some(user) = user
            && let Some(file) = read(&user.path, user.named, Links::Follow)?
        {
            settings.add(file, &user.path, Origin::User)?;
        }
        let path = workspace.join(WORKSPACE_SETTINGS);
        // The user may name the workspace's file as their own: it is then read once, as theirs.
        let same_file = user.is_some_and(|user| {
            matches!(
                (std::fs::canonicalize(&user.path), std::fs::canonicalize(&path)),
                (Ok(a), Ok(b)) if a == b
            )
        });
        if !same_file && let Some(file) = read(&path, false, Links::Refuse)? {
            settings.add(file, &path, Origin::Workspace)?;
        }
        Ok(settings)
    }

    /// Adds a file's definitions, checked whole before any is added, in line order so that
    /// the first problem in the file is the one named.
    fn add(&mut self, file: SettingsFile, path: &Path, origin: Origin) -> Result<(), EngineError> {
        let mut providers: Vec<_> = file.providers.into_iter().collect();
        providers.sort_by_key(|(name, _)| name.referenced.line());
        let mut models: Vec<_> = file.models.into_iter().collect();
        models.sort_by_key(|(alias, _)| alias.referenced.line());
        for (name, provider) in &providers {
            self.check_provider(name, provider, origin)
                .map_err(|message| settings_error_at(path, name, message))?;
        }
        for (alias, model) in &models {
            self.check_model(alias, model, origin, &providers)
                .map_err(|message| settings_error_at(path, alias, message))?;
        }
        if origin == Origin::Workspace
            && let Some(api) = &file.api
        {
            return Err(settings_error(
                path,
                format!(
                    "line {}: a workspace's settings may not set `api` (it opens a port on your machine); set it in your own settings",
                    api.referenced.line()
                ),
            ));
        }
        if origin == Origin::Workspace
            && let Some(telemetry) = &file.telemetry
        {
            return Err(settings_error(
                path,
                format!(
                    "line {}: a workspace's settings may not set `telemetry` (it sends what your runs do to a host); set it in your own settings",
                    telemetry.referenced.line()
                ),
            ));
        }
        if origin == Origin::Workspace
            && let Some(user) = &file.user
        {
            return Err(settings_error(
                path,
                format!(
                    "line {}: a workspace's settings may not set `user` (it says who answers your runs' questions); set it in your own settings",
                    user.referenced.line()
                ),
            ));
        }
        if origin == Origin::Workspace
            && let Some(database) = &file.database
        {
            return Err(settings_error(
                path,
                format!(
                    "line {}: a workspace's settings may not set `database` (it decides where your runs are kept); set it in your own settings",
                    database.referenced.line()
                ),
            ));
        }
        let mut servers: Vec<_> = file.mcp_servers.into_iter().collect();
        servers.sort_by_key(|(name, _)| name.referenced.line());
        for (name, server) in &servers {
            let problem = if origin == Origin::Workspace {
                Err("a workspace's settings may not define MCP servers (they run programs as you); define it in your own settings".to_string())
            } else {
                server.check(&name.value)
            };
            problem.map_err(|message| settings_error_at(path, name, message))?;
        }
        let file = path.display().to_string();
        for (name, def) in providers {
            let file = file.clone();
            self.providers
                .insert(name.value, Defined { def, file, origin });
        }
        for (alias, def) in models {
            let file = file.clone();
            self.models
                .insert(alias.value, Defined { def, file, origin });
        }
        for (name, def) in servers {
            self.mcp_servers.insert(name.value, def);
        }
        Ok(())
    }

    fn check_provider(
        &self,
        name: &Spanned<String>,
        provider: &ProviderDef,
        origin: Origin,
    ) -> Result<(), String> {
        let name = &name.value;
        if origin == Origin::Workspace {
            if let Some(user) = self.user_provider(name) {
                return Err(format!(
                    "provider `{name}` is defined in your settings ({}); a workspace's settings may add providers of their own but not redefine or re-target yours",
                    user.file
                ));
            }
            if let Some((alias, user)) = self
                .models
                .iter()
                .find(|(_, m)| m.origin == Origin::User && m.def.provider == *name)
            {
                return Err(format!(
                    "provider `{name}` is the one your model `{alias}` uses ({}); a workspace's settings may not define it for you",
                    user.file
                ));
            }
            if provider.api_key_env.is_some() {
                return Err(format!(
                    "provider `{name}`: a workspace's settings may not name an API key variable (`api_key_env`); define the provider in your own settings.yaml"
                ));
            }
        }
        if let Some(url) = &provider.base_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(format!(
                "provider `{name}`: `base_url` must start with http:// or https://"
            ));
        }
        for (what, value, most) in [
            ("timeout_s", provider.timeout_s, MAX_TIMEOUT_S),
            (
                "idle_timeout_s",
                provider.idle_timeout_s,
                MAX_IDLE_TIMEOUT_S,
            ),
        ] {
            if value.is_some_and(|s| !(1..=most).contains(&s)) {
                return Err(format!(
                    "provider `{name}`: `{what}` must be a whole number of seconds from 1 to {most}"
                ));
            }
        }
        Ok(())
    }

    fn check_model(
        &self,
        alias: &Spanned<String>,
        model: &ModelDef,
        origin: Origin,
        same_file: &[(Spanned<String>, ProviderDef)],
    ) -> Result<(), String> {
        let alias = &alias.value;
        if origin == Origin::Workspace {
            if let Some(user) = self.models.get(alias).filter(|m| m.origin == Origin::User) {
                return Err(format!(
                    "model `{alias}` is defined in your settings ({}); a workspace's settings may add models of their own but not redefine, re-price or re-target yours",
                    user.file
                ));
            }
            let own = same_file
                .iter()
                .any(|(name, _)| name.value == model.provider);
            if !own
                && let Some(user) = self.user_provider(&model.provider)
                && let Some(var) = &user.def.api_key_env
            {
                return Err(format!(
                    "model `{alias}` uses provider `{}`, whose key (`{var}`) comes from your settings ({}); a workspace's models may only use providers without your key",
                    model.provider, user.file
                ));
            }
        }
        if model
            .context_tokens
            .is_some_and(|n| !(MIN_CONTEXT_TOKENS..=MAX_CONTEXT_TOKENS).contains(&n))
        {
            return Err(format!(
                "model `{alias}`: `context_tokens` must be from {MIN_CONTEXT_TOKENS} to {MAX_CONTEXT_TOKENS}"
            ));
        }
        if let Some(price) = &model.price {
            for (what, value) in [
                ("input_per_mtok_usd", price.input_per_mtok_usd),
                ("output_per_mtok_usd", price.output_per_mtok_usd),
            ] {
                if !(value.is_finite() && (0.0..=1e6).contains(&value)) {
                    return Err(format!(
                        "model `{alias}`: `price.{what}` must be dollars, from 0 to 1000000"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The MCP server the user's settings define under `name`.
    pub(crate) fn mcp_server(&self, name: &str) -> Option<&McpServerDef> {
        self.mcp_servers.get(name)
    }

    fn user_provider(&self, name: &str) -> Option<&Defined<ProviderDef>> {
        self.providers
            .get(name)
            .filter(|p| p.origin == Origin::User)
    }

    /// What each alias means, for the aliases a workflow names. An alias the settings do not
    /// define is an error that names the settings files looked at.
    pub(crate) fn resolve(
        &self,
        aliases: &BTreeSet<&str>,
        looked_at: &[PathBuf],
    ) -> Result<BTreeMap<String, ModelSpec>, EngineError> {
        let mut specs = BTreeMap::new();
        for &alias in aliases {
            let Some(Defined {
                def: model,
                file: origin,
                ..
            }) = self.models.get(alias)
            else {
                let files: Vec<String> =
                    looked_at.iter().map(|p| p.display().to_string()).collect();
                return Err(EngineError::Settings {
                    message: format!(
                        "the workflow names model `{alias}`, which no settings file defines (looked in {}); add it under `models:`",
                        files.join(" and ")
                    ),
                });
            };
            let Some(Defined { def: provider, .. }) = self.providers.get(&model.provider) else {
                return Err(EngineError::Settings {
                    message: format!(
                        "{origin}: model `{alias}` names provider `{}`, which no settings file defines",
                        model.provider
                    ),
                });
            };
            let price = match &model.price {
                Some(p) => Price {
                    input_micro_usd_per_mtok: usd_to_micro(p.input_per_mtok_usd),
                    output_micro_usd_per_mtok: usd_to_micro(p.output_per_mtok_usd),
                },
                None => builtin_price(provider.kind, &model.model).unwrap_or_default(),
            };
            specs.insert(
                alias.to_string(),
                ModelSpec {
                    provider: model.provider.clone(),
                    kind: provider.kind,
                    base_url: provider.base_url.clone(),
                    model: model.model.clone(),
                    api_key_env: provider.api_key_env.clone(),
                    price,
                    stream: provider.stream.unwrap_or(true),
                    timeout_s: provider.timeout_s,
                    idle_timeout_s: provider.idle_timeout_s,
                    context_tokens: model.context_tokens,
                },
            );
        }
        Ok(specs)
    }
}

fn usd_to_micro(usd: f64) -> u64 {
    (usd * 1_000_000.0).round() as u64
}

/// The most a settings file may be: real ones are a few hundred bytes.
const MAX_SETTINGS_BYTES: u64 = 1024 * 1024;

fn read(path: &Path, must_exist: bool, links: Links) -> Result<Option<SettingsFile>, EngineError> {
    let text = match read_text(path, MAX_SETTINGS_BYTES, links) {
        Ok(text) => text,
        Err(Unreadable::Missing) if !must_exist => return Ok(None),
        Err(Unreadable::Missing) => {
            return Err(settings_error(
                path,
                "does not exist; a settings file that is named explicitly must exist".into(),
            ));
        }
        Err(problem) => return Err(settings_error(path, problem.to_string())),
    };
    stepwise_core::yaml::from_str(&text)
        .map(Some)
        .map_err(|e| settings_error(path, e.to_string()))
}

/// One section of the user's settings file (`None` when the file or the section is missing);
/// the whole file is read and checked, so a broken file is an error wherever it is broken.
pub(crate) fn read_user_section<T>(
    user: &UserSettings,
    section: impl FnOnce(SettingsFile) -> Option<Spanned<T>>,
) -> Result<Option<T>, EngineError> {
    let file = read(&user.path, user.named, Links::Follow)?;
    Ok(file.and_then(section).map(|spanned| spanned.value))
}

/// An error about one name in a settings file, with the line the name is on.
fn settings_error_at(path: &Path, name: &Spanned<String>, message: String) -> EngineError {
    EngineError::Settings {
        message: format!(
            "settings file {}, line {}: {message}",
            path.display(),
            name.referenced.line()
        ),
    }
}

fn settings_error(path: &Path, message: String) -> EngineError {
    EngineError::Settings {
        message: format!("settings file {}: {message}", path.display()),
    }
}

#[cfg(test)]
#[path = "settings_tests.rs"]
mod tests;
