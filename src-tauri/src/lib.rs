//! Stepwise's desktop app: a Tauri window over the engine, embedded in-process (no sidecar, no
//! server). This is the only crate that knows Tauri. It is a thin layer: commands
//! (`commands/`) adapt the engine handle to IPC, `live` forwards the engine's feeds to the
//! webview over channels, `watch` keeps the workspace view current, `triggers` makes the app a
//! watcher of its workspace's triggers (with a tray icon), `api` serves the local HTTP API
//! over the same engine handle, `telemetry` exports runs as traces when a collector is named, `alerts` tells the person
//! of a run or step slower than its `alert`, `demo` lays out the
//! embedded defaults on first start, and `view` shapes what the UI is shown (with its
//! TypeScript types generated from those very structs).
//!
//! It must never decide anything the engine decides (policy, approvals, budgets): it only asks.
//! The webview may call only the commands granted in `capabilities/default.json`.

mod alerts;
mod api;
mod commands;
mod demo;
mod digest;
mod error;
mod failures;
mod holders;
mod live;
mod model;
mod notify;
mod render;
mod state;
mod telemetry;
#[cfg(test)]
mod testing;
mod triggers;
mod view;
mod watch;

pub use error::{AppError, ErrorCode};
pub use state::AppState;

use tauri::Runtime;

/// Opens the window and runs until it is closed.
pub fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STEPWISE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    if cfg!(target_os = "linux") && !has_display() {
        anyhow::bail!(
            "there is no display to open the window on (DISPLAY and WAYLAND_DISPLAY are not set); \
             the CLI, `stepwise`, does the same jobs headless"
        );
    }
    // The state is opened before the window, so that a failing start (a database that cannot
    // be opened, say) is an error said in words rather than a panic in the event loop.
    let state = AppState::open()?;
    let app = builder(tauri::Builder::default(), state)
        .build(tauri::generate_context!())
        .map_err(|e| anyhow::anyhow!("Stepwise could not start: {e}"))?;
    app.run(|_, _| {});
    Ok(())
}

fn has_display() -> bool {
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
}

/// The app on any runtime (the real one, or Tauri's mock runtime in tests): its plugins,
/// commands and state, and its live feeds started once the app is set up.
pub fn builder<R: Runtime>(builder: tauri::Builder<R>, state: AppState) -> tauri::Builder<R> {
    let builder = match notify::plugin() {
        Some(plugin) => builder.plugin(plugin),
        None => builder,
    };
    builder
        .manage(state)
        .invoke_handler(commands::handler())
        .on_window_event(triggers::on_window_event)
        .setup(|app| {
            render::choose(app.handle());
            live::start(app.handle());
            triggers::start(app.handle());
            api::start(app.handle());
            telemetry::start(app.handle());
            alerts::start(app.handle());
            Ok(())
        })
}

/// Writes the TypeScript twins of the view types to `dir` (ui/src/generated).
pub fn export_types(dir: &std::path::Path) -> Result<(), ts_rs::ExportError> {
    view::export_all(dir)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    fn files(dir: &Path) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "ts") {
                let name = entry.file_name().to_string_lossy().into_owned();
                out.insert(name, std::fs::read_to_string(&path).unwrap_or_default());
            }
        }
        out
    }

    /// The UI's types are generated from the Rust ones; regenerate them with
    /// `STEPWISE_WRITE_TYPES=1 cargo test -p stepwise-app generated_types`.
    #[test]
    fn generated_types_are_current() {
        let committed = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ui/src/generated");
        let fresh = tempfile::tempdir().expect("a temp dir");
        super::export_types(fresh.path()).expect("export the types");
        if std::env::var_os("STEPWISE_WRITE_TYPES").is_some() {
            let _ = std::fs::remove_dir_all(&committed);
            super::export_types(&committed).expect("write the types");
            return;
        }
        assert_eq!(
            files(&committed),
            files(fresh.path()),
            "ui/src/generated is stale: run STEPWISE_WRITE_TYPES=1 cargo test -p stepwise-app generated_types"
        );
    }
}
