//! `stepwise memory [NAME] [--forget KEY]`: the shared memories agent steps remember in
//! (`memory: NAME`), each entry with the run and step that last wrote it.

use stepwise_engine::Engine;

use crate::exit::{Exit, InvalidInput};
use crate::output::{printable, timestamp};

pub async fn memory(
    engine: &Engine,
    name: Option<&str>,
    forget: Option<&str>,
    json: bool,
) -> anyhow::Result<Exit> {
    let Some(name) = name else {
        if forget.is_some() {
            return Err(InvalidInput(
                "--forget needs the memory's name: `stepwise memory NAME --forget KEY`".into(),
            )
            .into());
        }
        return list(engine, json).await;
    };
    if let Some(key) = forget {
        let removed = engine.forget_memory(name, key).await?;
        if json {
            println!(
                "{}",
                serde_json::json!({ "memory": name, "key": key, "forgotten": removed })
            );
        } else if removed {
            println!(
                "forgot `{}` in memory `{}`",
                printable(key),
                printable(name)
            );
        } else {
            println!("memory `{}` holds no `{}`", printable(name), printable(key));
        }
        return Ok(if removed {
            Exit::Success
        } else {
            Exit::Failure
        });
    }
    let entries = engine.memory_entries(name).await?;
    if json {
        let entries: Vec<_> = entries
            .iter()
            .map(|e| {
                serde_json::json!({
                    "key": e.key,
                    "text": e.text,
                    "run_id": e.run_id,
                    "step": e.step,
                    "updated_at_ms": e.updated_at_ms,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(Exit::Success);
    }
    if entries.is_empty() {
        println!("memory `{}` holds nothing", printable(name));
        return Ok(Exit::Success);
    }
    for entry in &entries {
        println!(
            "{}  ({}, run {} step `{}`)",
            printable(&entry.key),
            timestamp(entry.updated_at_ms),
            short(&entry.run_id),
            printable(&entry.step)
        );
        for line in entry.text.lines() {
            println!("    {}", printable(line));
        }
    }
    Ok(Exit::Success)
}

async fn list(engine: &Engine, json: bool) -> anyhow::Result<Exit> {
    let memories = engine.memories().await?;
    if json {
        let memories: Vec<_> = memories
            .iter()
            .map(|m| serde_json::json!({ "name": m.name, "entries": m.entries, "updated_at_ms": m.updated_at_ms }))
            .collect();
        println!("{}", serde_json::to_string_pretty(&memories)?);
        return Ok(Exit::Success);
    }
    if memories.is_empty() {
        println!("no memories yet: an agent step with `memory: NAME` makes one");
    }
    for memory in &memories {
        println!(
            "{:<32} {:>6} entries   last {}",
            printable(&memory.name),
            memory.entries,
            timestamp(memory.updated_at_ms)
        );
    }
    Ok(Exit::Success)
}

fn short(run_id: &str) -> &str {
    run_id.get(..8).unwrap_or(run_id)
}
