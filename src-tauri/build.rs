//! Tauri's build step, with the app's own commands given permissions of their own, so that the
//! webview may call only the commands its capability grants (see `capabilities/`).

fn main() {
    let attributes = tauri_build::Attributes::new()
        .app_manifest(tauri_build::AppManifest::new().commands(stepwise_commands()));
    // Relative relocations packed (DT_RELR, glibc 2.36+): the loader reads a few KB at start
    // instead of a 4 MB table that would stay resident. Identical functions folded into one
    // (lld's ICF; Rust promises no distinct addresses for functions): 1.7 MB less code in a
    // debug build. Both lower the app's idle memory (BENCHMARKS.md).
    // Code folding needs lld, Rust's default linker on x86_64 Linux since 1.90 (GNU ld has no
    // ICF); packed relocations are in GNU ld too (2.38+).
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.contains("-linux-") {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    if target == "x86_64-unknown-linux-gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,--icf=all");
    }
    if let Err(error) = tauri_build::try_build(attributes) {
        panic!("tauri build step failed: {error:#}");
    }
}

/// Every command the app defines (`src/commands/`); the capability grants each one by name.
fn stepwise_commands() -> &'static [&'static str] {
    &[
        "app_info",
        "list_runs",
        "get_run",
        "get_steps",
        "get_step",
        "get_decisions",
        "get_events",
        "pause_run",
        "resume_run",
        "cancel_run",
        "resolve_step",
        "replay_run",
        "list_approvals",
        "approve_step",
        "reject_step",
        "list_workflows",
        "start_run",
        "workspace_tree",
        "cost_overview",
        "subscribe_live",
        "follow_run",
        "propose_rewind",
        "rewind_run",
        "fork_run",
        "list_forks",
        "compare_two_runs",
        "list_step_types",
        "list_memories",
        "memory_entries",
        "forget_memory",
        "send_signal",
        "database_settings",
        "check_database",
        "save_database",
    ]
}
