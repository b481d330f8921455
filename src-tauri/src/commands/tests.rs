use stepwise_core::event::{Event, Proposal};
use stepwise_core::ids::StepId;
use tokio::sync::broadcast;

use super::approvals::inbox;
use super::run_view::{EventFilter, events_page};
use super::runs::runs_page;
use crate::holders::Holders;
use crate::testing::{append_unreadable, engine, reads, record, temp_db};
use crate::view::LiveSignal;

fn started(step: &str) -> Event {
    Event::StepStarted {
        step: step.into(),
        attempt: 1,
    }
}

const GATE: &str = "name: gate\nsteps:\n  - id: g\n    type: approval\n    message: ship it?\n";

fn asked() -> Event {
    Event::ApprovalRequested {
        step: "g".into(),
        attempt: 1,
        proposal: Proposal::Gate {
            message: "ship it?".into(),
        },
        proposal_hash: "sha256:00".into(),
        reason: "approval steps ask".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_raw_log_is_read_a_page_at_a_time_by_seq() {
    let db = temp_db();
    let events: Vec<_> = (0..9)
        .map(|i| (1_000 + i, started(&format!("r{i}"))))
        .collect();
    let run = record(&db.path, "run-log", &reads(9), 1_000, "running", &events);
    let engine = engine(&db.path);
    let none = EventFilter::default();
    let seqs =
        |page: &crate::view::EventPage| page.events.iter().map(|e| e.seq).collect::<Vec<_>>();
    let filter = EventFilter { text: "r7".into() };
    let found = events_page(&engine, run.as_str(), 0, 10, &filter)
        .await
        .expect("filtered");
    assert_eq!(seqs(&found), [9]);
    assert!(found.end);

    // An event further on that this version cannot read: the pages before it need not read it.
    append_unreadable(&db.path, &run);

    let first = events_page(&engine, run.as_str(), 0, 4, &none)
        .await
        .expect("page 1");
    assert_eq!(seqs(&first), [1, 2, 3, 4]);
    assert!(!first.end);
    let second = events_page(&engine, run.as_str(), 4, 4, &none)
        .await
        .expect("page 2");
    assert_eq!(seqs(&second), [5, 6, 7, 8]);
    assert_eq!(second.events[0].kind, "StepStarted");
    assert_eq!(second.events[0].step, Some(StepId::from("r3")));

    // The page that holds it fails, naming the run.
    let error = events_page(&engine, run.as_str(), 8, 4, &none)
        .await
        .expect_err("an unreadable event");
    assert!(error.message.contains("run-log"), "{}", error.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_reads_each_run_once_and_names_the_runs_it_cannot_read() {
    let db = temp_db();
    let waiting = record(
        &db.path,
        "run-waiting",
        GATE,
        1_000,
        "awaiting_approval",
        &[(1_000, started("g")), (4_242, asked())],
    );
    let broken = record(&db.path, "run-broken", GATE, 2_000, "running", &[]);
    append_unreadable(&db.path, &broken);
    let engine = engine(&db.path);
    let inbox = inbox(&engine)
        .await
        .expect("the inbox, whatever one run holds");
    assert_eq!(inbox.items.len(), 1);
    let item = &inbox.items[0];
    assert_eq!(item.run_id, waiting);
    assert_eq!(item.step.as_str(), "g");
    assert_eq!(item.requested_at_ms, 4_242, "when it was asked");
    assert_eq!(item.workspace, "/ws");
    assert_eq!(inbox.unreadable.len(), 1);
    assert_eq!(inbox.unreadable[0].run_id, broken);
    assert!(
        inbox.unreadable[0].message.contains("StepTeleported"),
        "{}",
        inbox.unreadable[0].message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runs_list_is_paged_filtered_and_counted_by_the_store() {
    let db = temp_db();
    for (i, status) in ["succeeded", "failed", "succeeded", "running", "succeeded"]
        .into_iter()
        .enumerate()
    {
        record(
            &db.path,
            &format!("run-{i}"),
            &reads(1),
            1_000 + i as i64,
            status,
            &[],
        );
    }
    let engine = engine(&db.path);
    let holders = Holders::default();
    // What the runs feed does at start: who drives each unfinished run (nobody drives run-3).
    for row in engine.unfinished_runs().await.expect("unfinished") {
        holders.refresh(&engine, &row).await;
    }
    let ids = |page: &crate::view::RunsPage| {
        page.runs
            .iter()
            .map(|r| r.run_id.to_string())
            .collect::<Vec<_>>()
    };
    let first = runs_page(&engine, &holders, None, "", 0, 2)
        .await
        .expect("page");
    assert_eq!(ids(&first), ["run-4", "run-3"]);
    assert_eq!(first.total, 5);
    assert_eq!(first.runs[1].status, "interrupted");
    let next = runs_page(&engine, &holders, Some("all"), "", 2, 2)
        .await
        .expect("page");
    assert_eq!(ids(&next), ["run-2", "run-1"]);

    let stopped = runs_page(&engine, &holders, Some("interrupted"), "", 0, 10)
        .await
        .expect("interrupted");
    assert_eq!(ids(&stopped), ["run-3"]);
    let running = runs_page(&engine, &holders, Some("running"), "", 0, 10)
        .await
        .expect("running");
    assert_eq!(
        running.total, 0,
        "an interrupted run is not counted as running"
    );
    let counts: Vec<_> = first
        .by_status
        .iter()
        .map(|c| (c.status.as_str(), c.count))
        .collect();
    assert_eq!(
        counts,
        [("failed", 1), ("succeeded", 3), ("interrupted", 1)]
    );
    let searched = runs_page(&engine, &holders, None, "RUN-1", 0, 10)
        .await
        .expect("search");
    assert_eq!(ids(&searched), ["run-1"]);
}

#[tokio::test]
async fn a_window_that_fell_behind_is_told_everything_may_be_stale() {
    let (live, receiver) = broadcast::channel(2);
    for _ in 0..5 {
        let _ = live.send(LiveSignal::Approvals {});
    }
    drop(live);
    let got = std::sync::Mutex::new(Vec::new());
    crate::live::relay_signals(receiver, |signal| {
        got.lock().expect("lock").push(signal);
        true
    })
    .await;
    let got = got.into_inner().expect("lock");
    assert!(
        matches!(got.first(), Some(LiveSignal::Lagged {})),
        "first {:?}",
        got.first()
    );
    assert_eq!(got.len(), 3, "the lag, then the two signals kept");
}
