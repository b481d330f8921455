//! Following live: `events RUN --follow` and `approvals --follow`. Both print what is already
//! there, then each change as any process commits it, and never poll. With `--json`, each item
//! is one JSON object on a line of its own.

use std::io::Write;

use stepwise_core::ids::EventSeq;
use stepwise_engine::{ApprovalChange, Engine, RunUpdate};

use crate::exit::Exit;
use crate::inspect::{approval_text, event_json, event_line};
use crate::output::printable;

/// Prints a line and flushes it at once (a follower is read live, often through a pipe).
/// `false` when nobody reads any more: the follower then ends quietly.
fn emit(line: &str) -> bool {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").and_then(|()| out.flush()).is_ok()
}

/// `stepwise events RUN --follow`: the run's events, then each new one, until the run ends,
/// with the replies of model calls and the output of commands shown as they stream in.
/// Exits as the run ended (0 succeeded, 1 failed or cancelled).
pub async fn events(engine: &Engine, run: &str, json: bool) -> anyhow::Result<Exit> {
    let run_id = engine.find_run(run).await?.run_id;
    let mut feed = engine.follow_run(run_id.as_str(), EventSeq::ZERO);
    while let Some(update) = feed.next().await {
        let line = match update? {
            RunUpdate::Event(event) if json => event_json(&event.stored).to_string(),
            RunUpdate::Event(event) => event_line(&event.stored, &event.event),
            // Progress, not events: the complete reply or output is recorded as the
            // operation's result.
            RunUpdate::Progress { op, step, text } if json => {
                serde_json::json!({ "progress": { "op": op, "step": step, "text": text } })
                    .to_string()
            }
            RunUpdate::Progress { step, text, .. } => {
                format!("      … {step}: {}", printable(&text.replace('\n', "⏎")))
            }
        };
        if !emit(&line) {
            return Ok(Exit::Success);
        }
    }
    let row = engine.find_run(run_id.as_str()).await?;
    Ok(Exit::for_status(row.status))
}

/// `stepwise approvals [RUN] --follow`: what waits for a person now, then each question as it
/// appears and as it is answered. With RUN, only that run's, until it ends.
pub async fn approvals(engine: &Engine, run: Option<&str>, json: bool) -> anyhow::Result<Exit> {
    // Subscribed before the run is looked at: if it ends in between, the feed still says so.
    let mut changes = engine.subscribe_approvals().await?;
    let only = match run {
        Some(run) => {
            let row = engine.find_run(run).await?;
            let status = row.status;
            if status.is_finished() {
                if !json {
                    emit(&format!(
                        "run {} has already {}",
                        row.run_id,
                        status.as_str()
                    ));
                }
                return Ok(Exit::for_status(status));
            }
            Some(row.run_id)
        }
        None => None,
    };
    if !json && only.is_none() {
        emit("following the approvals inbox (Ctrl-C to stop)");
    }
    loop {
        let change = changes.next().await?;
        let run_id = match &change {
            ApprovalChange::Waiting(approval) => &approval.run_id,
            ApprovalChange::Settled { run_id, .. } | ApprovalChange::RunEnded { run_id, .. } => {
                run_id
            }
        };
        if only.as_ref().is_some_and(|only| only != run_id) {
            continue;
        }
        let line = if json {
            change_json(&change).to_string()
        } else {
            change_text(&change)
        };
        if !line.is_empty() && !emit(&line) {
            return Ok(Exit::Success);
        }
        if let (Some(_), ApprovalChange::RunEnded { status, .. }) = (&only, &change) {
            return Ok(Exit::for_status(*status));
        }
    }
}

fn change_json(change: &ApprovalChange) -> serde_json::Value {
    match change {
        ApprovalChange::Waiting(approval) => {
            let mut value = serde_json::to_value(approval).unwrap_or_default();
            value["change"] = "waiting".into();
            value
        }
        ApprovalChange::Settled {
            run_id,
            step,
            proposal_hash,
            how,
        } => serde_json::json!({
            "change": "settled",
            "run_id": run_id,
            "step": step,
            "proposal_hash": proposal_hash,
            "how": how,
        }),
        ApprovalChange::RunEnded { run_id, status } => serde_json::json!({
            "change": "run_ended",
            "run_id": run_id,
            "status": status,
        }),
    }
}

fn change_text(change: &ApprovalChange) -> String {
    match change {
        ApprovalChange::Waiting(approval) => approval_text(approval),
        ApprovalChange::Settled {
            run_id, step, how, ..
        } => format!("── run {run_id} step `{step}`: {}\n", printable(how)),
        // Runs ending matter to a follower of one run; the inbox as a whole shows only
        // questions.
        ApprovalChange::RunEnded { .. } => String::new(),
    }
}
