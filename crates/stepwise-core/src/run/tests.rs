//! Given events, when an input arrives, then these decisions: the state machine tested
//! directly, without IO.

use std::sync::Arc;

use serde_json::json;

use super::{RunState, RunStatus, StepStatus, replay};
use crate::event::{ApprovalGranted, DecisionMode, Event, Proposal, Resolution, RunStarted};
use crate::ids::EventSeq;
use crate::operation::{CommandOutcome, OperationRequest, OperationResult};
use crate::policy::{Effect, GateKind, RuleSpec};
use crate::workflow::parse_workflow;

/// A run under test: the state plus the log it has produced so far.
struct Run {
    state: RunState,
    log: Vec<(EventSeq, Event)>,
}

impl Run {
    fn start(yaml: &str, policy: Vec<RuleSpec>) -> Run {
        let workflow =
            Arc::new(parse_workflow("test.yaml", yaml).unwrap_or_else(|e| panic!("{e}")));
        let started = RunStarted {
            run_id: "run".into(),
            workflow_name: workflow.name.clone(),
            workflow_path: "test.yaml".into(),
            workflow_hash: workflow.source_hash.clone(),
            workflow_source: yaml.into(),
            workspace: "/ws".into(),
            inputs: workflow
                .resolve_inputs(&Default::default())
                .expect("inputs"),
            trigger: "test".into(),
            started_by: "tester".into(),
            max_parallel: workflow.max_parallel,
            policy,
            approvers: None,
            host: None,
            models: Default::default(),
            budget: None,
            checkpoint: Default::default(),
            pauses: Default::default(),
            fork: None,
            subworkflows: Default::default(),
            step_types: Vec::new(),
            parent: None,
            cause: None,
        };
        let state = RunState::new(workflow, started.clone()).expect("state");
        let mut run = Run {
            state,
            log: vec![(EventSeq::FIRST, Event::RunStarted(started))],
        };
        let decided = run.state.advance().expect("decisions apply");
        run.record(decided);
        run
    }

    fn record(&mut self, events: Vec<Event>) -> Vec<Event> {
        let first = self.log.len() as u64 + 1;
        for (i, e) in events.iter().enumerate() {
            self.log.push((EventSeq::new(first + i as u64), e.clone()));
        }
        events
    }

    /// Applies an input and returns the decisions it leads to.
    fn input(&mut self, event: Event) -> Vec<Event> {
        let seq = self.state.last_seq().next();
        self.state.apply(seq, &event).expect("input applies");
        self.log.push((seq, event));
        let decided = self.state.advance().expect("decisions apply");
        self.record(decided)
    }

    fn last_op(&self) -> EventSeq {
        self.log
            .iter()
            .rev()
            .find(|(_, e)| matches!(e, Event::OperationStarted { .. }))
            .map(|(s, _)| *s)
            .expect("an operation was started")
    }

    fn types(events: &[Event]) -> Vec<&'static str> {
        events.iter().map(Event::type_name).collect()
    }
}

fn allow(kind: GateKind) -> RuleSpec {
    RuleSpec {
        effect: Effect::Allow,
        kind: Some(kind),
        paths: vec![],
        commands: vec![],
        env: vec![],
        pass_env: vec![],
        unchecked_shell: false,
        arguments: Default::default(),
        source: "test policy, rule 1".into(),
    }
}

fn exited(code: i32) -> OperationResult {
    OperationResult::CommandFinished(CommandOutcome {
        exit_code: Some(code),
        signal: None,
        timed_out: false,
        stdout: "out".into(),
        stderr: String::new(),
        stdout_bytes: 3,
        stderr_bytes: 0,
        duration_ms: 5,
        saved_output: None,
        changes: Vec::new(),
    })
}

#[test]
fn pure_steps_are_decided_together_without_operations() {
    let run = Run::start(
        "name: t\nsteps:\n  - id: a\n    type: set\n    values: { n: 1 }\n  - id: b\n    type: set\n    needs: [a]\n    values: { n: \"${steps.a.output.n + 1}\" }\n",
        vec![],
    );
    let decided: Vec<&Event> = run.log.iter().skip(1).map(|(_, e)| e).collect();
    assert_eq!(decided.len(), 3);
    assert!(
        matches!(decided[1], Event::StepSucceeded { step, output, .. } if step == "b" && *output == json!({"n": 2}))
    );
    assert!(matches!(decided[2], Event::RunSucceeded {}));
}

#[test]
fn an_edit_reads_proposes_waits_writes_and_succeeds() {
    let mut run = Run::start(
        "name: t\nsteps:\n  - id: e\n    type: edit_file\n    path: a.txt\n    content: \"new\\n\"\n",
        vec![],
    );
    assert!(matches!(&run.log[1].1, Event::StepStarted { .. }));
    assert!(matches!(
        &run.log[2].1,
        Event::OperationStarted {
            request: OperationRequest::ReadFile {
                missing_ok: true,
                ..
            },
            ..
        }
    ));
    let op = run.last_op();
    let result = OperationResult::FileRead {
        exists: true,
        content: "old\n".into(),
        hash: Some("sha256:old".into()),
    };
    let decided = run.input(Event::OperationSucceeded { op, result });
    let [
        Event::ApprovalRequested {
            proposal,
            proposal_hash,
            reason,
            ..
        },
    ] = decided.as_slice()
    else {
        panic!("expected an approval request, got {decided:?}");
    };
    let Proposal::EditFile {
        base_hash, diff, ..
    } = proposal
    else {
        panic!("edit proposal")
    };
    assert_eq!(base_hash.as_deref(), Some("sha256:old"));
    assert!(diff.contains("-old") && diff.contains("+new"), "{diff}");
    assert!(reason.contains("needs approval by default"));
    assert_eq!(run.state.status(), RunStatus::AwaitingApproval);

    let decided = run.input(Event::ApprovalGranted(ApprovalGranted {
        step: "e".into(),
        attempt: 1,
        proposal_hash: proposal_hash.clone(),
        approved_hash: proposal_hash.clone(),
        edited: None,
        by: "ann".into(),
        host: None,
        mode: DecisionMode::Manual,
        comment: None,
        hunks: None,
    }));
    assert!(
        matches!(&decided[..], [Event::OperationStarted { request: OperationRequest::WriteFile { base_hash: Some(b), .. }, .. }] if b == "sha256:old")
    );
    let op = run.last_op();
    let written = OperationResult::FileWritten {
        before_hash: Some("sha256:old".into()),
        after_hash: "sha256:new".into(),
        recovered: false,
        changes: Vec::new(),
    };
    let decided = run.input(Event::OperationSucceeded {
        op,
        result: written,
    });
    assert_eq!(Run::types(&decided), ["StepSucceeded", "RunSucceeded"]);
}

#[test]
fn a_voided_edit_proposal_is_proposed_again_against_the_file_as_it_is_now() {
    let mut run = Run::start(
        "name: t\nsteps:\n  - id: e\n    type: edit_file\n    path: a.txt\n    content: \"new\\n\"\n",
        vec![],
    );
    let read = |content: &str, hash: &str| OperationResult::FileRead {
        exists: true,
        content: content.into(),
        hash: Some(hash.into()),
    };
    let op = run.last_op();
    let decided = run.input(Event::OperationSucceeded {
        op,
        result: read("old\n", "sha256:old"),
    });
    let Some(Event::ApprovalRequested { proposal_hash, .. }) = decided.first() else {
        panic!("expected an approval request, got {decided:?}");
    };
    let stale_hash = proposal_hash.clone();

    let decided = run.input(Event::ProposalVoided {
        step: "e".into(),
        attempt: 1,
        proposal_hash: stale_hash.clone(),
        path: "a.txt".into(),
        found_hash: Some("sha256:other".into()),
    });
    assert!(
        matches!(
            &decided[..],
            [Event::OperationStarted {
                request: OperationRequest::ReadFile {
                    missing_ok: true,
                    ..
                },
                attempt: 1,
                ..
            }]
        ),
        "{decided:?}"
    );
    assert_eq!(run.state.status(), RunStatus::Running);
    assert!(run.state.pending_approvals().is_empty());

    let op = run.last_op();
    let decided = run.input(Event::OperationSucceeded {
        op,
        result: read("other\n", "sha256:other"),
    });
    let [
        Event::ApprovalRequested {
            proposal,
            proposal_hash,
            attempt: 1,
            ..
        },
    ] = decided.as_slice()
    else {
        panic!("expected a fresh approval request, got {decided:?}");
    };
    assert_ne!(*proposal_hash, stale_hash);
    let Proposal::EditFile {
        base_hash, diff, ..
    } = proposal
    else {
        panic!("edit proposal");
    };
    assert_eq!(base_hash.as_deref(), Some("sha256:other"));
    assert!(diff.contains("-other") && diff.contains("+new"), "{diff}");

    // The old proposal is gone: voiding it again is a corrupt log, not a second re-proposal.
    let seq = run.state.last_seq().next();
    let again = run.state.apply(
        seq,
        &Event::ProposalVoided {
            step: "e".into(),
            attempt: 1,
            proposal_hash: stale_hash,
            path: "a.txt".into(),
            found_hash: None,
        },
    );
    assert!(again.is_err());
}

#[test]
fn an_allow_rule_approves_and_records_which_rule() {
    let run = Run::start(
        "name: t\nsteps:\n  - id: c\n    type: run_command\n    command: [\"true\"]\n",
        vec![allow(GateKind::RunCommand)],
    );
    let types: Vec<_> = run.log.iter().skip(1).map(|(_, e)| e.type_name()).collect();
    assert_eq!(
        types,
        ["StepStarted", "ApprovalGranted", "OperationStarted"]
    );
    let Event::ApprovalGranted(granted) = &run.log[2].1 else {
        panic!()
    };
    assert!(
        matches!(&granted.mode, DecisionMode::Rule { rule } if rule.contains("test policy, rule 1"))
    );
}

#[test]
fn deny_beats_allow_and_fails_the_step() {
    let deny = RuleSpec {
        effect: Effect::Deny,
        ..allow(GateKind::RunCommand)
    };
    let run = Run::start(
        "name: t\nsteps:\n  - id: c\n    type: run_command\n    command: [\"true\"]\n",
        vec![allow(GateKind::RunCommand), deny],
    );
    assert!(run.log.iter().any(
        |(_, e)| matches!(e, Event::StepFailed { error, .. } if error.contains("refused by policy"))
    ));
    assert_eq!(run.state.status(), RunStatus::Failed);
}

#[test]
fn a_failed_command_is_retried_after_backoff_without_asking_again() {
    let mut run = Run::start(
        "name: t\nsteps:\n  - id: c\n    type: run_command\n    command: [\"flaky\"]\n    retry: { max_attempts: 2, backoff: 250ms }\n",
        vec![],
    );
    let Some((_, Event::ApprovalRequested { proposal_hash, .. })) = run.log.last().cloned() else {
        panic!("asks first")
    };
    run.input(Event::ApprovalGranted(ApprovalGranted {
        step: "c".into(),
        attempt: 1,
        proposal_hash: proposal_hash.clone(),
        approved_hash: proposal_hash,
        edited: None,
        by: "ann".into(),
        host: None,
        mode: DecisionMode::Manual,
        comment: None,
        hunks: None,
    }));
    let op = run.last_op();
    let decided = run.input(Event::OperationSucceeded {
        op,
        result: exited(1),
    });
    assert!(
        matches!(&decided[..], [Event::StepRetryScheduled { attempt: 2, delay_ms: 250, error, .. }] if error.contains("exited with code 1"))
    );
    let decided = run.input(Event::RetryDue {
        step: "c".into(),
        attempt: 2,
    });
    assert_eq!(
        Run::types(&decided),
        ["StepStarted", "OperationStarted"],
        "the approval covers the retry"
    );
    let op = run.last_op();
    let decided = run.input(Event::OperationSucceeded {
        op,
        result: exited(1),
    });
    assert_eq!(Run::types(&decided), ["StepFailed", "RunFailed"]);
}

#[test]
fn when_false_skips_the_step_and_its_dependents_unless_they_run_after_finished() {
    let run = Run::start(
        "name: t\ninputs:\n  go: { type: boolean, default: false }\nsteps:\n  - id: a\n    type: set\n    when: ${inputs.go}\n    values: { x: 1 }\n  - id: b\n    type: set\n    needs: [a]\n    values: { x: 2 }\n  - id: c\n    type: set\n    needs: [a]\n    after: finished\n    values: { a_was: \"${steps.a.status}\" }\n",
        vec![],
    );
    assert_eq!(
        run.state.step_state(&"a".into()).map(|s| s.status),
        Some(StepStatus::Skipped)
    );
    assert_eq!(
        run.state.step_state(&"b".into()).map(|s| s.status),
        Some(StepStatus::Skipped)
    );
    let c = run.state.step_state(&"c".into()).expect("c");
    assert_eq!(c.output, Some(json!({"a_was": "skipped"})));
    assert_eq!(run.state.status(), RunStatus::Succeeded);
}

#[test]
fn max_parallel_holds_operations_back_until_a_slot_frees() {
    let mut run = Run::start(
        "name: t\nmax_parallel: 1\nsteps:\n  - id: a\n    type: read_file\n    path: a\n  - id: b\n    type: read_file\n    path: b\n",
        vec![],
    );
    let started = |run: &Run| {
        run.log
            .iter()
            .filter(|(_, e)| matches!(e, Event::OperationStarted { .. }))
            .count()
    };
    assert_eq!(started(&run), 1);
    let op = run.last_op();
    let result = OperationResult::FileRead {
        exists: true,
        content: "x".into(),
        hash: Some("h".into()),
    };
    let decided = run.input(Event::OperationSucceeded { op, result });
    assert_eq!(Run::types(&decided), ["StepSucceeded", "OperationStarted"]);
}

#[test]
fn a_rejection_ends_the_step_with_its_reason_and_fails_the_run() {
    let mut run = Run::start(
        "name: t\nsteps:\n  - id: gate\n    type: approval\n    message: ship it?\n",
        vec![],
    );
    let decided = run.input(Event::ApprovalRejected {
        step: "gate".into(),
        attempt: 1,
        proposal_hash: "h".into(),
        by: "ann".into(),
        host: None,
        reason: "not on a Friday".into(),
    });
    assert_eq!(Run::types(&decided), ["StepRejected", "RunFailed"]);
    assert_eq!(
        run.state
            .step_state(&"gate".into())
            .and_then(|s| s.reason.clone())
            .as_deref(),
        Some("not on a Friday")
    );
}

#[test]
fn cancelling_a_waiting_run_cancels_its_open_steps() {
    let mut run = Run::start(
        "name: t\nsteps:\n  - id: gate\n    type: approval\n    message: ok?\n  - id: after\n    type: set\n    needs: [gate]\n    values: { x: 1 }\n",
        vec![],
    );
    let decided = run.input(Event::RunCancelRequested { by: "ann".into() });
    assert_eq!(
        Run::types(&decided),
        ["StepCancelled", "StepCancelled", "RunCancelled"]
    );
}

#[test]
fn an_unknown_outcome_waits_for_a_person_and_retry_repeats_the_same_request() {
    let mut run = Run::start(
        "name: t\nsteps:\n  - id: c\n    type: run_command\n    command: [\"deploy\"]\n",
        vec![allow(GateKind::RunCommand)],
    );
    let op = run.last_op();
    let decided = run.input(Event::OperationOutcomeUnknown { op });
    assert!(decided.is_empty());
    assert_eq!(run.state.status(), RunStatus::AwaitingApproval);
    let decided = run.input(Event::OperationResolved {
        op,
        resolution: Resolution::Retry,
        by: "ann".into(),
    });
    let (
        Some((_, Event::OperationStarted { request: first, .. })),
        [Event::OperationStarted { request: again, .. }],
    ) = (
        run.log.iter().find(|(s, _)| *s == op).cloned(),
        decided.as_slice(),
    )
    else {
        panic!("expected the operation again: {decided:?}");
    };
    assert_eq!(&first, again);
}

#[test]
fn replay_matches_its_own_log_and_names_the_first_tampered_decision() {
    let mut run = Run::start(
        "name: t\nsteps:\n  - id: c\n    type: run_command\n    command: [\"true\"]\n",
        vec![allow(GateKind::RunCommand)],
    );
    let op = run.last_op();
    run.input(Event::OperationSucceeded {
        op,
        result: exited(0),
    });
    let workflow = Arc::clone(run.state.workflow());
    let report = replay(Arc::clone(&workflow), &run.log).expect("replay matches");
    assert_eq!(report.status, RunStatus::Succeeded);

    let mut tampered = run.log.clone();
    tampered[3].1 = Event::OperationStarted {
        step: "c".into(),
        attempt: 1,
        request: OperationRequest::ReadFile {
            path: "x".into(),
            missing_ok: false,
        },
    };
    let Err(super::ReplayError::Diverged(divergence)) = replay(workflow, &tampered) else {
        panic!("must diverge")
    };
    assert_eq!(divergence.seq, EventSeq::new(4));
}

#[test]
fn an_edit_of_the_workspace_policy_always_asks_even_when_edits_are_allowed() {
    let mut run = Run::start(
        "name: t\nsteps:\n  - id: e\n    type: edit_file\n    path: .stepwise/policy.yaml\n    content: \"rules: []\\n\"\n",
        vec![allow(GateKind::EditFile)],
    );
    let op = run.last_op();
    let result = OperationResult::FileRead {
        exists: false,
        content: String::new(),
        hash: None,
    };
    let decided = run.input(Event::OperationSucceeded { op, result });
    assert!(
        matches!(&decided[..], [Event::ApprovalRequested { reason, .. }] if reason.contains(".stepwise/")),
        "{decided:?}"
    );
}

#[test]
fn an_event_that_cannot_apply_changes_nothing() {
    let mut run = Run::start(
        "name: t\nsteps:\n  - id: gate\n    type: approval\n    message: go?\n",
        vec![],
    );
    let before = run.state.last_seq();
    let status = run.state.step_state(&"gate".into()).map(|s| s.status);
    // An approval naming a proposal the step does not wait on.
    let wrong = Event::ApprovalGranted(ApprovalGranted {
        step: "gate".into(),
        attempt: 1,
        proposal_hash: "sha256:other".into(),
        approved_hash: "sha256:other".into(),
        edited: None,
        by: "ann".into(),
        host: None,
        mode: DecisionMode::Manual,
        comment: None,
        hunks: None,
    });
    assert!(run.state.apply(before.next(), &wrong).is_err());
    // An answer to an operation that never started, and an unknown step.
    let answer = Event::OperationOutcomeUnknown {
        op: EventSeq::new(99),
    };
    assert!(run.state.apply(before.next(), &answer).is_err());
    let unknown = Event::StepCancelled {
        step: "nope".into(),
    };
    assert!(run.state.apply(before.next(), &unknown).is_err());
    assert_eq!(run.state.last_seq(), before);
    assert_eq!(
        run.state.step_state(&"gate".into()).map(|s| s.status),
        status
    );

    // The right event still applies at the same seq.
    let hash = run
        .state
        .step_state(&"gate".into())
        .and_then(|s| s.pending_approval.as_ref())
        .map(|p| p.proposal_hash.clone())
        .expect("the gate waits");
    let right = Event::ApprovalGranted(ApprovalGranted {
        step: "gate".into(),
        attempt: 1,
        proposal_hash: hash.clone(),
        approved_hash: hash,
        edited: None,
        by: "ann".into(),
        host: None,
        mode: DecisionMode::Manual,
        comment: None,
        hunks: None,
    });
    let decided = run.input(right);
    assert!(
        matches!(decided.last(), Some(Event::RunSucceeded {})),
        "{decided:?}"
    );
}
