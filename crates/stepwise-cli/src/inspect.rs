//! Reading commands: `validate`, `show`, `events`, `approvals`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use stepwise_core::checkpoint::{FileChange, describe};
use stepwise_core::event::{Event, Proposal};
use stepwise_core::ids::StepId;
use stepwise_core::llm::format_usd;
use stepwise_core::run::{
    RecordedRewind, RunStatus, StepStatus, StepTiming, recorded_rewinds, step_timings,
};
use stepwise_engine::{Approval, Engine, LoadedRun, OperationChanges, ShownChange, StoredEvent};

use crate::exit::Exit;
use crate::output::{
    duration, now_ms, one_line, printable, run_status_text, step_symbol, timestamp,
};

pub fn validate(
    files: &[PathBuf],
    workspace: Option<&std::path::Path>,
    json: bool,
) -> anyhow::Result<Exit> {
    let current = std::env::current_dir().ok();
    let workspace = workspace.or(current.as_deref());
    if files.is_empty() {
        return Err(crate::exit::InvalidInput("name at least one workflow file".into()).into());
    }
    let mut all_ok = true;
    let mut report = Vec::new();
    for file in files {
        let label = file.display().to_string();
        let result = stepwise_engine::check_workflow_file(file, workspace);
        match result {
            Ok(workflow) => {
                if !json {
                    println!(
                        "ok: {label} ({}, {} steps)",
                        workflow.name,
                        workflow.steps.len()
                    );
                }
                report.push(
                    serde_json::json!({ "file": label, "ok": true, "steps": workflow.steps.len() }),
                );
            }
            Err(errors) => {
                all_ok = false;
                if !json {
                    for error in &errors {
                        println!("{error}");
                    }
                }
                report.push(serde_json::json!({ "file": label, "ok": false, "errors": errors }));
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(if all_ok {
        Exit::Success
    } else {
        Exit::InvalidInput
    })
}

/// Each step's times (waiting for a person apart from executing); open intervals of a run still
/// going run on to now.
fn step_times(loaded: &LoadedRun, finished: bool) -> BTreeMap<StepId, StepTiming> {
    let now = (!finished).then(now_ms);
    step_timings(
        loaded
            .events
            .iter()
            .map(|(stored, event)| (stored.seq, stored.recorded_at_ms, event)),
        now,
    )
}

pub async fn show(engine: &Engine, run: &str, json: bool) -> anyhow::Result<Exit> {
    let loaded = engine.load_run(run).await?;
    let status = loaded.state.status();
    let held_by = if status.is_finished() {
        None
    } else {
        engine.holder(&loaded.row.run_id).await?
    };
    let times = step_times(&loaded, status.is_finished());
    let started = loaded.state.started();
    let file_changes = engine.file_changes(&loaded).await?;
    let rewinds = recorded_rewinds(loaded.events.iter().map(|(s, e)| (s.seq, e)));
    let children = stepwise_engine::child_runs(&loaded);
    let changes_of = |step: &StepId| -> Vec<&ShownChange> {
        file_changes
            .iter()
            .filter(|op| op.step == *step)
            .flat_map(|op| &op.changes)
            .collect()
    };
    if json {
        let steps: Vec<_> = loaded
            .state
            .steps()
            .map(|(def, s)| {
                let timing = times.get(&def.id).copied().unwrap_or_default();
                serde_json::json!({
                    "id": def.id,
                    "type": def.action.type_name(),
                    "status": s.status,
                    "attempts": s.attempt,
                    "duration_ms": timing.total_ms,
                    "waiting_ms": timing.waiting_ms,
                    "executing_ms": timing.executing_ms,
                    "output": s.output,
                    "error": s.error,
                    "reason": s.reason,
                    "pending_approval": s.pending_approval,
                    "file_changes": changes_of(&def.id),
                    "compensates": def.compensates,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "run": loaded.row,
                "status": status,
                "aborted": loaded.state.aborted(),
                "held_by": held_by,
                "inputs": started.inputs,
                "started_by": started.started_by,
                "host": started.host,
                "steps": steps,
                "rewinds": rewinds,
                "fork": started.fork,
                "parent": started.parent,
                "cause": started.cause,
                "children": children.iter().map(|(step, run_id)| serde_json::json!({"step": step, "run_id": run_id})).collect::<Vec<_>>(),
            }))?
        );
        return Ok(Exit::Success);
    }
    println!("run       {}", loaded.row.run_id);
    println!(
        "workflow  {} ({})",
        loaded.row.workflow_name, loaded.row.workflow_path
    );
    match (&held_by, status) {
        (Some(holder), _) => println!("status    {} (driven by {holder})", run_status_text(status)),
        (None, RunStatus::Running) => println!(
            "status    interrupted: the process driving it stopped mid-run; continue with `stepwise resume {}`",
            &loaded.row.run_id.as_str()[..loaded.row.run_id.as_str().len().min(8)]
        ),
        (None, _) => println!("status    {}", run_status_text(status)),
    }
    if let Some(why) = loaded.state.aborted() {
        println!(
            "stopped   the engine could not go on: {}",
            one_line(why, 300)
        );
    }
    match &started.host {
        Some(host) => println!("workspace {} on {host}", loaded.row.workspace),
        None => println!("workspace {}", loaded.row.workspace),
    }
    if let Some(parent) = &started.parent {
        println!(
            "child     of run {} (its step `{}`), {} deep",
            parent.run_id, parent.step, parent.depth
        );
    }
    for (step, child) in &children {
        println!("child run {child} (step `{step}`)");
    }
    if let Some(fork) = &started.fork {
        println!(
            "forked    from run {} at step `{}` ({} of its events reused)",
            fork.parent, fork.from, fork.reused
        );
    }
    let elapsed = if status.is_finished() {
        format!(
            "took {}",
            duration(loaded.row.updated_at_ms - loaded.row.created_at_ms)
        )
    } else {
        format!(
            "{} so far",
            duration(now_ms().max(loaded.row.updated_at_ms) - loaded.row.created_at_ms)
        )
    };
    println!(
        "started   {} by {} via {}, {elapsed}",
        timestamp(loaded.row.created_at_ms),
        started.started_by,
        loaded.row.trigger,
    );
    if let Some(cause) = &started.cause {
        println!("cause     {} (signal {})", cause.summary, cause.signal_id);
    }
    println!("inputs    {}", started.inputs);
    println!();
    println!(
        "    {:<20} {:<12} {:<18} {:>8} {:>9}",
        "STEP", "TYPE", "STATUS", "RAN", "WAITED"
    );
    let mut compensations_said = false;
    for (def, s) in loaded.state.steps() {
        if def.compensates.is_some() && !compensations_said {
            compensations_said = true;
            println!(
                "  compensations (the run failed or was cancelled: what succeeded is undone, the last first)"
            );
        }
        let timing = times.get(&def.id).copied().unwrap_or_default();
        let ran = if s.status == StepStatus::Pending {
            String::new()
        } else {
            duration(timing.executing_ms)
        };
        // Time a person took (or is taking) to decide, apart from the work itself.
        let waited = if timing.waiting_ms > 0 || timing.waiting_now {
            duration(timing.waiting_ms)
        } else {
            String::new()
        };
        let attempts = if s.attempt > 1 {
            format!(" ×{}", s.attempt)
        } else {
            String::new()
        };
        let detail = match s.status {
            StepStatus::AwaitingApproval => s
                .pending_approval
                .as_ref()
                .map(|p| format!("waits for a person: {}", p.reason))
                .unwrap_or_default(),
            StepStatus::OutcomeUnknown => {
                "outcome unknown after a crash: stepwise resolve … --retry|--skip|--mark-done"
                    .into()
            }
            StepStatus::Failed | StepStatus::WaitingRetry => s
                .error
                .clone()
                .map(|e| one_line(&e, 100))
                .unwrap_or_default(),
            StepStatus::Skipped | StepStatus::Rejected => s.reason.clone().unwrap_or_default(),
            _ => String::new(),
        };
        let detail = match (&def.compensates, detail.is_empty()) {
            (Some(undone), true) => format!("undoes `{undone}`"),
            (Some(undone), false) => format!("undoes `{undone}`: {detail}"),
            (None, _) => detail,
        };
        println!(
            "  {} {:<20} {:<12} {:<18} {:>8} {:>9}{attempts}  {detail}",
            step_symbol(s.status),
            def.id,
            def.action.type_name(),
            s.status.as_str(),
            ran,
            waited
        );
        let changes: Vec<FileChange> = changes_of(&def.id)
            .into_iter()
            .map(|c| c.change.clone())
            .collect();
        if !changes.is_empty() {
            println!("      files: {}", printable(&describe(&changes)));
        }
    }
    print_rewinds(&rewinds);
    print_diffs(&file_changes);
    Ok(Exit::Success)
}

/// Each rewind: to which step, by whom, what it put back and left alone.
fn print_rewinds(rewinds: &[RecordedRewind]) {
    if rewinds.is_empty() {
        return;
    }
    println!("\nRewinds\n");
    for rewind in rewinds {
        let approved = &rewind.approved;
        let done = match &rewind.restored {
            Some(restored) => {
                let mut said = describe(restored);
                if !approved.left_alone.is_empty() {
                    said.push_str(&format!("; left alone {}", approved.left_alone.join(", ")));
                }
                for failure in &rewind.failed {
                    said.push_str(&format!("; FAILED {}: {}", failure.path, failure.message));
                }
                said
            }
            None => "interrupted: approved, but what it did was never recorded".into(),
        };
        println!(
            "  event {}: back to the start of `{}`, approved by {}: {}",
            rewind.seq,
            approved.to,
            printable(&approved.by),
            printable(&done)
        );
    }
}

/// Each text file's change, under its step.
fn print_diffs(file_changes: &[OperationChanges]) {
    let mut heading = false;
    for op in file_changes {
        let diffs: Vec<&String> = op.changes.iter().filter_map(|c| c.diff.as_ref()).collect();
        if diffs.is_empty() {
            continue;
        }
        if !heading {
            println!();
            println!("Changes to files");
            heading = true;
        }
        println!();
        println!("  {} (event {}):", op.step, op.seq);
        for line in diffs.iter().flat_map(|diff| diff.lines()) {
            println!("    {}", printable(line));
        }
    }
}

pub async fn events(engine: &Engine, run: &str, json: bool) -> anyhow::Result<Exit> {
    let loaded = engine.load_run(run).await?;
    if json {
        let events: Vec<_> = loaded
            .events
            .iter()
            .map(|(stored, _)| event_json(stored))
            .collect();
        println!("{}", serde_json::to_string_pretty(&events)?);
        return Ok(Exit::Success);
    }
    for (stored, event) in &loaded.events {
        println!("{}", event_line(stored, event));
    }
    Ok(Exit::Success)
}

/// An event as `events --json` shows it.
pub fn event_json(stored: &StoredEvent) -> serde_json::Value {
    serde_json::json!({
        "seq": stored.seq,
        "type": stored.event_type,
        "schema_version": stored.schema_version,
        "recorded_at_ms": stored.recorded_at_ms,
        "correlation_id": stored.correlation_id,
        "causation_seq": stored.causation_seq,
        "data": stored.payload,
    })
}

/// An event as `events` shows it: one line.
pub fn event_line(stored: &StoredEvent, event: &Event) -> String {
    let step = event.step().map_or("", StepId::as_str);
    let cause = stored
        .causation_seq
        .map(|c| format!("←{c}"))
        .unwrap_or_default();
    format!(
        "{:>5} {:>6} {}  {:<24} {:<16} {}",
        stored.seq,
        cause,
        timestamp(stored.recorded_at_ms),
        stored.event_type,
        step,
        printable(&one_line(&stored.payload.to_string(), 110))
    )
}

pub async fn approvals(engine: &Engine, run: Option<&str>, json: bool) -> anyhow::Result<Exit> {
    let found = engine.approvals(run).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&found)?);
        return Ok(Exit::Success);
    }
    if found.is_empty() {
        println!("nothing waits for approval");
        return Ok(Exit::Success);
    }
    for approval in &found {
        println!("{}", approval_text(approval));
    }
    Ok(Exit::Success)
}

/// A question waiting for a person, as `approvals` shows it: what, why, the exact proposal,
/// and how to decide.
pub fn approval_text(approval: &Approval) -> String {
    let Approval {
        run_id,
        workflow,
        step,
        approval: pending,
        parent,
        who_may_answer,
    } = approval;
    let mut out = Vec::new();
    let short = &run_id.as_str()[..run_id.as_str().len().min(8)];
    out.push(format!(
        "── run {run_id} ({workflow}) step `{step}`: {}",
        pending.proposal.kind_name()
    ));
    if let Some(parent) = parent {
        out.push(format!(
            "   child run of {} (its step `{}`)",
            parent.run_id, parent.step
        ));
    }
    out.push(format!("   why: {}", printable(&pending.reason)));
    if let Some(only) = &who_may_answer.only {
        out.push(format!("   may answer: {}", printable(&only.join(", "))));
    }
    if let Some(starter) = &who_may_answer.not_approving {
        out.push(format!(
            "   may not approve: {} (started the run; self_approval: false)",
            printable(starter)
        ));
    }
    out.push(format!("   proposal {}", pending.proposal_hash));
    match &pending.proposal {
        Proposal::EditFile {
            path,
            base_hash,
            diff,
            ..
        } => {
            out.push(format!(
                "   edit {} (now {})",
                printable(path),
                base_hash.as_deref().unwrap_or("absent")
            ));
            let hunks = diff.lines().filter(|l| l.starts_with("@@")).count();
            let mut hunk = 0;
            for line in diff.lines() {
                // Numbered when there are several: `--hunks` and `--reject-hunks` name them.
                if hunks > 1 && line.starts_with("@@") {
                    hunk += 1;
                    out.push(format!("   hunk {hunk} of {hunks}:"));
                }
                out.push(format!("   {}", printable(line)));
            }
        }
        Proposal::RunCommand(request) => {
            out.push(format!("   $ {}", printable(&request.command.display())));
            out.push(format!("   in {}", request.cwd));
            for (name, value) in &request.env {
                out.push(format!("   env {}={}", printable(name), printable(value)));
            }
            if !request.pass_env.is_empty() {
                out.push(format!("   passes {}", request.pass_env.join(", ")));
            }
            if let Some(t) = request.timeout_ms {
                out.push(format!("   timeout {}", duration(t as i64)));
            }
            if let Some(stdin) = &request.stdin {
                // A custom step's inputs, as its command reads them.
                let shown: String = stdin.chars().take(2_000).collect();
                let more = if shown.len() < stdin.len() {
                    " …"
                } else {
                    ""
                };
                out.push(format!("   stdin {}{more}", printable(&shown)));
            }
        }
        Proposal::ReadFile { path } => out.push(format!("   read {}", printable(path))),
        Proposal::Gate { message } => out.push(format!("   {}", printable(message))),
        Proposal::Breakpoint { message } => out.push(format!(
            "   {}; continue with `stepwise continue {short}`",
            printable(message)
        )),
        Proposal::McpCall {
            server,
            tool,
            arguments,
        } => {
            out.push(format!(
                "   MCP server {} tool {}",
                printable(server),
                printable(tool)
            ));
            let shown = serde_json::to_string_pretty(arguments).unwrap_or_default();
            for line in shown.lines() {
                out.push(format!("   {}", printable(line)));
            }
        }
        Proposal::Question { question, .. } => {
            out.push("   the agent asks:".to_string());
            for line in question.lines() {
                out.push(format!("   > {}", printable(line)));
            }
        }
        Proposal::Plan {
            goal,
            steps,
            verdicts,
        } => {
            out.push(format!("   {}", printable(&one_line(goal, 200))));
            out.push(format!("   {} planned steps:", verdicts.len()));
            for verdict in verdicts {
                out.push(format!(
                    "   · {} ({}): {}",
                    verdict.id,
                    verdict.kind,
                    printable(&verdict.approval)
                ));
            }
            if let Ok(text) = serde_json::to_string_pretty(steps) {
                for line in text.lines() {
                    out.push(format!("     {}", printable(line)));
                }
            }
        }
        Proposal::LlmCall {
            request,
            estimate,
            remaining,
            raise,
        } => {
            out.push(format!(
                "   call model `{}` ({} `{}` via provider `{}`), up to {} reply tokens",
                request.model,
                request.spec.kind.as_str(),
                request.spec.model,
                request.spec.provider,
                request.max_tokens
            ));
            out.push(format!(
                "   estimate: {} ({} tokens)",
                format_usd(estimate.micro_usd),
                estimate.tokens()
            ));
            if let Some(left) = remaining.micro_usd {
                out.push(format!("   budget left: {}", format_usd(left)));
            }
            if let Some(left) = remaining.tokens {
                out.push(format!("   tokens left: {left}"));
            }
            if let Some(more) = raise.micro_usd {
                out.push(format!(
                    "   approving raises the budget by {}",
                    format_usd(more)
                ));
            }
            if let Some(more) = raise.tokens {
                out.push(format!("   approving raises the token budget by {more}"));
            }
            for message in &request.messages {
                let text = one_line(&message.content, 100);
                let role = message.role.as_str();
                out.push(format!("   {role}: {}", printable(&text)));
                for call in &message.tool_calls {
                    let arguments = one_line(&call.arguments.to_string(), 100);
                    out.push(format!(
                        "   {role} calls {}: {}",
                        printable(&call.name),
                        printable(&arguments)
                    ));
                }
            }
        }
    }
    let approve = match &pending.proposal {
        Proposal::Question { .. } => format!("answer: stepwise answer {short} {step} --text \"…\""),
        _ => format!("approve: stepwise approve {short} {step}"),
    };
    out.push(format!(
        "   {approve}    reject: stepwise reject {short} {step} --reason \"…\"\n"
    ));
    out.join("\n")
}
