//! Reading commands: `validate`, `runs`, `show`, `events`, `approvals`.

use std::path::PathBuf;

use stepwise_core::event::Proposal;
use stepwise_core::run::StepStatus;
use stepwise_core::workflow::parse_workflow;
use stepwise_engine::{Engine, LoadedRun};

use crate::exit::Exit;
use crate::output::{duration, one_line, printable, run_status_text, step_symbol, timestamp};

pub fn validate(files: &[PathBuf], json: bool) -> anyhow::Result<Exit> {
    if files.is_empty() {
        return Err(crate::exit::InvalidInput("name at least one workflow file".into()).into());
    }
    let mut all_ok = true;
    let mut report = Vec::new();
    for file in files {
        let label = file.display().to_string();
        let result = match std::fs::read_to_string(file) {
            Ok(source) => parse_workflow(&label, &source).map_err(|e| e.0),
            Err(e) => Err(vec![stepwise_core::workflow::ValidationError {
                file: label.clone(),
                line: 0,
                column: 0,
                step: None,
                message: format!("cannot be read: {e}"),
            }]),
        };
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

pub fn list_runs(engine: &Engine, limit: usize, json: bool) -> anyhow::Result<Exit> {
    let runs = engine.store().list_runs(limit)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
        return Ok(Exit::Success);
    }
    if runs.is_empty() {
        println!("no runs yet; start one with `stepwise run WORKFLOW.yaml`");
        return Ok(Exit::Success);
    }
    println!(
        "{:<36}  {:<18}  {:<24}  {:<20}  {:>8}  TRIGGER",
        "RUN", "STATUS", "WORKFLOW", "STARTED", "TOOK"
    );
    for run in runs {
        println!(
            "{:<36}  {:<18}  {:<24}  {:<20}  {:>8}  {}",
            run.run_id,
            run.status,
            one_line(&run.workflow_name, 24),
            timestamp(run.created_at_ms),
            duration(run.updated_at_ms - run.created_at_ms),
            run.trigger
        );
    }
    Ok(Exit::Success)
}

/// When each step started and ended, from the event timestamps.
fn step_times(loaded: &LoadedRun) -> std::collections::HashMap<String, (i64, i64)> {
    let mut times = std::collections::HashMap::new();
    for (stored, event) in &loaded.events {
        if let Some(step) = event.step() {
            let entry = times
                .entry(step.to_string())
                .or_insert((stored.recorded_at_ms, stored.recorded_at_ms));
            entry.1 = stored.recorded_at_ms;
        }
    }
    times
}

pub fn show(engine: &Engine, run: &str, json: bool) -> anyhow::Result<Exit> {
    let loaded = engine.load_run(run)?;
    let status = loaded.state.status();
    let times = step_times(&loaded);
    let started = loaded.state.started();
    if json {
        let steps: Vec<_> = loaded
            .state
            .steps()
            .map(|(def, s)| {
                let (start, end) = times.get(&def.id).copied().unwrap_or((0, 0));
                serde_json::json!({
                    "id": def.id,
                    "type": def.action.type_name(),
                    "status": s.status,
                    "attempts": s.attempt,
                    "duration_ms": end - start,
                    "output": s.output,
                    "error": s.error,
                    "reason": s.reason,
                    "pending_approval": s.pending_approval,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "run": loaded.row,
                "status": status,
                "inputs": started.inputs,
                "started_by": started.started_by,
                "steps": steps,
            }))?
        );
        return Ok(Exit::Success);
    }
    println!("run       {}", loaded.row.run_id);
    println!(
        "workflow  {} ({})",
        loaded.row.workflow_name, loaded.row.workflow_path
    );
    println!("status    {}", run_status_text(status));
    println!("workspace {}", loaded.row.workspace);
    println!(
        "started   {} by {} via {}, {} so far",
        timestamp(loaded.row.created_at_ms),
        started.started_by,
        loaded.row.trigger,
        duration(loaded.row.updated_at_ms - loaded.row.created_at_ms)
    );
    println!("inputs    {}", started.inputs);
    println!();
    for (def, s) in loaded.state.steps() {
        let (start, end) = times.get(&def.id).copied().unwrap_or((0, 0));
        let took = if s.status == StepStatus::Pending {
            String::new()
        } else {
            duration(end - start)
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
        println!(
            "  {} {:<20} {:<12} {:<18} {:>8}{attempts}  {detail}",
            step_symbol(s.status),
            def.id,
            def.action.type_name(),
            s.status.as_str(),
            took
        );
    }
    Ok(Exit::Success)
}

pub fn events(engine: &Engine, run: &str, json: bool) -> anyhow::Result<Exit> {
    let loaded = engine.load_run(run)?;
    if json {
        let events: Vec<_> = loaded
            .events
            .iter()
            .map(|(stored, _)| {
                serde_json::json!({
                    "seq": stored.seq,
                    "type": stored.event_type,
                    "schema_version": stored.schema_version,
                    "recorded_at_ms": stored.recorded_at_ms,
                    "correlation_id": stored.correlation_id,
                    "causation_seq": stored.causation_seq,
                    "data": stored.payload,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&events)?);
        return Ok(Exit::Success);
    }
    for (stored, event) in &loaded.events {
        let step = event.step().unwrap_or("");
        let cause = stored
            .causation_seq
            .map(|c| format!("←{c}"))
            .unwrap_or_default();
        println!(
            "{:>5} {:>6} {}  {:<24} {:<16} {}",
            stored.seq,
            cause,
            timestamp(stored.recorded_at_ms),
            stored.event_type,
            step,
            one_line(&stored.payload.to_string(), 110)
        );
    }
    Ok(Exit::Success)
}

pub fn approvals(engine: &Engine, run: Option<&str>, json: bool) -> anyhow::Result<Exit> {
    let run_ids: Vec<String> = match run {
        Some(run) => vec![engine.store().find_run(run)?.run_id],
        None => engine
            .store()
            .unfinished_runs()?
            .into_iter()
            .map(|r| r.run_id)
            .collect(),
    };
    let mut found = Vec::new();
    for run_id in run_ids {
        let loaded = engine.load_run(&run_id)?;
        for (step, pending) in loaded.state.pending_approvals() {
            found.push((loaded.row.clone(), step.to_string(), pending.clone()));
        }
    }
    if json {
        let list: Vec<_> = found
            .iter()
            .map(|(row, step, p)| serde_json::json!({ "run_id": row.run_id, "workflow": row.workflow_name, "step": step, "approval": p }))
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(Exit::Success);
    }
    if found.is_empty() {
        println!("nothing waits for approval");
        return Ok(Exit::Success);
    }
    for (row, step, pending) in found {
        let short = &row.run_id[..row.run_id.len().min(8)];
        println!(
            "── run {} ({}) step `{step}`: {}",
            row.run_id,
            row.workflow_name,
            pending.proposal.kind_name()
        );
        println!("   why: {}", printable(&pending.reason));
        println!("   proposal {}", pending.proposal_hash);
        match &pending.proposal {
            Proposal::EditFile {
                path,
                base_hash,
                diff,
                ..
            } => {
                println!(
                    "   edit {path} (now {})",
                    base_hash.as_deref().unwrap_or("absent")
                );
                for line in diff.lines() {
                    println!("   {}", printable(line));
                }
            }
            Proposal::RunCommand(request) => {
                println!("   $ {}", printable(&request.command.display()));
                println!("   in {}", request.cwd);
                for (name, value) in &request.env {
                    println!("   env {}={}", printable(name), printable(value));
                }
                if !request.pass_env.is_empty() {
                    println!("   passes {}", request.pass_env.join(", "));
                }
                if let Some(t) = request.timeout_ms {
                    println!("   timeout {}", duration(t as i64));
                }
            }
            Proposal::ReadFile { path } => println!("   read {}", printable(path)),
            Proposal::Gate { message } => println!("   {}", printable(message)),
        }
        println!(
            "   approve: stepwise approve {short} {step}    reject: stepwise reject {short} {step} --reason \"…\""
        );
        println!();
    }
    Ok(Exit::Success)
}
