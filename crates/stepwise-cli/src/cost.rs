//! `stepwise cost RUN`: what a run's model calls cost, in all, per step, per model and per day.

use stepwise_core::llm::format_usd;
use stepwise_core::run::{CostLine, cost_report};
use stepwise_engine::Engine;

use crate::exit::Exit;

pub async fn show(engine: &Engine, run: &str, json: bool) -> anyhow::Result<Exit> {
    let loaded = engine.load_run(run).await?;
    let report = cost_report(
        loaded
            .events
            .iter()
            .map(|(stored, event)| (stored.seq, stored.recorded_at_ms, event)),
    );
    let budget = loaded.state.budget();
    if json {
        let lines = |map: &std::collections::BTreeMap<String, CostLine>, key: &str| {
            map.iter()
                .map(|(name, line)| {
                    let mut value = serde_json::to_value(line).unwrap_or_default();
                    value[key] = serde_json::json!(name);
                    value
                })
                .collect::<Vec<_>>()
        };
        let by_step: std::collections::BTreeMap<String, CostLine> = report
            .by_step
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "run_id": loaded.row.run_id,
                "total_micro_usd": report.total.micro_usd,
                "input_tokens": report.total.input_tokens,
                "output_tokens": report.total.output_tokens,
                "calls": report.total.calls,
                "after_crash": report.total.after_crash,
                "simulated": report.total.simulated,
                "budget": budget,
                "by_step": lines(&by_step, "step"),
                "by_model": lines(&report.by_model, "model"),
                "by_day": lines(&report.by_day, "day"),
            }))?
        );
        return Ok(Exit::Success);
    }
    println!("run {}  {}", loaded.row.run_id, loaded.row.workflow_name);
    println!("total   {}", line_text(&report.total));
    if let Some(budget) = budget {
        let mut parts = Vec::new();
        if let Some(usd) = budget.micro_usd {
            parts.push(format_usd(usd));
        }
        if let Some(tokens) = budget.tokens {
            parts.push(format!("{tokens} tokens"));
        }
        println!("budget  {}", parts.join(", "));
    }
    if report.total.calls == 0 {
        println!("no model calls");
        return Ok(Exit::Success);
    }
    for (title, rows) in [
        (
            "by step",
            report
                .by_step
                .iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect::<Vec<_>>(),
        ),
        (
            "by model",
            report
                .by_model
                .iter()
                .map(|(k, v)| (k.clone(), v))
                .collect(),
        ),
        (
            "by day",
            report.by_day.iter().map(|(k, v)| (k.clone(), v)).collect(),
        ),
    ] {
        println!("\n{title}");
        for (name, line) in rows {
            println!("  {name:<24} {}", line_text(line));
        }
    }
    Ok(Exit::Success)
}

fn line_text(line: &CostLine) -> String {
    let mut text = format!(
        "{:>10}  {} call{}  {} in / {} out tokens",
        format_usd(line.micro_usd),
        line.calls,
        if line.calls == 1 { "" } else { "s" },
        line.input_tokens,
        line.output_tokens
    );
    if line.after_crash > 0 {
        text.push_str(&format!(
            "  ({} made again after a crash: may have been paid twice)",
            line.after_crash
        ));
    }
    if line.simulated > 0 {
        text.push_str(&format!("  ({} simulated)", line.simulated));
    }
    text
}
