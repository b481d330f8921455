//! The cost view: model spend and tokens per run, model and day across runs, and per step of
//! one run.

use std::collections::BTreeMap;

use stepwise_core::ids::RunId;
use stepwise_core::run::CostLine;
use stepwise_engine::RunsQuery;
use tauri::State;

use crate::error::AppError;
use crate::state::AppState;
use crate::view::{CostOverview, NamedCost, RunCost};

/// How many of the newest runs the overview reads.
const RUNS_COUNTED: usize = 500;

#[tauri::command]
pub async fn cost_overview(
    state: State<'_, AppState>,
    run: Option<String>,
) -> Result<CostOverview, AppError> {
    let runs = state
        .engine
        .runs_page(RunsQuery {
            limit: RUNS_COUNTED,
            ..RunsQuery::default()
        })
        .await?
        .runs;
    let mut total = CostLine::default();
    let mut by_run = Vec::new();
    let mut by_model: BTreeMap<String, CostLine> = BTreeMap::new();
    let mut by_day: BTreeMap<String, CostLine> = BTreeMap::new();
    let mut steps_of: Option<(RunId, Vec<NamedCost>)> = None;
    let wanted = match &run {
        Some(id) => Some(state.engine.find_run(id).await?.run_id),
        None => None,
    };
    for row in &runs {
        let Ok(digest) = state.digests.of(&state.engine, row).await else {
            continue;
        };
        let report = digest.cost();
        if report.total.calls == 0 {
            continue;
        }
        add(&mut total, &report.total);
        for (model, line) in &report.by_model {
            add(by_model.entry(model.clone()).or_default(), line);
        }
        for (day, line) in &report.by_day {
            add(by_day.entry(day.clone()).or_default(), line);
        }
        let is_wanted = match &wanted {
            Some(id) => id == &row.run_id,
            None => steps_of.is_none(),
        };
        if is_wanted {
            let steps = report
                .by_step
                .iter()
                .map(|(step, cost)| NamedCost {
                    name: step.to_string(),
                    cost: cost.clone(),
                })
                .collect();
            steps_of = Some((row.run_id.clone(), steps));
        }
        by_run.push(RunCost {
            run_id: row.run_id.clone(),
            workflow: row.workflow_name.clone(),
            started_at_ms: row.created_at_ms,
            cost: report.total.clone(),
        });
    }
    let named = |map: BTreeMap<String, CostLine>| {
        map.into_iter()
            .map(|(name, cost)| NamedCost { name, cost })
            .collect()
    };
    let (run_id, by_step) = match steps_of {
        Some((id, steps)) => (Some(id), steps),
        None => (wanted, Vec::new()),
    };
    Ok(CostOverview {
        total,
        by_run,
        by_model: named(by_model),
        by_day: named(by_day),
        run_id,
        by_step,
    })
}

fn add(sum: &mut CostLine, line: &CostLine) {
    sum.calls += line.calls;
    sum.input_tokens += line.input_tokens;
    sum.output_tokens += line.output_tokens;
    sum.micro_usd += line.micro_usd;
    sum.after_crash += line.after_crash;
    sum.simulated += line.simulated;
}
