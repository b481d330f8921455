//! Integration tests: the real `stepwise` binary and engine against temp SQLite files, temp
//! workspaces and real child processes. Build the binary first: `cargo build -p stepwise-cli`.

mod support;

mod agent;
mod agent_edits;
mod app;
mod app_live;
mod app_notify;
mod app_run;
mod approvals;
mod budget_reservations;
mod ceilings;
mod cli;
mod command_live;
mod containment;
mod crash;
mod db_truth;
mod engine_api;
mod exact_cli;
mod examples;
mod fake_llm;
mod flow;
mod fuzz;
mod hostile_llm;
mod hostile_usage;
mod hostile_values;
mod interrupt;
mod launcher;
mod lifetimes;
mod live_load;
mod llm;
mod llm_bounds;
mod llm_examples;
mod llm_redirect;
mod llm_stream;
mod lock_files;
mod plan;
mod real_llm;
mod replay;
mod sandbox;
mod shared;
mod steps;
mod validation;
mod webdriver;
mod words;
mod workspace_settings;
