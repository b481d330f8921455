//! `stepwise signal NAME [--data JSON] [--key KEY]`: records a signal (once per name and key),
//! which a `wait_signal` step waiting for it takes. When no run waiting for it is driven by a
//! process, this one drives the oldest, as `approve` does, until it ends or waits again. With
//! `--json`: the signal, or when it continues a run, that run's outcome (as `approve --json`).

use clap::Args;
use serde_json::Value;
use std::time::Duration;

use stepwise_core::run::RunStatus;
use stepwise_engine::{Command, Engine, SendSignal};

use crate::exit::{Exit, InvalidInput};

#[derive(Args)]
pub struct SignalArgs {
    /// The signal's name, as a `wait_signal` step names it.
    name: String,
    /// Its data, JSON: the waiting step's output (default: null).
    #[arg(long, value_name = "JSON")]
    data: Option<String>,
    /// Its idempotency key: a signal of this name and key is recorded once, however often it
    /// is sent (default: each send is a signal of its own).
    #[arg(long, value_name = "KEY")]
    key: Option<String>,
    /// A correlation id to record with it.
    #[arg(long, value_name = "ID")]
    correlation: Option<String>,
}

pub async fn signal(engine: &Engine, args: SignalArgs, json: bool) -> anyhow::Result<Exit> {
    let payload = match args.data.as_deref() {
        None => Value::Null,
        Some(text) => serde_json::from_str(text)
            .map_err(|e| InvalidInput(format!("--data is not JSON: {e}")))?,
    };
    let sent = engine
        .send_signal(SendSignal {
            name: args.name.clone(),
            payload,
            idempotency_key: args.key,
            correlation_id: args.correlation,
        })
        .await?;
    // A run waiting for it that a process drives takes it there. Only when none does is the
    // oldest waiting run driven here.
    let wake = engine.run_to_wake_for(&args.name, &sent).await?;
    let what = if sent.recorded {
        format!("signal `{}` recorded (id {})", args.name, sent.signal_id)
    } else {
        format!(
            "signal `{}` with that key was recorded already (id {}); not sent again",
            args.name, sent.signal_id
        )
    };
    if json && wake.is_none() {
        println!(
            "{}",
            serde_json::json!({
                "signal_id": sent.signal_id,
                "recorded": sent.recorded,
                "taken_by": sent.taken_by.as_ref().map(|(run, op)| serde_json::json!({"run_id": run, "op": op})),
                "drives": wake,
            })
        );
    } else if json {
        // The run it continues is reported on stdout, as `approve --json` reports it.
        eprintln!("{what}");
    } else {
        println!("{what}");
    }
    let Some(run) = wake else {
        return Ok(Exit::Success);
    };
    if !json {
        println!("run {run} waits for it and nobody drives it: continuing it here");
    }
    // Driven here until it ends, waits for a person, or waits for another signal (then this
    // process lets go of it, as `run` does of a run whose children wait).
    engine.send(run.as_str(), Command::Resume).await?;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let row = engine.find_run(run.as_str()).await?;
        if row.status != RunStatus::Running {
            engine.settle(run.as_str()).await?;
            return crate::runs::finish(engine, &run, row.status, json).await;
        }
        if engine.only_waits_for_signals(&run).await?
            && engine.let_go_while_children_wait(&run).await
        {
            if !json {
                println!("run {run} waits for another signal; it goes on when one is sent");
            }
            return crate::runs::finish(engine, &run, RunStatus::Running, json).await;
        }
    }
}
