//! Two runs side by side: their workflows, their inputs, and step by step what each recorded
//! (every operation's request and result, every decision, how the step ended), with what only
//! describes when or how fast (durations, latencies) or where a run kept something left out,
//! and tool call ids (a provider's, new at every call) compared by their order. The first difference is
//! named; each step is the same, differs, or ran in one run only.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::event::Event;
use crate::ids::{EventSeq, StepId};

/// Fields of a recorded result that say when, how fast or where this run kept something, not
/// what happened: left out of the comparison (at the top of a result only, never inside data
/// a step made).
const INCIDENTAL_FIELDS: [&str; 4] = ["latency_ms", "duration_ms", "attempts", "saved_output"];
/// The most of a value a difference quotes.
const QUOTED_CHARS: usize = 200;

/// How two runs compare.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// Whether both ran the same workflow text.
    pub same_workflow: bool,
    /// Run-level differences: the workflow, then each input that differs.
    pub run: Vec<Difference>,
    /// Each step that ran in either, in the order it first ran in the first run, then those
    /// that ran in the second only.
    pub steps: Vec<StepComparison>,
    /// The first difference: the run's own, else the first differing step's first.
    pub first: Option<Difference>,
}

impl Comparison {
    pub fn is_same(&self) -> bool {
        self.first.is_none()
    }
}

/// One step in both runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepComparison {
    pub step: StepId,
    pub verdict: Verdict,
    /// Its first difference, when it differs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub difference: Option<Difference>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Same,
    Differs,
    OnlyInFirst,
    OnlyInSecond,
}

/// What differs, and how each run has it (quoted, cut when long).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<StepId>,
    /// In words: `the model's reply`, `the command's output`, `a decision`, `input \`n\``…
    pub what: String,
    /// Where in it they first differ (`text`, `stdout`, `tool_calls[0].arguments`), when
    /// not at the top.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub first: String,
    pub second: String,
}

/// Compares two runs' logs (each event with its seq).
pub fn compare_runs(first: &[(EventSeq, &Event)], second: &[(EventSeq, &Event)]) -> Comparison {
    let mut run = Vec::new();
    let (started_a, started_b) = (started(first), started(second));
    let same_workflow = match (started_a, started_b) {
        (Some(a), Some(b)) => a.workflow_hash == b.workflow_hash,
        _ => false,
    };
    if let (Some(a), Some(b)) = (started_a, started_b) {
        if !same_workflow {
            run.push(Difference {
                step: None,
                what: "the workflow".into(),
                field: None,
                first: format!("{} ({})", a.workflow_name, a.workflow_hash),
                second: format!("{} ({})", b.workflow_name, b.workflow_hash),
            });
        }
        run.extend(input_differences(&a.inputs, &b.inputs));
    }
    let (end_a, end_b) = (ending(first), ending(second));
    if end_a != end_b {
        run.push(Difference {
            step: None,
            what: "how the run ended".into(),
            field: None,
            first: end_a.into(),
            second: end_b.into(),
        });
    }
    let (traces_a, order_a) = traces(first);
    let (traces_b, order_b) = traces(second);
    let mut steps = Vec::new();
    for step in &order_a {
        let verdict_and_difference = match traces_b.get(step) {
            None => (Verdict::OnlyInFirst, None),
            Some(b) => match first_difference(step, &traces_a[step], b) {
                None => (Verdict::Same, None),
                Some(d) => (Verdict::Differs, Some(d)),
            },
        };
        steps.push(StepComparison {
            step: step.clone(),
            verdict: verdict_and_difference.0,
            difference: verdict_and_difference.1,
        });
    }
    for step in order_b.iter().filter(|s| !traces_a.contains_key(*s)) {
        steps.push(StepComparison {
            step: step.clone(),
            verdict: Verdict::OnlyInSecond,
            difference: None,
        });
    }
    let first_step = steps.iter().find_map(|s| match s.verdict {
        Verdict::Same => None,
        Verdict::Differs => s.difference.clone(),
        Verdict::OnlyInFirst | Verdict::OnlyInSecond => Some(Difference {
            step: Some(s.step.clone()),
            what: "whether it ran".into(),
            field: None,
            first: ran_in(s.verdict == Verdict::OnlyInFirst),
            second: ran_in(s.verdict == Verdict::OnlyInSecond),
        }),
    });
    Comparison {
        same_workflow,
        first: run.first().cloned().or(first_step),
        run,
        steps,
    }
}

/// How a run's log ends: succeeded, failed, cancelled, or not ended.
fn ending(events: &[(EventSeq, &Event)]) -> &'static str {
    events
        .iter()
        .rev()
        .find_map(|(_, e)| match e {
            Event::RunSucceeded {} => Some("succeeded"),
            Event::RunFailed { .. } => Some("failed"),
            Event::RunCancelled {} => Some("cancelled"),
            _ => None,
        })
        .unwrap_or("not ended")
}

fn ran_in(ran: bool) -> String {
    if ran { "ran" } else { "did not run" }.into()
}

fn started<'a>(events: &[(EventSeq, &'a Event)]) -> Option<&'a crate::event::RunStarted> {
    events.iter().find_map(|(_, e)| match e {
        Event::RunStarted(started) => Some(started),
        _ => None,
    })
}

fn input_differences(a: &Value, b: &Value) -> Vec<Difference> {
    let empty = serde_json::Map::new();
    let (a, b) = (
        a.as_object().unwrap_or(&empty),
        b.as_object().unwrap_or(&empty),
    );
    let mut names: Vec<&String> = a.keys().chain(b.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|name| a.get(*name) != b.get(*name))
        .map(|name| Difference {
            step: None,
            what: format!("input `{name}`"),
            field: None,
            first: a.get(name).map_or_else(|| "(not given)".into(), quote),
            second: b.get(name).map_or_else(|| "(not given)".into(), quote),
        })
        .collect()
}

/// What one step recorded, in order: each item's name and value.
type Trace = Vec<(String, Value)>;

/// Each step's trace, and the order steps first appear in the log.
fn traces(events: &[(EventSeq, &Event)]) -> (BTreeMap<StepId, Trace>, Vec<StepId>) {
    let mut traces: BTreeMap<StepId, Trace> = BTreeMap::new();
    let mut order = Vec::new();
    let mut ops: BTreeMap<EventSeq, (StepId, &'static str)> = BTreeMap::new();
    let mut push = |traces: &mut BTreeMap<StepId, Trace>, step: &StepId, what: String, value| {
        if !traces.contains_key(step) {
            order.push(step.clone());
        }
        traces.entry(step.clone()).or_default().push((what, value));
    };
    for (seq, event) in events {
        match event {
            Event::OperationStarted { step, request, .. } => {
                let (asked, returned) = names_of(request.kind_name());
                ops.insert(*seq, (step.clone(), returned));
                push(&mut traces, step, asked.into(), plain(request));
            }
            Event::OperationSucceeded { op, result } => {
                if let Some((step, returned)) = ops.get(op) {
                    push(&mut traces, step, (*returned).into(), plain(result));
                }
            }
            Event::OperationFailed { op, error } => {
                if let Some((step, _)) = ops.get(op) {
                    push(
                        &mut traces,
                        step,
                        "the operation's error".into(),
                        plain(error),
                    );
                }
            }
            Event::ApprovalGranted(granted) => {
                let decision = serde_json::json!({
                    "approved": true,
                    "mode": plain(&granted.mode),
                    "edited": plain(&granted.edited),
                    "hunks": plain(&granted.hunks),
                });
                push(&mut traces, &granted.step, "a decision".into(), decision);
            }
            Event::ApprovalRejected { step, reason, .. }
            | Event::StepRejected { step, reason, .. } => {
                let decision = serde_json::json!({ "approved": false, "reason": reason });
                push(&mut traces, step, "a decision".into(), decision);
            }
            Event::StepSkipped { step, reason } => {
                push(
                    &mut traces,
                    step,
                    "whether it ran".into(),
                    Value::String(format!("skipped: {reason}")),
                );
            }
            Event::StepSucceeded { step, output, .. } => {
                push(&mut traces, step, "its output".into(), plain(output));
            }
            Event::StepFailed { step, error, .. } => {
                push(
                    &mut traces,
                    step,
                    "how it failed".into(),
                    Value::String(error.clone()),
                );
            }
            Event::ApprovalRequested {
                step,
                proposal_hash,
                ..
            } => {
                let asked = Value::String(proposal_hash.clone());
                push(&mut traces, step, "what a person was asked".into(), asked);
            }
            Event::OperationOutcomeUnknown { op } => {
                if let Some((step, _)) = ops.get(op) {
                    let lost = Value::String("outcome unknown after a crash".into());
                    push(&mut traces, step, "how its operation ended".into(), lost);
                }
            }
            Event::StepCancelled { step } => {
                push(
                    &mut traces,
                    step,
                    "how it ended".into(),
                    Value::String("cancelled".into()),
                );
            }
            _ => {}
        }
    }
    (traces, order)
}

/// What a step's request and result of this kind are called.
fn names_of(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "llm_call" => ("the request to the model", "the model's reply"),
        "run_command" => ("the command", "the command's output"),
        "read_file" => ("the file it read", "the file's content"),
        "write_file" => ("the edit", "the edit's result"),
        "mcp_call" => ("the MCP call", "the MCP tool's answer"),
        _ => ("an operation", "an operation's result"),
    }
}

/// A recorded value as compared: JSON, without the fields that only say when or how fast.
/// A recorded value as compared: JSON, without a result's incidental fields, and with the
/// ids a provider gives tool calls (different at every call) replaced by their order of
/// appearance.
fn plain(value: &impl Serialize) -> Value {
    let mut value = serde_json::to_value(value).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        for field in INCIDENTAL_FIELDS {
            map.remove(field);
        }
    }
    number_call_ids(&mut value, &mut BTreeMap::new(), false);
    value
}

/// Replaces each tool call's id (`id` in an item of a `tool_calls` list, and `tool_call_id`)
/// by `call-N`, N its order of first appearance.
fn number_call_ids(value: &mut Value, ids: &mut BTreeMap<String, String>, in_calls: bool) {
    let number = |id: &mut Value, ids: &mut BTreeMap<String, String>| {
        if let Value::String(text) = id {
            let next = format!("call-{}", ids.len() + 1);
            *text = ids.entry(text.clone()).or_insert(next).clone();
        }
    };
    match value {
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                match key.as_str() {
                    "tool_call_id" => number(item, ids),
                    "id" if in_calls => number(item, ids),
                    "tool_calls" => number_call_ids(item, ids, true),
                    _ => number_call_ids(item, ids, false),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                number_call_ids(item, ids, in_calls);
            }
        }
        _ => {}
    }
}

fn first_difference(step: &StepId, a: &Trace, b: &Trace) -> Option<Difference> {
    for index in 0..a.len().max(b.len()) {
        match (a.get(index), b.get(index)) {
            (Some((what_a, va)), Some((what_b, vb))) if what_a == what_b && va == vb => {}
            (Some((what, va)), Some((what_b, vb))) if what == what_b => {
                let (field, va, vb) = narrow(va, vb);
                return Some(Difference {
                    step: Some(step.clone()),
                    what: what.clone(),
                    field,
                    first: quote(va),
                    second: quote(vb),
                });
            }
            (first, second) => {
                let said = |item: Option<&(String, Value)>| {
                    item.map_or_else(
                        || "(nothing more)".into(),
                        |(what, v)| format!("{what}: {}", quote(v)),
                    )
                };
                return Some(Difference {
                    step: Some(step.clone()),
                    what: "what it did next".into(),
                    field: None,
                    first: said(first),
                    second: said(second),
                });
            }
        }
    }
    None
}

/// Where two differing values first differ: down through the fields (in order) and items
/// they share, to the first one that differs.
fn narrow<'v>(a: &'v Value, b: &'v Value) -> (Option<String>, &'v Value, &'v Value) {
    let mut path = String::new();
    let (mut a, mut b) = (a, b);
    loop {
        let next = match (a, b) {
            (Value::Object(ma), Value::Object(mb)) => {
                let mut keys: Vec<&String> = ma.keys().chain(mb.keys()).collect();
                keys.sort();
                keys.dedup();
                keys.into_iter()
                    .find(|k| ma.get(*k) != mb.get(*k))
                    .and_then(|k| Some((format!(".{k}"), ma.get(k)?, mb.get(k)?)))
            }
            (Value::Array(xa), Value::Array(xb)) if xa.len() == xb.len() => xa
                .iter()
                .zip(xb)
                .position(|(x, y)| x != y)
                .map(|i| (format!("[{i}]"), &xa[i], &xb[i])),
            _ => None,
        };
        match next {
            Some((step, na, nb)) => {
                path.push_str(&step);
                (a, b) = (na, nb);
            }
            None => break,
        }
    }
    let field = (!path.is_empty()).then(|| path.trim_start_matches('.').to_string());
    (field, a, b)
}

/// A value quoted on one line: a string as itself, anything else as JSON; cut when long.
fn quote(value: &Value) -> String {
    let text = match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let mut quoted: String = text.chars().take(QUOTED_CHARS).collect();
    if quoted.len() < text.len() {
        quoted.push('…');
    }
    quoted
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tool_call_ids_compare_by_order_and_only_a_results_own_timing_is_left_out() {
        let a = json!({"kind": "llm_replied", "latency_ms": 5, "text": "",
            "tool_calls": [{"id": "call_abc", "name": "read_file"}],
            "data": {"duration_ms": 1}});
        let b = json!({"kind": "llm_replied", "latency_ms": 9, "text": "",
            "tool_calls": [{"id": "call_xyz", "name": "read_file"}],
            "data": {"duration_ms": 1}});
        assert_eq!(plain(&a), plain(&b));
        // A step's own data keeps its fields, whatever their names.
        let c = json!({"kind": "llm_replied", "latency_ms": 9, "text": "",
            "tool_calls": [{"id": "call_xyz", "name": "read_file"}],
            "data": {"duration_ms": 2}});
        assert_ne!(plain(&a), plain(&c));
        // The same id answered in a later message is the same call.
        let request = json!({"messages": [
            {"tool_calls": [{"id": "q1"}, {"id": "q2"}]},
            {"tool_call_id": "q2"}]});
        assert_eq!(
            plain(&request),
            json!({"messages": [
                {"tool_calls": [{"id": "call-1"}, {"id": "call-2"}]},
                {"tool_call_id": "call-2"}]})
        );
    }
}
