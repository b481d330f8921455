use stepwise_core::event::Event;
use stepwise_core::ids::{EventSeq, StepId};
use stepwise_core::operation::OperationRequest;
use stepwise_core::run::{SegmentKind, StepStatus};

use super::{RunModels, lock};
use crate::commands::{run_overview, step_detail};
use crate::holders::Holders;
use crate::testing::{append, engine, reads, record, temp_db};

fn started(step: &str) -> Event {
    Event::StepStarted {
        step: step.into(),
        attempt: 1,
    }
}

fn read(step: &str) -> Event {
    Event::OperationStarted {
        step: step.into(),
        attempt: 1,
        request: OperationRequest::ReadFile {
            path: "in.txt".into(),
            missing_ok: false,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_cut_off_by_a_crash_shows_as_outcome_unknown_not_running() {
    let db = temp_db();
    // r0 started an operation (seq 3); its process died; recovery found its outcome unknown.
    let run = record(
        &db.path,
        "run-crashed",
        &reads(2),
        1_000,
        "awaiting_approval",
        &[
            (1_000, started("r0")),
            (1_010, read("r0")),
            (
                5_000,
                Event::OperationOutcomeUnknown {
                    op: EventSeq::new(3),
                },
            ),
        ],
    );
    let engine = engine(&db.path);
    let models = RunModels::default();
    let overview = run_overview(&engine, &models, &Holders::default(), run.as_str())
        .await
        .expect("the run's overview");
    let bar = &overview.bars[0];
    assert_eq!(bar.1, StepStatus::OutcomeUnknown);
    // Segments in milliseconds since the run started (at 1,000).
    let kinds: Vec<_> = bar.2.iter().map(|s| (s.0, s.2)).collect();
    assert_eq!(
        kinds,
        [
            (SegmentKind::Executing, Some(4_000)),
            (SegmentKind::OutcomeUnknown, None)
        ],
        "the operation is no longer shown running"
    );
    assert_eq!(overview.head.unknown, [StepId::from("r0")]);

    let detail = step_detail(&engine, &models, run.as_str(), &StepId::from("r0"))
        .await
        .expect("the step");
    assert!(detail.operations[0].outcome_unknown);
    assert_eq!(detail.operations[0].ended_at_ms, Some(5_000));
    // Its time executing stopped at the crash; it now waits for a person.
    assert_eq!(detail.row.timing.executing_ms, 3_990);
    assert!(detail.row.timing.waiting_now);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_a_run_folds_only_the_new_events_and_agrees_with_a_fresh_read() {
    let db = temp_db();
    let run = record(
        &db.path,
        "run-live",
        &reads(3),
        1_000,
        "running",
        &[(1_000, started("r0"))],
    );
    let engine = engine(&db.path);
    let models = RunModels::default();
    let model = models
        .current(&engine, run.as_str())
        .await
        .expect("the model");
    append(
        &db.path,
        &run,
        "running",
        &[
            (1_100, read("r0")),
            (
                1_200,
                Event::OperationSucceeded {
                    op: EventSeq::new(3),
                    result: stepwise_core::operation::OperationResult::FileRead {
                        exists: true,
                        content: "x".into(),
                        hash: None,
                    },
                },
            ),
            (
                1_300,
                Event::StepSucceeded {
                    step: "r0".into(),
                    attempt: 1,
                    output: serde_json::Value::Null,
                },
            ),
            (1_300, started("r1")),
        ],
    );
    let changes = models.catch_up(&engine, &model).await.expect("caught up");
    let changed: Vec<_> = changes.steps.iter().map(StepId::as_str).collect();
    assert_eq!(changed, ["r0", "r1"]);
    assert_eq!(changes.newest_at_ms, 1_300);
    let fresh = RunModels::default();
    let again = fresh.current(&engine, run.as_str()).await.expect("read");
    let (now, model, again) = (2_000, lock(&model), lock(&again));
    assert_eq!(model.last_seq(), again.last_seq());
    for i in 0..3 {
        let (a, b) = (model.row_at(i, now), again.row_at(i, now));
        assert_eq!(
            serde_json::to_value(a).ok(),
            serde_json::to_value(b).ok(),
            "step {i}"
        );
    }
    assert_eq!(
        serde_json::to_value(model.head(None)).ok(),
        serde_json::to_value(again.head(None)).ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_models_kept_are_bounded() {
    let db = temp_db();
    let engine = engine(&db.path);
    let models = RunModels::with_limits(2, 1_000);
    for i in 0..4 {
        let run = record(
            &db.path,
            &format!("run-{i}"),
            &reads(1),
            1_000 + i,
            "running",
            &[],
        );
        models.current(&engine, run.as_str()).await.expect("read");
        assert!(models.len() <= 2);
    }
    // The most recently shown stays.
    assert!(models.cached("run-3").is_some());
    assert!(models.cached("run-0").is_none());
}
