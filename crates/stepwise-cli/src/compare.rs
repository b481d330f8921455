//! `stepwise diff RUN_A RUN_B`: two runs side by side (`stepwise_core::run::compare_runs`).

use stepwise_core::event::Event;
use stepwise_core::ids::EventSeq;
use stepwise_core::run::{Comparison, Difference, Verdict, compare_runs};
use stepwise_engine::{Engine, LoadedRun};

use crate::exit::Exit;
use crate::output::printable;

/// Compares two runs; exit code 0 when they recorded the same, 1 when they differ (as `diff`).
pub async fn diff(engine: &Engine, first: &str, second: &str, json: bool) -> anyhow::Result<Exit> {
    let a = engine.load_run(first).await?;
    let b = engine.load_run(second).await?;
    let comparison = compare_runs(&seq_events(&a), &seq_events(&b));
    let exit = if comparison.is_same() {
        Exit::Success
    } else {
        Exit::Failure
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "first": a.row.run_id,
                "second": b.row.run_id,
                "same": comparison.is_same(),
                "same_workflow": comparison.same_workflow,
                "first_difference": comparison.first,
                "run": comparison.run,
                "steps": comparison.steps,
            }))?
        );
        return Ok(exit);
    }
    println!("first     {} ({})", a.row.run_id, a.row.workflow_name);
    println!("second    {} ({})", b.row.run_id, b.row.workflow_name);
    print_summary(&comparison);
    Ok(exit)
}

/// A run's events, each with its seq.
fn seq_events(loaded: &LoadedRun) -> Vec<(EventSeq, &Event)> {
    loaded
        .events
        .iter()
        .map(|(stored, event)| (stored.seq, event))
        .collect()
}

fn print_summary(comparison: &Comparison) {
    match &comparison.first {
        None => {
            println!("same      both recorded the same: workflow, inputs, and every step");
            return;
        }
        Some(first) => println!("first difference: {}", said(first)),
    }
    for difference in &comparison.run {
        println!("  ≠ {}", said(difference));
    }
    println!();
    println!("    {:<24} IN THE TWO RUNS", "STEP");
    for step in &comparison.steps {
        let (mark, words) = match step.verdict {
            Verdict::Same => ("=", "same".to_string()),
            Verdict::Differs => (
                "≠",
                step.difference
                    .as_ref()
                    .map(|d| format!("differs: {}", d.what))
                    .unwrap_or_else(|| "differs".into()),
            ),
            Verdict::OnlyInFirst => ("<", "only in the first".to_string()),
            Verdict::OnlyInSecond => (">", "only in the second".to_string()),
        };
        println!("  {mark} {:<24} {words}", step.step);
    }
}

/// A difference in one line: where, what, and each run's.
fn said(d: &Difference) -> String {
    let place = d
        .step
        .as_ref()
        .map(|s| format!("step `{s}`, "))
        .unwrap_or_default();
    let field = d
        .field
        .as_ref()
        .map(|f| format!(", {f}"))
        .unwrap_or_default();
    printable(&format!(
        "{place}{}{field}: {} | {}",
        d.what,
        one_line(&d.first),
        one_line(&d.second)
    ))
}

fn one_line(text: &str) -> String {
    crate::output::one_line(text, 120)
}
