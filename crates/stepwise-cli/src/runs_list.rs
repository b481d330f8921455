//! `stepwise runs`: the runs, newest first, each child run (a `workflow` step's) right under
//! its parent.

use std::collections::BTreeSet;

use stepwise_core::llm::format_usd;
use stepwise_engine::{Engine, RunSummary};

use crate::exit::Exit;
use crate::output::{duration, now_ms, one_line, timestamp};

pub async fn list_runs(engine: &Engine, limit: usize, json: bool) -> anyhow::Result<Exit> {
    let runs = engine.list_runs(limit).await?;
    if json {
        let list: Vec<serde_json::Value> = runs
            .iter()
            .map(|run| {
                let mut value = serde_json::to_value(&run.row).unwrap_or_default();
                value["status"] = shown_status(run, &runs).into();
                value["recorded_status"] = run.row.status.as_str().into();
                value["held_by"] = run.held_by.clone().into();
                value
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(Exit::Success);
    }
    if runs.is_empty() {
        println!("no runs yet; start one with `stepwise run WORKFLOW.yaml`");
        return Ok(Exit::Success);
    }
    println!(
        "{:<36}  {:<18}  {:<24}  {:<20}  {:>12}  {:>10}  {:<8}  DRIVEN BY",
        "RUN", "STATUS", "WORKFLOW", "STARTED", "TOOK", "COST", "TRIGGER"
    );
    for (depth, summary) in nested(&runs) {
        let run = &summary.row;
        let finished = run.status.is_finished();
        let name = if depth == 0 {
            run.workflow_name.clone()
        } else {
            format!("{}└ {}", "  ".repeat(depth - 1), run.workflow_name)
        };
        let took = if finished {
            duration(run.updated_at_ms - run.created_at_ms)
        } else {
            format!(
                "{} so far",
                duration(now_ms().max(run.updated_at_ms) - run.created_at_ms)
            )
        };
        println!(
            "{:<36}  {:<18}  {:<24}  {:<20}  {:>12}  {:>10}  {:<8}  {}",
            run.run_id,
            shown_status(summary, &runs),
            one_line(&name, 24),
            timestamp(run.created_at_ms),
            took,
            format_usd(run.cost_micro_usd),
            one_line(&run.trigger, 8),
            summary.held_by.as_deref().unwrap_or("")
        );
        if let Some(cause) = &run.cause {
            println!("{:<36}  started by: {}", "", one_line(cause, 80));
        }
    }
    if runs.iter().any(|r| shown_status(r, &runs) == "interrupted") {
        println!();
        println!(
            "interrupted: the process driving it stopped mid-run; continue with `stepwise resume RUN`"
        );
    }
    if runs
        .iter()
        .any(|r| shown_status(r, &runs) == WAITING_ON_CHILD)
    {
        println!();
        println!(
            "{WAITING_ON_CHILD}: a child run (listed under it) waits for a person; deciding there continues it"
        );
    }
    Ok(Exit::Success)
}

/// How a run that nobody drives but whose child run waits for a person is shown: it is not
/// interrupted, it waits.
const WAITING_ON_CHILD: &str = "waiting_on_child";

/// The status a run is listed with: as `RunSummary::shown_status`, except that a run nobody
/// drives whose unfinished children (or theirs) wait for a person waits too.
fn shown_status<'a>(run: &'a RunSummary, runs: &[RunSummary]) -> &'a str {
    let shown = run.shown_status();
    if shown == "interrupted" && family_waits(run, runs, 0) {
        WAITING_ON_CHILD
    } else {
        shown
    }
}

fn family_waits(run: &RunSummary, runs: &[RunSummary], depth: usize) -> bool {
    depth < 16
        && runs
            .iter()
            .filter(|child| {
                child.row.is_child() && child.row.parent.as_ref() == Some(&run.row.run_id)
            })
            .any(|child| {
                matches!(child.row.status.as_str(), "awaiting_approval" | "paused")
                    || (child.shown_status() == "interrupted"
                        && family_waits(child, runs, depth + 1))
            })
}

/// The runs in the order listed, each child run (a `workflow` step's) right under its parent
/// when that is listed too, with how deep it is.
fn nested(runs: &[RunSummary]) -> Vec<(usize, &RunSummary)> {
    let listed: BTreeSet<&str> = runs.iter().map(|r| r.row.run_id.as_str()).collect();
    let placed_under = |r: &RunSummary| {
        r.row
            .parent
            .as_ref()
            .filter(|p| r.row.is_child() && listed.contains(p.as_str()))
            .map(|p| p.as_str().to_string())
    };
    let mut out = Vec::with_capacity(runs.len());
    fn push<'a>(
        out: &mut Vec<(usize, &'a RunSummary)>,
        runs: &'a [RunSummary],
        under: &dyn Fn(&RunSummary) -> Option<String>,
        run: &'a RunSummary,
        depth: usize,
    ) {
        out.push((depth, run));
        // Children oldest first, as they were started.
        for child in runs.iter().rev() {
            if under(child).as_deref() == Some(run.row.run_id.as_str()) && depth < 16 {
                push(out, runs, under, child, depth + 1);
            }
        }
    }
    for run in runs.iter().filter(|r| placed_under(r).is_none()) {
        push(&mut out, runs, &placed_under, run, 0);
    }
    out
}
