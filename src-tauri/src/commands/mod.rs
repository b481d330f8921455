//! The IPC commands: thin adapters from the webview to the engine handle, one file per view.
//! Every one is listed in `build.rs` and granted by name in `capabilities/default.json`.

mod approvals;
mod cost;
mod live;
mod memory;
mod run_view;
mod runs;
mod settings;
mod signals;
mod step_types;
#[cfg(test)]
mod tests;
mod time_travel;
mod workflows;
mod workspace;

#[cfg(test)]
pub use run_view::{run_overview, step_detail};
use tauri::Runtime;
use tauri::ipc::Invoke;

/// The handler of every command.
pub fn handler<R: Runtime>() -> impl Fn(Invoke<R>) -> bool + Send + Sync + 'static {
    tauri::generate_handler![
        runs::app_info,
        runs::list_runs,
        run_view::get_run,
        run_view::get_steps,
        run_view::get_step,
        run_view::get_decisions,
        run_view::get_events,
        runs::pause_run,
        runs::resume_run,
        runs::cancel_run,
        runs::resolve_step,
        runs::replay_run,
        approvals::list_approvals,
        approvals::approve_step,
        approvals::reject_step,
        workflows::list_workflows,
        workflows::start_run,
        workspace::workspace_tree,
        cost::cost_overview,
        live::subscribe_live,
        live::follow_run,
        time_travel::propose_rewind,
        time_travel::rewind_run,
        time_travel::fork_run,
        time_travel::list_forks,
        time_travel::compare_two_runs,
        step_types::list_step_types,
        memory::list_memories,
        memory::memory_entries,
        memory::forget_memory,
        signals::send_signal,
        settings::database_settings,
        settings::check_database,
        settings::save_database,
    ]
}
