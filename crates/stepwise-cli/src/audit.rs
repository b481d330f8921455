//! `stepwise verify`: whether a run's log is as it was recorded.

use crate::exit::Exit;
use stepwise_engine::Engine;

pub async fn verify(engine: &Engine, run: &str, json: bool) -> anyhow::Result<Exit> {
    let (row, verified) = engine.verify(run).await?;
    let exit = if verified.is_intact() {
        Exit::Success
    } else {
        Exit::Failure
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "run_id": row.run_id,
                "intact": verified.is_intact(),
                "events": verified.events,
                "blobs": verified.blobs,
                "last_link": verified.last_link,
                "broken_at": verified.broken_at,
                "bad_blobs": verified.bad_blobs,
            }))?
        );
        return Ok(exit);
    }
    println!("run       {}", row.run_id);
    match verified.broken_at {
        Some(seq) => println!(
            "chain     BROKEN at event {seq}: it is not the event that was recorded there (changed, removed or moved); the events before it are intact"
        ),
        None => println!("chain     intact: {} events", verified.events),
    }
    if verified.bad_blobs.is_empty() {
        println!("blobs     intact: {}", verified.blobs);
    } else {
        println!(
            "blobs     {} of {} missing or altered: {}",
            verified.bad_blobs.len(),
            verified.blobs,
            verified.bad_blobs.join(", ")
        );
    }
    if let Some(last) = &verified.last_link {
        println!("last link {last}");
    }
    Ok(exit)
}

/// `stepwise export RUN [--out FILE]`: the run's audit trail as one self-contained HTML file
/// (or, with `--json`, as JSON), to FILE or standard output.
pub async fn export(
    engine: &Engine,
    run: &str,
    out: Option<&std::path::Path>,
    json: bool,
) -> anyhow::Result<Exit> {
    let export = engine.export(run).await?;
    let text = if json {
        serde_json::to_string_pretty(&export)? + "\n"
    } else {
        export.to_html()
    };
    match out {
        None => {
            use std::io::Write as _;
            std::io::stdout().write_all(text.as_bytes())?;
        }
        Some(path) => {
            std::fs::write(path, text)
                .map_err(|e| anyhow::anyhow!("could not write `{}`: {e}", path.display()))?;
            println!(
                "wrote {} ({} events; last link {})",
                path.display(),
                export.chain.events,
                export.chain.last_link.as_deref().unwrap_or("-")
            );
        }
    }
    Ok(Exit::Success)
}
