//! Fuzzing of workflow files: thousands of workflows mutated from valid seeds (bytes, tokens,
//! lines, nesting), each read, checked and, when valid, driven through the state machine to
//! its end with made-up results and approvals. Nothing may panic, nothing may hang, and every
//! error must name a place and speak the user's language. A sample also goes through the real
//! `stepwise validate`.
//!
//! The generator is a seeded xorshift, so a failure names a case that reproduces exactly:
//! `STEPWISE_FUZZ_SEED=<seed> cargo test -p stepwise-tests fuzz`.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use stepwise_core::event::{ApprovalGranted, DecisionMode, Event, RunStarted};
use stepwise_core::ids::EventSeq;
use stepwise_core::llm::{LlmReply, ModelSpec, Price, ProviderKind, TokenUsage};
use stepwise_core::operation::{CommandOutcome, OperationRequest, OperationResult};
use stepwise_core::run::{RunState, RunStatus};
use stepwise_core::workflow::{Workflow, parse_workflow};

use crate::support::Env;

/// Cases per run: a few thousand, in a few seconds.
const CASES: u64 = 3_000;
/// One case may take this long before it counts as a hang.
const PATIENCE: Duration = Duration::from_secs(60);

const SEEDS: &[&str] = &[
    include_str!("../../workflows/fix-and-test.yaml"),
    include_str!("../../workflows/release-gate.yaml"),
    r#"name: every-kind
description: one of each
max_parallel: 2
inputs:
  n: {type: integer, default: 3}
  name: {type: string, default: "x"}
  flag: {type: boolean, default: true}
  items: {type: list, default: [1, 2]}
  conf: {type: object, default: {a: 1}}
policy:
  rules:
    - deny: run_command
      command: "rm *"
    - ask: edit_file
      path: "secrets/**"
steps:
  - id: read
    type: read_file
    path: notes/${inputs.name}.txt
  - id: compute
    type: set
    needs: [read]
    values:
      count: "${inputs.n * 2}"
      upper: "${inputs.name | upper}"
      nested: {list: ["${inputs.items}", 2], ok: "${steps.read.status == 'succeeded'}"}
  - id: edit
    type: edit_file
    needs: [compute]
    path: out.txt
    content: "count ${steps.compute.output.count}\n"
  - id: replace
    type: edit_file
    needs: [edit]
    path: out.txt
    find: "count"
    replace: "total"
  - id: cmd
    type: run_command
    needs: [compute]
    when: ${inputs.flag and steps.compute.output.count > 1}
    command: ["echo", "${steps.compute.output.upper}"]
    env: {LANG: C}
    timeout: 5s
    retry: {max_attempts: 3, backoff: 1s}
  - id: shell
    type: run_command
    needs: [cmd]
    after: finished
    command: echo hi && echo there
    max_output: 1024
  - id: gate
    type: approval
    needs: [shell]
    approval: required
    message: "ok? ${steps.cmd.output.stdout}"
"#,
    r#"name: models
budget: { usd: 0.001, tokens: 5000 }
steps:
  - id: read
    type: read_file
    path: notes.txt
  - id: ask
    type: prompt
    needs: [read]
    model: small
    system: Be brief.
    prompt: "Explain ${steps.read.output.content}"
    temperature: 0.2
    max_tokens: 64
  - id: classify
    type: analyze
    needs: [ask]
    model: small
    messages:
      - {role: user, content: "Label this: ${steps.ask.output.text}"}
    output_schema: {type: object, required: [label], properties: {label: {enum: [bug, feature]}}}
    schema_retries: 1
  - id: sum
    type: summarize
    needs: [classify]
    model: other
    text: ${steps.ask.output.text}
    max_words: 20
"#,
];

/// Words of the format and of YAML, and values that have broken parsers before.
const TOKENS: &[&str] = &[
    "${",
    "}",
    "${steps.",
    "${inputs.",
    "${1/0}",
    "| upper",
    "| nosuch",
    " is defined",
    "needs: [",
    "]",
    "[",
    "{",
    "type: ",
    "set",
    "read_file",
    "edit_file",
    "run_command",
    "approval",
    "when: ",
    "- id: x\n",
    "  - id: y\n    type: set\n    values: {}\n",
    "\n",
    "  ",
    "\t",
    ": ",
    "- ",
    "&a ",
    "*a",
    "<<: *a",
    "!!binary ",
    "!!str ",
    "---\n",
    "...\n",
    "~",
    "null",
    "1e999",
    "-1",
    "0",
    "99999999999999999999",
    "18446744073709551615",
    "'",
    "\"",
    "\\",
    "[[[[[[[[[[[[[[[[",
    "{{{{{{{{{{",
    "max_output: 18446744073709551615",
    "timeout: 0s",
    "timeout: 99999999h",
    "retry: {max_attempts: 0}",
    "retry: {max_attempts: 4294967295}",
    "after: finished",
    "approval: required",
    "path: ../../etc/passwd",
    "path: /etc/passwd",
    "path: \"a\\u0000b\"",
    "command: []",
    "command: \"\"",
    "env: {PATH: x}",
    "pass_env: [HOME]",
    "max_parallel: 0",
    "é",
    "\u{202e}",
    "\u{feff}",
    "#",
    "? ",
    "|\n",
    ">\n",
    "%YAML 1.2\n",
    "key: &anchor [*anchor]",
];

/// A small, seeded, reproducible generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// One mutated workflow.
fn mutate(rng: &mut Rng) -> String {
    let seed = SEEDS[rng.below(SEEDS.len())];
    let mut text: Vec<char> = seed.chars().collect();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(text.len() + 1);
        match rng.below(7) {
            0 if !text.is_empty() => {
                let at = at.min(text.len() - 1);
                let replacement = TOKENS[rng.below(TOKENS.len())]
                    .chars()
                    .next()
                    .unwrap_or(' ');
                text[at] = replacement;
            }
            1 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                text.splice(at..at, token.chars());
            }
            2 | 3 => {
                let lines: Vec<String> = text
                    .iter()
                    .collect::<String>()
                    .lines()
                    .map(str::to_string)
                    .collect();
                let mut lines = lines;
                if lines.is_empty() {
                    continue;
                }
                let i = rng.below(lines.len());
                let j = rng.below(lines.len());
                match rng.below(4) {
                    0 => {
                        lines.remove(i);
                    }
                    1 => {
                        let line = lines[i].clone();
                        lines.insert(j, line);
                    }
                    2 => lines.swap(i, j),
                    _ => {
                        let indent = " ".repeat(rng.below(9));
                        lines[i] = format!("{indent}{}", lines[i].trim_start());
                    }
                }
                text = lines.join("\n").chars().collect();
            }
            4 if !text.is_empty() => {
                let end = (at + rng.below(40)).min(text.len());
                text.drain(at.min(end)..end);
            }
            5 => {
                let depth = 1 + rng.below(120);
                let nest: String = "[".repeat(depth) + &"]".repeat(depth);
                text.splice(at..at, nest.chars());
            }
            _ => {
                let c = char::from_u32(rng.below(0x3000) as u32).unwrap_or('?');
                text.insert(at.min(text.len()), c);
            }
        }
    }
    text.into_iter().collect()
}

/// Words only a programmer would understand, which no error may contain.
const RUST_WORDS: &[&str] = &[
    "Depth {",
    "DuplicateKeyPolicy",
    "Option<",
    "untagged enum",
    "budget breached",
    "os error",
    ":0:0:",
    "panicked",
    "Some(",
    "None)",
];

/// Drives a valid workflow to its end: every operation succeeds with a plausible result and
/// every question is approved, for as long as it moves (a bounded number of inputs). Returns
/// the status it is left in.
fn drive(workflow: Arc<Workflow>, source: &str) -> Result<RunStatus, String> {
    let inputs = match workflow.resolve_inputs(&BTreeMap::new()) {
        Ok(inputs) => inputs,
        // A required input without a default: nothing to drive.
        Err(_) => return Ok(RunStatus::Running),
    };
    let started = RunStarted {
        run_id: "fuzz".into(),
        workflow_name: workflow.name.clone(),
        workflow_path: "fuzz.yaml".into(),
        workflow_hash: workflow.source_hash.clone(),
        workflow_source: source.into(),
        workspace: "/ws".into(),
        inputs,
        trigger: "fuzz".into(),
        started_by: "fuzz".into(),
        max_parallel: workflow.max_parallel,
        policy: Vec::new(),
        approvers: None,
        host: None,
        models: workflow
            .model_aliases()
            .into_iter()
            .map(|alias| {
                let spec = ModelSpec {
                    provider: "sim".into(),
                    kind: ProviderKind::Simulated,
                    base_url: None,
                    model: alias.to_string(),
                    api_key_env: None,
                    price: Price {
                        input_micro_usd_per_mtok: 1_000_000,
                        output_micro_usd_per_mtok: 1_000_000,
                    },
                    stream: true,
                    timeout_s: None,
                    idle_timeout_s: None,
                    context_tokens: None,
                };
                (alias.to_string(), spec)
            })
            .collect(),
        budget: workflow.budget,
        checkpoint: Default::default(),
        pauses: Default::default(),
        fork: None,
        subworkflows: Default::default(),
        step_types: Vec::new(),
        parent: None,
        cause: None,
    };
    let mut state = RunState::new(workflow, started).map_err(|e| e.to_string())?;
    let mut pending = state.advance().map_err(|e| e.to_string())?;
    let mut seq = 1 + pending.len() as u64;
    let mut ops: Vec<(EventSeq, OperationRequest)> = Vec::new();
    for _ in 0..500 {
        // What the decisions ask for.
        let first = seq - pending.len() as u64 + 1;
        for (offset, event) in pending.iter().enumerate() {
            if let Event::OperationStarted { request, .. } = event {
                ops.push((EventSeq::new(first + offset as u64), request.clone()));
            }
        }
        let input = if let Some((op, request)) = ops.pop() {
            Event::OperationSucceeded {
                op,
                result: result_for(&request),
            }
        } else if let Some((step, s)) = state
            .steps()
            .find(|(_, s)| s.pending_approval.is_some())
            .map(|(d, s)| (d.id.clone(), s.pending_approval.clone()))
        {
            let Some(p) = s else { break };
            Event::ApprovalGranted(ApprovalGranted {
                step,
                attempt: p.attempt,
                proposal_hash: p.proposal_hash.clone(),
                approved_hash: p.proposal_hash,
                edited: None,
                by: "fuzz".into(),
                host: None,
                mode: DecisionMode::Manual,
                comment: None,
                hunks: None,
            })
        } else {
            break;
        };
        seq += 1;
        state
            .apply(EventSeq::new(seq), &input)
            .map_err(|e| e.to_string())?;
        pending = state.advance().map_err(|e| e.to_string())?;
        seq += pending.len() as u64;
    }
    Ok(state.status())
}

fn result_for(request: &OperationRequest) -> OperationResult {
    match request {
        OperationRequest::ReadFile { .. } => OperationResult::FileRead {
            exists: true,
            content: "count = 1\n".into(),
            hash: Some(stepwise_core::hash::content_hash(b"count = 1\n")),
        },
        OperationRequest::ListFiles { .. } => OperationResult::FilesListed {
            paths: vec!["count.txt".into()],
            truncated: false,
        },
        OperationRequest::SearchFiles { .. } => OperationResult::FilesSearched {
            matches: Vec::new(),
            truncated: false,
        },
        OperationRequest::ReadBatch { requests } => OperationResult::ReadsDone {
            outcomes: requests
                .iter()
                .map(|r| stepwise_core::operation::ReadOutcome::Succeeded {
                    result: Box::new(result_for(r)),
                })
                .collect(),
        },
        OperationRequest::McpListTools { .. } => {
            OperationResult::McpToolsListed { tools: Vec::new() }
        }
        OperationRequest::Remember { .. } => OperationResult::Remembered { replaced: false },
        OperationRequest::Recall { .. } => OperationResult::Recalled {
            entries: Vec::new(),
        },
        OperationRequest::WaitSignal { name, .. } => OperationResult::SignalReceived {
            signal_id: 1,
            name: name.clone(),
            payload: serde_json::json!({"ok": true}),
            idempotency_key: "k".into(),
            correlation_id: None,
        },
        OperationRequest::RunWorkflow { .. } => OperationResult::WorkflowFinished {
            run_id: "child".into(),
            output: serde_json::json!({}),
        },
        OperationRequest::McpCall { .. } => OperationResult::McpCalled {
            content: String::new(),
            is_error: false,
            changes: Vec::new(),
        },
        OperationRequest::WriteFile {
            base_hash,
            content_hash,
            ..
        } => OperationResult::FileWritten {
            before_hash: base_hash.clone(),
            after_hash: content_hash.clone(),
            recovered: false,
            changes: Vec::new(),
        },
        OperationRequest::RunCommand(_) => OperationResult::CommandFinished(CommandOutcome {
            exit_code: Some(0),
            signal: None,
            timed_out: false,
            stdout: "ok\n".into(),
            stderr: String::new(),
            stdout_bytes: 3,
            stderr_bytes: 0,
            duration_ms: 1,
            saved_output: None,
            changes: Vec::new(),
        }),
        OperationRequest::LlmCall(request) => OperationResult::LlmReplied(Box::new(LlmReply {
            text: if request.output_schema.is_some() {
                "{\"label\": \"bug\"}".into()
            } else {
                "a reply".into()
            },
            finish_reason: "stop".into(),
            usage: TokenUsage {
                input_tokens: 10,
                output_tokens: 5,
            },
            latency_ms: 1,
            cost_micro_usd: 15,
            simulated: true,
            after_crash: false,
            attempts: 1,
            usage_estimated: false,
            tool_calls: Vec::new(),
        })),
    }
}

/// Checks one case; `Err` says what went wrong.
fn check_case(text: &str) -> Result<(), String> {
    let parsed = catch_unwind(AssertUnwindSafe(|| parse_workflow("fuzz.yaml", text)))
        .map_err(|_| "parse_workflow panicked".to_string())?;
    match parsed {
        Err(errors) => {
            for error in &errors.0 {
                let shown = error.to_string();
                if error.line == 0 {
                    return Err(format!("an error without a line: {shown}"));
                }
                if let Some(word) = RUST_WORDS.iter().find(|w| shown.contains(*w)) {
                    return Err(format!("an error says {word:?}: {shown}"));
                }
            }
            Ok(())
        }
        Ok(workflow) => {
            let workflow = Arc::new(workflow);
            match catch_unwind(AssertUnwindSafe(|| drive(workflow, text))) {
                Err(_) => Err("driving the run panicked".into()),
                Ok(Err(e)) => Err(format!("the state machine refused its own decisions: {e}")),
                Ok(Ok(_)) => Ok(()),
            }
        }
    }
}

fn seed() -> u64 {
    std::env::var("STEPWISE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_f00d_cafe_d00d)
}

#[test]
fn thousands_of_mutated_workflows_never_panic_hang_or_speak_rust() {
    let base = seed();
    let current = Arc::new(AtomicU64::new(0));
    let (done, finished) = std::sync::mpsc::channel();
    let progress = Arc::clone(&current);
    // The cases run on a thread of their own, so that a hang is reported with its case.
    std::thread::spawn(move || {
        let mut failures = Vec::new();
        let mut valid = 0;
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        for case in 0..CASES {
            progress.store(case, Ordering::SeqCst);
            let mut rng = Rng(base ^ (case.wrapping_add(1)).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let text = mutate(&mut rng);
            if parse_workflow("fuzz.yaml", &text).is_ok() {
                valid += 1;
            }
            if let Err(why) = check_case(&text) {
                failures.push(format!("case {case}: {why}\n--- workflow\n{text}\n---"));
            }
        }
        std::panic::set_hook(previous);
        let _ = done.send((failures, valid));
    });
    let (failures, valid) = match finished.recv_timeout(PATIENCE * 5) {
        Ok(result) => result,
        Err(_) => panic!(
            "case {} (seed {base}) has not finished: a hang",
            current.load(Ordering::SeqCst)
        ),
    };
    assert!(
        failures.is_empty(),
        "{} of {CASES} cases failed (seed {base}); the first:\n{}",
        failures.len(),
        failures[0]
    );
    eprintln!("fuzz: {valid} of {CASES} cases were valid workflows");
    // The generator must keep producing valid workflows too, or the state machine goes untested.
    assert!(
        valid > CASES / 20,
        "only {valid} of {CASES} cases were valid workflows"
    );
}

#[test]
fn the_driver_of_the_fuzz_runs_an_unmutated_workflow_to_success() {
    let source = SEEDS[2];
    let workflow = Arc::new(parse_workflow("seed.yaml", source).expect("the seed is valid"));
    assert_eq!(drive(workflow, source), Ok(RunStatus::Succeeded));
}

#[test]
fn the_real_binary_validates_a_sample_of_mutated_workflows_without_panicking() {
    let env = Env::new();
    let mut files = Vec::new();
    let mut rng = Rng(seed() ^ 0xb1a5_ed00);
    for i in 0..200 {
        let name = format!("case-{i}.yaml");
        env.workflow(&name, &mutate(&mut rng));
        files.push(name);
    }
    let mut args = vec!["validate"];
    args.extend(files.iter().map(String::as_str));
    let out = env.stepwise(&args);
    assert!(out.code == 0 || out.code == 2, "{out}");
    for word in RUST_WORDS {
        assert!(!out.stdout.contains(word), "says {word:?}:\n{}", out.stdout);
        assert!(!out.stderr.contains(word), "says {word:?}:\n{}", out.stderr);
    }
    // Every file got its verdict.
    for file in &files {
        assert!(
            out.stdout.contains(file.as_str()),
            "{file} has no verdict:\n{out}"
        );
    }
}
