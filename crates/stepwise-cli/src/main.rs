//! `stepwise`: run, inspect, approve, resume and replay workflows headless, on the same engine
//! and database as the desktop app. It is a thin client of `stepwise-engine`: it parses
//! arguments, calls the engine and prints; it never decides anything itself.

mod audit;
mod compare;
mod cost;
mod db;
mod decide;
mod exit;
mod family;
mod follow;
mod fork;
mod inspect;
mod memory;
mod output;
mod progress;
mod replay;
mod rewind;
mod runs;
mod runs_list;
mod serve;
mod signal;
mod step_through;
mod step_types;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use stepwise_engine::{Durability, Engine, EngineConfig, EngineError, Named, RefusalKind};

use crate::exit::Exit;

#[derive(Parser)]
#[command(
    name = "stepwise",
    version,
    about = "Run AI-agent workflows as recorded, approvable, replayable steps"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: CliCommand,
}

#[derive(Args)]
struct Global {
    /// The database (else $STEPWISE_DB, else stepwise.db in the user's data directory).
    #[arg(long, global = true)]
    db: Option<PathBuf>,
    /// The user's policy file (else $STEPWISE_USER_POLICY, else policy.yaml in the user's
    /// stepwise config directory).
    #[arg(long, global = true)]
    user_policy: Option<PathBuf>,
    /// The model settings file (else $STEPWISE_SETTINGS, else settings.yaml in the user's
    /// stepwise config directory).
    #[arg(long, global = true)]
    settings: Option<PathBuf>,
    /// How hard SQLite flushes each commit (else $STEPWISE_SYNC, else full).
    #[arg(long, global = true, value_enum)]
    sync: Option<Sync>,
    /// Print JSON instead of text (reading commands).
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Sync {
    Full,
    Normal,
}

#[derive(Subcommand)]
enum CliCommand {
    /// Check workflow files and report every error with file, line, column and step.
    Validate {
        files: Vec<PathBuf>,
        /// The workspace whose `workflows/` a `workflow` step's file may be in, and whose
        /// `.stepwise/steps/` declares custom step types (default: the current directory).
        #[arg(long)]
        workspace: Option<PathBuf>,
    },
    /// Start a run and drive it until it finishes or waits for approval.
    Run(runs::RunArgs),
    /// List runs, newest first.
    Runs {
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Show a run: its steps, statuses, durations and what waits for whom.
    Show {
        /// The run: its id, or any prefix of it that names one run (as `stepwise runs` shows).
        run: String,
    },
    /// Check that a run's log is as it was recorded: its hash chain from the first event, and
    /// every blob it names. Says where it breaks (exit code 1), or the last link, which an
    /// export of the run carries.
    Verify {
        /// The run: its id, or any prefix of it that names one run (as `stepwise runs` shows).
        run: String,
    },
    /// Write a run's audit trail: one self-contained HTML file (no script, no network) with
    /// its timeline, every decision (who, manual or which rule, when, the hash of what was
    /// approved), each file change's diff, each command's output, each model call's tokens and
    /// cost, and the last link of its hash chain (check it with `stepwise verify`). `--json`
    /// writes the same as JSON.
    Export {
        /// The run: its id, or any prefix of it that names one run (as `stepwise runs` shows).
        run: String,
        /// The file to write; standard output when not given.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Compare two runs: their workflows, inputs, and step by step every request, result and
    /// decision (times left out). Names the first difference; exit code 0 when they recorded
    /// the same, 1 when they differ.
    Diff {
        /// The first run (id or unique prefix).
        first: String,
        /// The second run.
        second: String,
    },
    /// Print a run's event log.
    Events {
        /// The run: its id, or any prefix of it that names one run (as `stepwise runs` shows).
        run: String,
        /// Keep printing events as they are committed, by any process, until the run ends.
        #[arg(long)]
        follow: bool,
    },
    /// List what waits for a person, across runs (or in one run).
    Approvals {
        /// Only this run (its id or a unique prefix); default: every run.
        run: Option<String>,
        /// Keep printing questions as they appear and as they are answered (until the run
        /// ends, when RUN is given).
        #[arg(long)]
        follow: bool,
    },
    /// Approve a step's proposal (optionally edited) and continue the run.
    Approve(decide::ApproveArgs),
    /// Put the workspace's files back as they were when a step of a run started: every file
    /// the run changed since, from the contents its checkpoints kept. Shows the proposal (a
    /// diff per file; files something else changed since are conflicts, left alone unless
    /// named with --include) and its hash; --proposal HASH (or --yes) does it, recorded in the
    /// run's log. A run that finished, failed, was cancelled or waits can be rewound.
    Rewind(rewind::RewindArgs),
    /// Start a new run from a step of a run: the events before the step are taken as they
    /// were recorded (nothing before it is performed again, no model called again), then it
    /// goes on with changed inputs (--input) or another workflow (--workflow). The workspace
    /// is first put back as it was then (shown as a proposal to approve with --proposal HASH),
    /// or copied into another directory (--workspace DIR).
    Fork(fork::ForkArgs),
    /// Let a run past the pause before a step (`run --step`, `--break STEP`, a workflow's
    /// `breakpoints`): every step waiting to start, or the one named; `--all` also stops
    /// pausing for the rest of the run.
    Continue(step_through::ContinueArgs),
    /// Answer the question a step's agent asks (its `ask_person` tool) and continue the run.
    Answer(decide::AnswerArgs),
    /// Reject a step's proposal with a reason and continue the run.
    Reject {
        /// The run: its id, or any prefix of it that names one run (as `stepwise runs` shows).
        run: String,
        /// The step, by its `id` in the workflow.
        step: String,
        #[arg(long)]
        reason: String,
        /// The proposal hash you looked at (or a prefix); refused if the step now waits on
        /// another proposal.
        #[arg(long, value_name = "HASH")]
        proposal: Option<String>,
        #[command(flatten)]
        wait: runs::Wait,
    },
    /// Continue a run (or, without RUN, every unfinished run).
    Resume {
        /// The run (its id or a unique prefix); default: every unfinished run.
        run: Option<String>,
        #[command(flatten)]
        wait: runs::Wait,
    },
    /// Decide about an operation whose outcome is unknown after a crash.
    Resolve(runs::ResolveArgs),
    /// Re-drive a recorded run without side effects and check every decision matches.
    Replay(replay::ReplayArgs),
    /// Pause a run: running operations finish, nothing new starts until `resume`.
    Pause {
        /// The run: its id, or any prefix of it that names one run (as `stepwise runs` shows).
        run: String,
        #[command(flatten)]
        wait: runs::Wait,
    },
    /// Cancel a run: running commands are killed, nothing new starts.
    Cancel {
        /// The run: its id, or any prefix of it that names one run (as `stepwise runs` shows).
        run: String,
        #[command(flatten)]
        wait: runs::Wait,
    },
    /// Record a signal, which a `wait_signal` step waiting for it takes (its data is that
    /// step's output); continue the run it wakes when nobody drives it.
    Signal(signal::SignalArgs),
    /// Serve the local HTTP API on 127.0.0.1 (for editors and scripts) until Ctrl-C: every
    /// request needs the bearer token in the file it names; runs started through it are
    /// driven here. `--openapi` prints the API's OpenAPI 3.1 document instead.
    Serve {
        #[command(flatten)]
        args: serve::ServeArgs,
        /// Print the OpenAPI document and exit.
        #[arg(long)]
        openapi: bool,
    },
    /// Watch workspaces for workflows with triggers (`on:` files, schedule, signal) and start
    /// and drive their runs here, until Ctrl-C.
    Watch(watch::WatchArgs),
    /// The memories agent steps share (`memory: NAME`): without NAME, each memory and how
    /// many entries it holds; with it, its entries; with `--forget KEY`, remove one.
    Memory {
        name: Option<String>,
        #[arg(long, value_name = "KEY")]
        forget: Option<String>,
    },
    /// What a run's model calls cost: in all, per step, per model and per day.
    Cost {
        /// The run: its id, or any prefix of it that names one run (as `stepwise runs` shows).
        run: String,
    },
    /// Print the JSON Schema of the workflow format (with `--step-type`, of a custom step
    /// type's manifest).
    Schema {
        #[arg(long)]
        step_type: bool,
    },
    /// List the step types a workflow may use (`type:`), with the fields each takes: the
    /// built-in ones, and the custom ones of the workspace's `.stepwise/steps/` and the
    /// user's `stepwise/steps/`.
    Steps {
        /// The workspace whose step manifests to list (default: the current directory).
        #[arg(long)]
        workspace: Option<PathBuf>,
    },
    /// Whole databases: `db copy --from A --to B` moves every run between a SQLite file and
    /// a PostgreSQL database, verified.
    Db {
        #[command(subcommand)]
        command: db::DbCommand,
    },
}

fn main() -> ExitCode {
    stepwise_engine::start_command_launcher();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STEPWISE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if cli.command.only_reads() {
        die_quietly_on_closed_stdout();
    }
    match run(cli) {
        Ok(exit) => exit.code(),
        Err(error) => {
            let exit = exit::classify(&error);
            eprintln!("error: {}", exit::describe(&error));
            if let Some(hint) = error.downcast_ref::<EngineError>().and_then(hint_for) {
                eprintln!("  {hint}");
            }
            exit.code()
        }
    }
}

/// What the person at the terminal can do about an engine error, in this CLI's flags and
/// commands (the engine's words say only what happened).
fn hint_for(error: &EngineError) -> Option<&'static str> {
    match error {
        EngineError::Refused(refusal) if refusal.kind == RefusalKind::StaleProposal => {
            Some("see the fresh proposal with: stepwise approvals")
        }
        EngineError::ProposalChanged { .. } => Some("see it with: stepwise approvals"),
        EngineError::InvalidProposalHash { .. } => {
            Some("copy the hash as `stepwise approvals` shows it")
        }
        EngineError::MissingReason { .. } => Some("give one with --reason"),
        EngineError::NoDatabasePlace => Some("name the database with --db or STEPWISE_DB"),
        _ => None,
    }
}

impl CliCommand {
    /// Whether the command only reads and prints (it drives no run).
    fn only_reads(&self) -> bool {
        matches!(
            self,
            CliCommand::Validate { .. }
                | CliCommand::Schema { .. }
                | CliCommand::Steps { .. }
                | CliCommand::Runs { .. }
                | CliCommand::Show { .. }
                | CliCommand::Verify { .. }
                | CliCommand::Diff { .. }
                | CliCommand::Export { .. }
                | CliCommand::Events { .. }
                | CliCommand::Approvals { .. }
                | CliCommand::Replay(_)
                | CliCommand::Cost { .. }
                | CliCommand::Memory { forget: None, .. }
        )
    }
}

/// A command that only prints ends quietly when its reader goes away (`stepwise events RUN |
/// head`), as Unix tools do: SIGPIPE is restored to its default action. Commands that drive a
/// run keep ignoring it (Rust's default), so a closed stdout never stops a run mid-way; they
/// treat a failed write as nothing to print.
#[allow(unsafe_code)]
fn die_quietly_on_closed_stdout() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: called first thing in main, before any other thread exists; SIG_DFL installs no
    // handler code.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}

/// How long a command waits, before exiting, for the traces of what it did to be exported.
const TELEMETRY_FLUSH: std::time::Duration = std::time::Duration::from_secs(5);

fn run(cli: Cli) -> anyhow::Result<Exit> {
    let json = cli.global.json;
    match cli.command {
        CliCommand::Validate { files, workspace } => {
            return inspect::validate(&files, workspace.as_deref(), json);
        }
        CliCommand::Schema { step_type } => {
            let schema = if step_type {
                stepwise_core::custom_step::manifest_json_schema()
            } else {
                stepwise_core::workflow::workflow_json_schema()
            };
            println!("{}", serde_json::to_string_pretty(&schema)?);
            return Ok(Exit::Success);
        }
        CliCommand::Steps { workspace } => return step_types::steps(workspace.as_deref(), json),
        CliCommand::Db { command } => return db::run(command, named(&cli.global), json),
        CliCommand::Serve { openapi: true, .. } => return serve::openapi(),
        _ => {}
    }
    // A server, like the app, keeps driving its runs while they wait for a person: answers
    // sent to it reach its driver at once.
    let holds_waiting_runs = matches!(cli.command, CliCommand::Serve { .. });
    let engine = open_engine(&cli.global, holds_waiting_runs)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // A command that may drive runs exports what they record as traces, when the
        // settings name a collector (reading commands leave that to the others).
        let telemetry = if cli.command.only_reads() {
            None
        } else {
            match engine.export_telemetry().await {
                Ok(export) => export,
                Err(error) => {
                    eprintln!("stepwise: traces are not exported: {error}");
                    None
                }
            }
        };
        let result = dispatch(&engine, cli.command, json).await;
        // Whatever happened, runs this process drives are let finish what they started (they
        // stop by themselves once nothing can move without a person), so that exiting never
        // cuts an operation short.
        engine.idle().await;
        // What they recorded is exported before the process goes, for a while; the rest is
        // exported from where it stopped by the next process that exports.
        if let Some(telemetry) = telemetry {
            if !telemetry.flush(TELEMETRY_FLUSH).await {
                tracing::info!(
                    "telemetry: not all exported before exiting; the next export goes on"
                );
            }
            telemetry.stop(TELEMETRY_FLUSH).await;
        }
        result
    })
}

async fn dispatch(engine: &Engine, command: CliCommand, json: bool) -> anyhow::Result<Exit> {
    use stepwise_engine::Command;
    match command {
        CliCommand::Run(args) => runs::run(engine, args, json).await,
        CliCommand::Runs { limit } => runs_list::list_runs(engine, limit, json).await,
        CliCommand::Cost { run } => cost::show(engine, &run, json).await,
        CliCommand::Signal(args) => signal::signal(engine, args, json).await,
        CliCommand::Watch(args) => watch::watch(engine, args, json).await,
        CliCommand::Serve { args, .. } => serve::serve(engine, args, json).await,
        CliCommand::Memory { name, forget } => {
            memory::memory(engine, name.as_deref(), forget.as_deref(), json).await
        }
        CliCommand::Show { run } => inspect::show(engine, &run, json).await,
        CliCommand::Verify { run } => audit::verify(engine, &run, json).await,
        CliCommand::Export { run, out } => audit::export(engine, &run, out.as_deref(), json).await,
        CliCommand::Diff { first, second } => compare::diff(engine, &first, &second, json).await,
        CliCommand::Rewind(args) => rewind::rewind(engine, args, json).await,
        CliCommand::Fork(args) => fork::fork(engine, args, json).await,
        CliCommand::Continue(args) => step_through::continue_run(engine, args, json).await,
        CliCommand::Events { run, follow } => {
            if follow {
                follow::events(engine, &run, json).await
            } else {
                inspect::events(engine, &run, json).await
            }
        }
        CliCommand::Approvals { run, follow } => {
            if follow {
                follow::approvals(engine, run.as_deref(), json).await
            } else {
                inspect::approvals(engine, run.as_deref(), json).await
            }
        }
        CliCommand::Approve(args) => decide::approve(engine, args, json).await,
        CliCommand::Answer(args) => decide::answer(engine, args, json).await,
        CliCommand::Reject {
            run,
            step,
            reason,
            proposal,
            wait,
        } => {
            let command = Command::Reject {
                step: step.into(),
                reason,
                proposal,
            };
            runs::send(engine, &run, command, wait, json).await
        }
        CliCommand::Resume { run, wait } => runs::resume(engine, run.as_deref(), wait, json).await,
        CliCommand::Resolve(args) => runs::resolve(engine, args, json).await,
        CliCommand::Replay(args) => replay::replay(engine, args, json).await,
        CliCommand::Pause { run, wait } => {
            runs::send(engine, &run, Command::Pause, wait, json).await
        }
        CliCommand::Cancel { run, wait } => {
            runs::send(engine, &run, Command::Cancel, wait, json).await
        }
        CliCommand::Validate { .. }
        | CliCommand::Schema { .. }
        | CliCommand::Steps { .. }
        | CliCommand::Db { .. } => Ok(Exit::Success),
    }
}

/// What the flags name; the engine reads the rest from the environment, the flags winning.
fn named(global: &Global) -> Named {
    Named {
        db: global.db.clone(),
        user_policy: global.user_policy.clone(),
        settings: global.settings.clone(),
        durability: global.sync.map(|sync| match sync {
            Sync::Full => Durability::Full,
            Sync::Normal => Durability::Normal,
        }),
    }
}

fn open_engine(global: &Global, hold_waiting_runs: bool) -> anyhow::Result<Engine> {
    let mut config = EngineConfig::from_env(named(global))?;
    config.hold_waiting_runs = hold_waiting_runs;
    Ok(Engine::open(config)?)
}
