//! The `stepwise-app` binary: the desktop window over the embedded engine.

fn main() {
    stepwise_engine::start_command_launcher();
    if let Err(error) = stepwise_app::run() {
        eprintln!("stepwise-app: {error:#}");
        std::process::exit(1);
    }
}
