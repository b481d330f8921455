//! How the window is drawn where there is no GPU. Under a display without a render node (Xvfb,
//! a virtual machine, a remote desktop), WebKitGTK's accelerated compositing runs OpenGL in
//! software and composites the whole window for every frame: about 37 ms of CPU a frame,
//! measured, over half a core for a run streaming 15 updates a second. With compositing off,
//! WebKit paints only what changed (about 4 ms a frame). So where no render node exists the
//! window turns it off, unless the person chose (`WEBKIT_DISABLE_COMPOSITING_MODE` set either
//! way, or `STEPWISE_GPU_COMPOSITING` to keep it on). WebKitWebDriver's screenshots can hang in
//! that mode, so the end-to-end test that takes them keeps compositing on.

use tauri::{AppHandle, Manager, Runtime};

/// Chooses how the main window is drawn (see the module's doc).
pub fn choose<R: Runtime>(app: &AppHandle<R>) {
    let chosen = [
        "WEBKIT_DISABLE_COMPOSITING_MODE",
        "STEPWISE_GPU_COMPOSITING",
    ]
    .iter()
    .any(|name| std::env::var_os(name).is_some());
    if chosen || has_render_node() {
        return;
    }
    let Some(window) = app.get_webview_window("main") else {
        return;
    };
    #[cfg(target_os = "linux")]
    let result = window.with_webview(|webview| {
        use webkit2gtk::{HardwareAccelerationPolicy, SettingsExt, WebViewExt};
        if let Some(settings) = WebViewExt::settings(&webview.inner()) {
            settings.set_hardware_acceleration_policy(HardwareAccelerationPolicy::Never);
        }
    });
    #[cfg(not(target_os = "linux"))]
    let result: tauri::Result<()> = Ok(());
    if let Err(error) = result {
        tracing::warn!("could not set how the window is drawn: {error}");
    }
}

/// Whether a GPU render node exists (`/dev/dri/renderD*`).
fn has_render_node() -> bool {
    std::fs::read_dir("/dev/dri").is_ok_and(|dir| {
        dir.flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("renderD"))
    })
}
