//! `stepwise steps`: the step types a workflow may use, with the fields each takes: the
//! built-in ones, then the custom ones a workspace's and the user's manifests declare.

use std::path::Path;

use stepwise_core::workflow::{StepType, builtin_step_types, custom_step_types};

use crate::exit::Exit;
use crate::output::printable;

pub fn steps(workspace: Option<&Path>, json: bool) -> anyhow::Result<Exit> {
    let current = std::env::current_dir().ok();
    let workspace = workspace.or(current.as_deref());
    let mut types = builtin_step_types();
    types.extend(custom_step_types(&stepwise_engine::load_step_types(
        workspace,
    )));
    if json {
        println!("{}", serde_json::to_string_pretty(&types)?);
        return Ok(Exit::Success);
    }
    for step_type in &types {
        print_type(step_type);
    }
    println!(
        "Every step also takes id, needs, when, after, retry, timeout, approval, repeat and for_each (see `stepwise schema`)."
    );
    println!(
        "A custom type takes its inputs under `with:`; its manifest is .stepwise/steps/NAME.yaml in the workspace or stepwise/steps/NAME.yaml in your config dir."
    );
    Ok(Exit::Success)
}

fn print_type(step_type: &StepType) {
    if let Some(problem) = &step_type.problem {
        println!("{}  (cannot be used)", printable(&step_type.name));
        println!("    {}", printable(problem));
        println!();
        return;
    }
    match step_type.approval {
        Some(approval) => {
            let approval = serde_json::to_value(approval)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            println!(
                "{}  (custom: {}; approval: {approval})",
                printable(&step_type.name),
                printable(&step_type.source)
            );
        }
        None => println!("{}  ({})", step_type.name, step_type.source),
    }
    if !step_type.description.is_empty() {
        println!("    {}", printable(&step_type.description));
    }
    let prefix = if step_type.approval.is_some() {
        "with."
    } else {
        ""
    };
    for field in &step_type.fields {
        let required = if field.required { ", required" } else { "" };
        let name = format!("{prefix}{}", printable(&field.name));
        println!("    {name:<18} {}{required}", printable(&field.kind));
    }
    println!();
}
