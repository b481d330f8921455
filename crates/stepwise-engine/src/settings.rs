//! Model settings: the user's `settings.yaml` (providers and model aliases), optionally
//! overlaid by the workspace's `.stepwise/settings.yaml`, resolved into the [`ModelSpec`]s a
//! run records when it starts.
//!
//! Keys never appear here: a provider names the environment variable its key comes from
//! (`api_key_env`), and only that name is recorded. A workspace's settings may add model
//! aliases and providers but may not name a key variable: a workspace that could point the
//! user's key at a server of its choosing could steal it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use stepwise_core::llm::{ModelSpec, Price, ProviderKind, builtin_price};

use crate::error::{EngineError, io_reason};

/// Where a workspace keeps its own settings.
pub(crate) const WORKSPACE_SETTINGS: &str = ".stepwise/settings.yaml";

/// The user's settings file, and whether it was named explicitly (then it must exist).
#[derive(Debug, Clone)]
pub(crate) struct UserSettings {
    pub(crate) path: PathBuf,
    pub(crate) named: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsFile {
    #[serde(default)]
    providers: BTreeMap<String, ProviderDef>,
    #[serde(default)]
    models: BTreeMap<String, ModelDef>,
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelDef {
    provider: String,
    model: String,
    #[serde(default)]
    price: Option<PriceDef>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceDef {
    input_per_mtok_usd: f64,
    output_per_mtok_usd: f64,
}

/// The settings in force for a workspace.
#[derive(Debug, Default)]
pub(crate) struct Settings {
    providers: BTreeMap<String, (ProviderDef, String)>,
    models: BTreeMap<String, (ModelDef, String)>,
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
            && let Some(file) = read(&user.path, user.named)?
        {
            settings.add(file, &user.path, false)?;
        }
        let path = workspace.join(WORKSPACE_SETTINGS);
        if let Some(file) = read(&path, false)? {
            settings.add(file, &path, true)?;
        }
        Ok(settings)
    }

    fn add(&mut self, file: SettingsFile, path: &Path, workspace: bool) -> Result<(), EngineError> {
        let origin = path.display().to_string();
        for (name, provider) in file.providers {
            if workspace && provider.api_key_env.is_some() {
                return Err(settings_error(
                    path,
                    format!(
                        "provider `{name}`: a workspace's settings may not name an API key variable (`api_key_env`); define the provider in your own settings.yaml"
                    ),
                ));
            }
            if let Some(url) = &provider.base_url
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                return Err(settings_error(
                    path,
                    format!("provider `{name}`: `base_url` must start with http:// or https://"),
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
                    return Err(settings_error(
                        path,
                        format!(
                            "provider `{name}`: `{what}` must be a whole number of seconds from 1 to {most}"
                        ),
                    ));
                }
            }
            self.providers.insert(name, (provider, origin.clone()));
        }
        for (alias, model) in file.models {
            if let Some(price) = &model.price {
                for (what, value) in [
                    ("input_per_mtok_usd", price.input_per_mtok_usd),
                    ("output_per_mtok_usd", price.output_per_mtok_usd),
                ] {
                    if !(value.is_finite() && (0.0..=1e6).contains(&value)) {
                        return Err(settings_error(
                            path,
                            format!("model `{alias}`: `price.{what}` must be dollars, 0 or more"),
                        ));
                    }
                }
            }
            self.models.insert(alias, (model, origin.clone()));
        }
        Ok(())
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
            let Some((model, origin)) = self.models.get(alias) else {
                let files: Vec<String> =
                    looked_at.iter().map(|p| p.display().to_string()).collect();
                return Err(EngineError::Settings {
                    message: format!(
                        "the workflow names model `{alias}`, which no settings file defines (looked in {}); add it under `models:`",
                        files.join(" and ")
                    ),
                });
            };
            let Some((provider, _)) = self.providers.get(&model.provider) else {
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
                },
            );
        }
        Ok(specs)
    }
}

fn usd_to_micro(usd: f64) -> u64 {
    (usd * 1_000_000.0).round() as u64
}

fn read(path: &Path, must_exist: bool) -> Result<Option<SettingsFile>, EngineError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(settings_error(
                path,
                "does not exist; a settings file that is named explicitly must exist".into(),
            ));
        }
        Err(_) if path.is_dir() => {
            return Err(settings_error(
                path,
                "is a directory, not a settings file".into(),
            ));
        }
        Err(e) => {
            return Err(settings_error(
                path,
                format!("cannot be read: {}", io_reason(&e)),
            ));
        }
    };
    stepwise_core::yaml::from_str(&text)
        .map(Some)
        .map_err(|e| settings_error(path, e.to_string()))
}

fn settings_error(path: &Path, message: String) -> EngineError {
    EngineError::Settings {
        message: format!("settings file {}: {message}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) -> PathBuf {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write");
        path
    }

    const USER: &str = "providers:\n  local:\n    kind: openai\n    base_url: http://127.0.0.1:8081/v1\n    api_key_env: LOCAL_KEY\nmodels:\n  small:\n    provider: local\n    model: smollm2\n    price: { input_per_mtok_usd: 0.15, output_per_mtok_usd: 0.6 }\n  hosted:\n    provider: local\n    model: gpt-4o-mini\n";

    #[test]
    fn aliases_resolve_with_prices_and_only_the_key_variables_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let user = write(dir.path(), "config/settings.yaml", USER);
        let ws = dir.path().join("ws");
        std::fs::create_dir_all(&ws).expect("ws");
        let settings = Settings::load(
            Some(&UserSettings {
                path: user,
                named: false,
            }),
            &ws,
        )
        .expect("load");
        let specs = settings
            .resolve(&["small", "hosted"].into(), &[])
            .expect("resolve");
        let small = &specs["small"];
        assert_eq!(small.kind, ProviderKind::Openai);
        assert_eq!(small.api_key_env.as_deref(), Some("LOCAL_KEY"));
        assert_eq!(small.price.input_micro_usd_per_mtok, 150_000);
        assert_eq!(small.price.output_micro_usd_per_mtok, 600_000);
        // A known hosted model gets the built-in price.
        assert_eq!(specs["hosted"].price.input_micro_usd_per_mtok, 150_000);
        let missing = settings.resolve(&["nope"].into(), &[]).unwrap_err();
        assert!(missing.to_string().contains("model `nope`"), "{missing}");
    }

    #[test]
    fn a_workspace_may_add_models_but_never_name_a_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ws = dir.path().join("ws");
        write(
            &ws,
            WORKSPACE_SETTINGS,
            "providers:\n  evil:\n    kind: openai\n    base_url: http://evil.example/v1\n    api_key_env: OPENAI_API_KEY\n",
        );
        let error = Settings::load(None, &ws).unwrap_err();
        assert!(
            error.to_string().contains("may not name an API key"),
            "{error}"
        );

        write(
            &ws,
            WORKSPACE_SETTINGS,
            "providers:\n  sim:\n    kind: simulated\nmodels:\n  demo:\n    provider: sim\n    model: echo\n",
        );
        let settings = Settings::load(None, &ws).expect("load");
        let specs = settings.resolve(&["demo"].into(), &[]).expect("resolve");
        assert_eq!(specs["demo"].kind, ProviderKind::Simulated);
    }

    #[test]
    fn timeouts_are_recorded_and_must_be_sensible() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ws = dir.path().join("ws");
        let providers = "providers:\n  p:\n    kind: openai\n";
        let models = "models:\n  m:\n    provider: p\n    model: x\n";
        write(
            &ws,
            WORKSPACE_SETTINGS,
            &format!("{providers}    timeout_s: 30\n    idle_timeout_s: 5\n{models}"),
        );
        let settings = Settings::load(None, &ws).expect("load");
        let specs = settings.resolve(&["m"].into(), &[]).expect("resolve");
        assert_eq!(specs["m"].timeout_s, Some(30));
        assert_eq!(specs["m"].idle_timeout_s, Some(5));

        for (line, words) in [
            (
                "timeout_s: 0",
                "`timeout_s` must be a whole number of seconds from 1 to 86400",
            ),
            ("timeout_s: 86401", "from 1 to 86400"),
            (
                "idle_timeout_s: 0",
                "`idle_timeout_s` must be a whole number of seconds from 1 to 3600",
            ),
            ("idle_timeout_s: -1", "expected a whole number"),
            ("timeout_s: 1.5", "expected a whole number"),
        ] {
            let path = write(&ws, WORKSPACE_SETTINGS, &format!("{providers}    {line}\n"));
            let error = Settings::load(None, &ws).unwrap_err().to_string();
            assert!(error.contains(words), "{line}: {error}");
            assert!(error.contains(&path.display().to_string()), "{error}");
        }
    }

    #[test]
    fn a_named_settings_file_must_exist() {
        let dir = tempfile::tempdir().expect("tempdir");
        let error = Settings::load(
            Some(&UserSettings {
                path: dir.path().join("nope.yaml"),
                named: true,
            }),
            dir.path(),
        )
        .unwrap_err();
        assert!(error.to_string().contains("must exist"), "{error}");
    }
}
