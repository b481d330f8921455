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
