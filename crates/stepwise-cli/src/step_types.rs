//! `stepwise steps`: the step types a workflow may use, with the fields each takes.

use stepwise_core::workflow::builtin_step_types;

use crate::exit::Exit;

pub fn steps(json: bool) -> anyhow::Result<Exit> {
    let types = builtin_step_types();
    if json {
        println!("{}", serde_json::to_string_pretty(&types)?);
        return Ok(Exit::Success);
    }
    for step_type in &types {
        println!("{}  ({})", step_type.name, step_type.source);
        if !step_type.description.is_empty() {
            println!("    {}", step_type.description);
        }
        for field in &step_type.fields {
            let required = if field.required { ", required" } else { "" };
            println!("    {:<18} {}{required}", field.name, field.kind);
        }
        println!();
    }
    println!(
        "Every step also takes id, needs, when, after, retry, timeout, approval, repeat and for_each (see `stepwise schema`)."
    );
    Ok(Exit::Success)
}
