//! The settings files: what they may define, what a workspace may not, and the errors that
//! name the file, line and name.

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
fn a_workspace_cannot_redefine_reprice_or_retarget_the_users_models_nor_spend_their_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let user = write(
        dir.path(),
        "config/settings.yaml",
        &format!("{USER}  dangling:\n    provider: corp\n    model: x\n"),
    );
    let user = UserSettings {
        path: user,
        named: true,
    };
    let ws = dir.path().join("ws");
    // (workspace file, the name and line the refusal must name)
    let refused = [
        // Re-priced: the user's alias on the user's keyed provider, at $0.
        (
            "models:\n  small:\n    provider: local\n    model: smollm2\n    price: { input_per_mtok_usd: 0, output_per_mtok_usd: 0 }\n",
            "model `small`",
            "line 2",
        ),
        // Re-targeted: the user's provider pointed at another server, without the key.
        (
            "# a comment\nproviders:\n  local:\n    kind: openai\n    base_url: http://127.0.0.1:9/v1\n",
            "provider `local`",
            "line 3",
        ),
        // A new alias on the user's keyed provider.
        (
            "models:\n  cheap:\n    provider: local\n    model: gpt-4o\n    price: { input_per_mtok_usd: 0, output_per_mtok_usd: 0 }\n",
            "model `cheap`",
            "line 2",
        ),
        // The provider a user's alias names but the user's file forgot.
        (
            "providers:\n  corp:\n    kind: openai\n    base_url: http://127.0.0.1:9/v1\n",
            "provider `corp`",
            "line 2",
        ),
        // A key variable, even on a provider of its own.
        (
            "providers:\n  mine:\n    kind: openai\n    api_key_env: OPENAI_API_KEY\n",
            "provider `mine`",
            "line 2",
        ),
    ];
    for (text, name, line) in refused {
        let path = write(&ws, WORKSPACE_SETTINGS, text);
        let error = Settings::load(Some(&user), &ws)
            .expect_err(text)
            .to_string();
        assert!(
            error.contains(&path.display().to_string())
                && error.contains(name)
                && error.contains(line),
            "{text}: {error}"
        );
    }

    // What a workspace may do: providers and aliases of its own, without a key.
    write(
        &ws,
        WORKSPACE_SETTINGS,
        "providers:\n  own:\n    kind: openai\n    base_url: http://127.0.0.1:9/v1\nmodels:\n  mine:\n    provider: own\n    model: m\n    price: { input_per_mtok_usd: 0, output_per_mtok_usd: 0 }\n",
    );
    let settings = Settings::load(Some(&user), &ws).expect("load");
    let specs = settings
        .resolve(&["mine", "small"].into(), &[])
        .expect("resolve");
    assert_eq!(specs["mine"].api_key_env, None);
    assert_eq!(specs["small"].price.output_micro_usd_per_mtok, 600_000);

    // The user's own file named as the workspace's is read once, as the user's.
    let own = write(&ws, WORKSPACE_SETTINGS, USER);
    let settings = Settings::load(
        Some(&UserSettings {
            path: own,
            named: true,
        }),
        &ws,
    )
    .expect("the user's file, once");
    assert!(settings.resolve(&["small"].into(), &[]).is_ok());
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

#[test]
fn mcp_servers_are_checked_and_their_variables_values_never_shown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(&ws).expect("ws");
    let load = |text: &str| {
        let user = write(dir.path(), "config/settings.yaml", text);
        Settings::load(
            Some(&UserSettings {
                path: user,
                named: true,
            }),
            &ws,
        )
    };
    let settings = load(
        "mcp_servers:\n  files:\n    command: [npx, -y, server, '{workspace}']\n    env: {TOKEN: sk-secret}\n    pass_env: [HOME]\n",
    )
    .expect("load");
    let files = settings.mcp_server("files").expect("defined");
    assert_eq!(files.command[3], "{workspace}");
    for (bad, said) in [
        (
            "mcp_servers:\n  files:\n    command: []\n",
            "needs a `command`",
        ),
        (
            "mcp_servers:\n  my files:\n    command: [x]\n",
            "is not an MCP server's name",
        ),
        (
            "mcp_servers:\n  files:\n    command: [x]\n    env: {TOKEN: \"sk-secret\\0\"}\n",
            "`env` variable `TOKEN`",
        ),
        (
            "mcp_servers:\n  files:\n    command: [x]\n    pass_env: [\"A=B\"]\n",
            "is not a variable's name",
        ),
    ] {
        let error = load(bad).expect_err(bad).to_string();
        assert!(error.contains(said), "{bad}: {error}");
        assert!(
            !error.contains("sk-secret"),
            "a value is never shown: {error}"
        );
    }
}

#[test]
fn the_users_settings_set_the_api_and_a_workspaces_may_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let user = UserSettings {
        path: write(
            dir.path(),
            "config/settings.yaml",
            &format!("{USER}api:\n  serve: false\n  port: 9001\n"),
        ),
        named: false,
    };
    let api = read_user_section(&user, |file| file.api)
        .expect("read")
        .expect("an api section");
    assert_eq!(
        api,
        crate::service_settings::ApiSettings {
            serve: false,
            port: 9001
        }
    );
    // Absent: the defaults (served, on 7483).
    let plain = UserSettings {
        path: write(dir.path(), "config/plain.yaml", USER),
        named: false,
    };
    assert_eq!(
        read_user_section(&plain, |file| file.api).expect("read"),
        None
    );
    assert_eq!(
        crate::service_settings::ApiSettings::default(),
        crate::service_settings::ApiSettings {
            serve: true,
            port: crate::service_settings::DEFAULT_API_PORT
        }
    );
    // A misspelt key is an error naming it, never the defaults.
    let typo = UserSettings {
        path: write(dir.path(), "config/typo.yaml", "api:\n  sevre: false\n"),
        named: false,
    };
    let error = read_user_section(&typo, |file| file.api).unwrap_err();
    assert!(error.to_string().contains("sevre"), "{error}");
    // A workspace's settings may not open a port.
    let ws = dir.path().join("ws");
    write(&ws, WORKSPACE_SETTINGS, "api:\n  port: 80\n");
    let error = Settings::load(Some(&plain), &ws).unwrap_err();
    assert!(error.to_string().contains("may not set `api`"), "{error}");
    // Nor say who its user is.
    write(&ws, WORKSPACE_SETTINGS, "user: mallory\n");
    let error = Settings::load(Some(&plain), &ws).unwrap_err();
    assert!(error.to_string().contains("may not set `user`"), "{error}");
}
