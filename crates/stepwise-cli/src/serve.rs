//! `stepwise serve [--port N] [--workspace DIR]`: the local HTTP API (see `stepwise-api`) on
//! 127.0.0.1 until Ctrl-C (or SIGTERM), over this process's engine, which drives the runs
//! started through it. The first line printed says where it listens and where the token is
//! (with `--json`, as one JSON object). `--openapi` prints the API's OpenAPI document instead.

use std::io::Write as _;
use std::path::PathBuf;

use clap::Args;
use stepwise_api::{ServeOptions, token_path};
use stepwise_engine::Engine;
use tokio::signal::unix::{SignalKind, signal};

use crate::exit::Exit;

#[derive(Args)]
pub struct ServeArgs {
    /// The port on 127.0.0.1 (default: `api.port` in your settings, else 7483; 0 picks a free
    /// one).
    #[arg(long)]
    port: Option<u16>,
    /// The workspace of a request that names none, and what relative paths in requests are
    /// taken from (default: the current directory).
    #[arg(long, value_name = "DIR")]
    workspace: Option<PathBuf>,
}

/// Prints the OpenAPI document.
pub fn openapi() -> anyhow::Result<Exit> {
    println!(
        "{}",
        serde_json::to_string_pretty(&stepwise_api::document())?
    );
    Ok(Exit::Success)
}

pub async fn serve(engine: &Engine, args: ServeArgs, json: bool) -> anyhow::Result<Exit> {
    let workspace = match args.workspace {
        Some(dir) => std::path::absolute(dir)?,
        None => std::env::current_dir()?,
    };
    if !workspace.is_dir() {
        return Err(crate::exit::InvalidInput(format!(
            "workspace `{}` is not a directory",
            workspace.display()
        ))
        .into());
    }
    let port = match args.port {
        Some(port) => port,
        None => engine.api_settings()?.port,
    };
    let mut interrupts = crate::runs::interrupts()?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut serving = stepwise_api::serve(
        engine.clone(),
        ServeOptions {
            port,
            workspace,
            token_file: token_path()?,
        },
    )
    .await?;
    let line = if json {
        serde_json::json!({
            "url": serving.url(),
            "token_file": serving.token_file(),
        })
        .to_string()
    } else {
        format!(
            "serving the Stepwise API at {} (bearer token in {}; the document at /openapi.json); Ctrl-C stops",
            serving.url(),
            serving.token_file().display()
        )
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    drop(out);
    let died = tokio::select! {
        () = serving.wait() => true,
        _ = interrupts.recv() => false,
        _ = terminate.recv() => false,
    };
    serving.stop().await;
    // The runs it drives are let go: the next process to hold one (`stepwise resume`, the
    // app, another `serve`) goes on from its log.
    engine.shutdown().await;
    if died {
        return Err(anyhow::anyhow!("the API server stopped unexpectedly"));
    }
    Ok(Exit::Success)
}
