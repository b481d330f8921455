//! The engine as an app embeds it, used from async code: concurrent reads while a run commits,
//! exact event subscriptions, the runs and approvals feeds, and a driver that holds a waiting
//! run and proposes an edit anew when its file changes.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use stepwise_core::event::Event;
use stepwise_core::ids::EventSeq;
use stepwise_core::run::RunStatus;
use stepwise_engine::{ApprovalChange, Command, Engine, EngineError, RefusalKind};

use crate::support::{Env, runtime};

/// Long enough for anything that should happen at once, short enough to fail a hung test.
const PATIENCE: Duration = Duration::from_secs(30);

fn engine(env: &Env, hold: bool) -> Engine {
    let mut config = env.engine_config();
    config.hold_waiting_runs = hold;
    Engine::open(config).expect("open the engine")
}

/// `n` read_file steps, each needing the one before.
fn read_chain(env: &Env, n: usize) -> std::path::PathBuf {
    env.write("input.txt", "hello\n");
    let mut yaml = String::from("name: reads\nsteps:\n");
    for i in 0..n {
        let needs = if i == 0 {
            String::new()
        } else {
            format!("    needs: [r{}]\n", i - 1)
        };
        write!(
            yaml,
            "  - id: r{i}\n    type: read_file\n    path: input.txt\n{needs}"
        )
        .expect("format");
    }
    env.workflow("reads.yaml", &yaml)
}

async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within {PATIENCE:?}"))
}

#[test]
fn many_concurrent_reads_succeed_while_a_run_commits() {
    let env = Env::new();
    let workflow = read_chain(&env, 150);
    runtime().block_on(async {
        let engine = engine(&env, false);
        let handle = engine
            .start_run(env.start_request(workflow))
            .await
            .expect("start");
        let run = handle.run_id().to_string();
        let done = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..8)
            .map(|_| {
                let engine = engine.clone();
                let run = run.clone();
                let done = Arc::clone(&done);
                tokio::spawn(async move {
                    let mut rounds = 0;
                    let mut last_seen = EventSeq::ZERO;
                    while !done.load(Ordering::Relaxed) || rounds == 0 {
                        let listed = engine.list_runs(10).await.expect("list runs");
                        assert_eq!(listed.len(), 1);
                        let loaded = engine.load_run(&run[..8]).await.expect("load the run");
                        // Each read sees a consistent, never older, state of the log.
                        assert!(loaded.row.last_seq >= last_seen);
                        assert_eq!(loaded.state.last_seq(), loaded.row.last_seq);
                        last_seen = loaded.row.last_seq;
                        engine.approvals(None).await.expect("approvals");
                        rounds += 1;
                    }
                    rounds
                })
            })
            .collect();
        let status = within("the run's end", handle.wait()).await.expect("drive");
        done.store(true, Ordering::Relaxed);
        assert_eq!(status, RunStatus::Succeeded);
        for reader in readers {
            let rounds = within("a reader's end", reader).await.expect("a reader");
            assert!(rounds >= 1);
        }
        let loaded = engine.load_run(&run).await.expect("load");
        assert!(
            loaded
                .state
                .steps()
                .all(|(_, s)| s.status.as_str() == "succeeded")
        );
    });
}

#[test]
fn subscribing_after_seq_n_yields_exactly_the_events_after_n_in_order_once() {
    let env = Env::new();
    let workflow = read_chain(&env, 30);
    runtime().block_on(async {
        let engine = engine(&env, false);
        let handle = engine
            .start_run(env.start_request(workflow))
            .await
            .expect("start");
        let run = handle.run_id().to_string();
        // Subscribed while the run is being driven: catch-up and live events meet exactly.
        let mut live = engine.subscribe_run(&run, EventSeq::ZERO);
        let collect_live = async {
            let mut seqs = Vec::new();
            while let Some(event) = live.next().await {
                seqs.push(event.expect("an event").seq().get());
            }
            seqs
        };
        let (status, live_seqs) =
            tokio::join!(handle.wait(), within("the feed's end", collect_live));
        assert_eq!(status.expect("drive"), RunStatus::Succeeded);
        let last = engine.find_run(&run).await.expect("the run").last_seq.get();
        assert_eq!(live_seqs, (1..=last).collect::<Vec<_>>());

        for after in [0, 1, 7, last - 1, last, last + 5] {
            let events: Vec<_> = within(
                "a finished run's feed to end",
                engine
                    .subscribe_run(&run, EventSeq::new(after))
                    .into_stream()
                    .collect::<Vec<_>>(),
            )
            .await;
            let seqs: Vec<u64> = events
                .into_iter()
                .map(|e| e.expect("an event").seq().get())
                .collect();
            assert_eq!(
                seqs,
                (after + 1..=last).collect::<Vec<_>>(),
                "after {after}"
            );
        }
    });
}

#[test]
fn the_runs_feed_reports_a_new_run_and_its_status() {
    let env = Env::new();
    let workflow = env.workflow(
        "wait.yaml",
        "name: wait\nsteps:\n  - id: gate\n    type: approval\n    message: go?\n",
    );
    runtime().block_on(async {
        let engine = engine(&env, false);
        let mut runs = engine.subscribe_runs().await.expect("subscribe");
        let handle = engine
            .start_run(env.start_request(workflow))
            .await
            .expect("start");
        let run = handle.run_id().to_string();
        let status = handle.wait().await.expect("drive");
        assert_eq!(status, RunStatus::AwaitingApproval);
        let mut seen = Vec::new();
        while seen.last().map(String::as_str) != Some("awaiting_approval") {
            let row = within("a change of the run", runs.next())
                .await
                .expect("a row");
            assert_eq!(row.run_id, run);
            seen.push(row.status.as_str().to_string());
        }
    });
}

#[test]
fn a_driver_holding_a_waiting_run_proposes_anew_when_the_file_changes() {
    let env = Env::new();
    env.write("doc.txt", "v1\n");
    let workflow = env.workflow(
        "edit.yaml",
        "name: edit\nsteps:\n  - id: change\n    type: edit_file\n    path: doc.txt\n    content: \"v2\\n\"\n",
    );
    runtime().block_on(async {
        let engine = engine(&env, true);
        let mut inbox = engine.subscribe_approvals().await.expect("subscribe");
        let handle = engine.start_run(env.start_request(workflow)).await.expect("start");
        let run = handle.run_id().to_string();
        let ApprovalChange::Waiting(first) = within("the proposal", inbox.next())
            .await
            .expect("a change")
        else {
            panic!("expected a waiting proposal");
        };
        assert_eq!(first.run_id, run);

        // Nobody approves; the file changes under the proposal. The holding driver sees it.
        env.write("doc.txt", "edited by hand\n");
        let settled = within("the stale proposal to go", inbox.next())
            .await
            .expect("a change");
        let ApprovalChange::Settled { how, proposal_hash, .. } = settled else {
            panic!("expected the stale proposal to settle, got {settled:?}");
        };
        assert_eq!(proposal_hash, first.approval.proposal_hash);
        assert!(how.starts_with("voided"), "{how}");
        let ApprovalChange::Waiting(fresh) = within("the fresh proposal", inbox.next())
            .await
            .expect("a change")
        else {
            panic!("expected a fresh proposal");
        };
        assert_ne!(fresh.approval.proposal_hash, first.approval.proposal_hash);
        let stepwise_core::event::Proposal::EditFile { diff, .. } = &fresh.approval.proposal else {
            panic!("an edit proposal");
        };
        assert!(diff.contains("-edited by hand") && diff.contains("+v2"), "{diff}");

        // The stale proposal can no longer be approved; the fresh one can.
        let stale = engine
            .send(
                &run,
                Command::Approve {
                    step: "change".into(),
                    comment: None,
                    edited: None,
                    proposal: Some(first.approval.proposal_hash.clone()),
                },
            )
            .await;
        assert!(
            matches!(&stale, Err(EngineError::Refused(r)) if r.kind == RefusalKind::ProposalChanged),
            "{stale:?}"
        );
        let applied = engine
            .send(
                &run,
                Command::Approve {
                    step: "change".into(),
                    comment: Some("fine".into()),
                    edited: None,
                    proposal: Some(fresh.approval.proposal_hash.clone()),
                },
            )
            .await
            .expect("the fresh proposal is approved");
        assert!(applied.seq.is_some());
        let status = within("the run's end", handle.wait()).await.expect("drive");
        assert_eq!(status, RunStatus::Succeeded);
        assert_eq!(env.read("doc.txt").as_deref(), Some("v2\n"));

        let loaded = engine.load_run(&run).await.expect("load");
        let voided = loaded
            .events
            .iter()
            .filter(|(_, e)| matches!(e, Event::ProposalVoided { .. }))
            .count();
        assert_eq!(voided, 1);
    });
}

#[test]
fn an_engine_that_adopts_runs_takes_over_a_run_whose_cli_holder_was_killed() {
    use crate::support::{release, wait_for_fifo};
    let env = Env::new();
    env.workspace_policy("  - allow: run_command\n    unchecked_shell: true\n");
    let ready = env.fifo("ready.fifo");
    let go = env.fifo("go.fifo");
    let workflow = env.workflow(
        "adopt.yaml",
        r#"
name: adopt
steps:
  - id: long
    type: run_command
    command: "echo started > ready.fifo; exec sleep 600"
  - id: gate
    type: approval
    message: carry on?
  - id: after
    type: run_command
    needs: [gate]
    command: "echo started > ready.fifo; cat go.fifo > /dev/null; echo done > after.txt"
"#,
    );
    let holder = env.spawn_run(&workflow);
    assert_eq!(wait_for_fifo(&ready, PATIENCE).as_deref(), Some("started"));
    runtime().block_on(async {
        let engine = engine(&env, true);
        let run = engine.unfinished_runs().await.expect("runs")[0]
            .run_id
            .clone();
        let adopting = engine.adopt_unheld_runs().await.expect("adopt");
        let mut events = engine.subscribe_run(run.as_str(), EventSeq::ZERO);
        holder.kill();

        // The command it found running is of unknown outcome; this engine now holds the run.
        loop {
            let event = within("the takeover", events.next())
                .await
                .expect("an event")
                .expect("readable");
            if matches!(event.event, Event::OperationOutcomeUnknown { .. }) {
                break;
            }
        }
        let me = crate::backend::holder_text(std::process::id());
        assert_eq!(
            engine.holder(&run).await.expect("holder").as_deref(),
            Some(me.as_str())
        );
        assert!(engine.drives(&run));

        // Decisions from here reach it; it goes on driving.
        engine
            .send(
                run.as_str(),
                Command::Resolve {
                    step: "long".into(),
                    resolution: stepwise_core::event::Resolution::MarkDone,
                },
            )
            .await
            .expect("resolve");
        engine
            .send(
                run.as_str(),
                Command::Approve {
                    step: "gate".into(),
                    comment: None,
                    edited: None,
                    proposal: None,
                },
            )
            .await
            .expect("approve");
        let ready_again = ready.clone();
        let started = tokio::task::spawn_blocking(move || wait_for_fifo(&ready_again, PATIENCE))
            .await
            .expect("wait");
        assert_eq!(started.as_deref(), Some("started"));
        release(&go);
        loop {
            let event = within("the run's end", events.next()).await;
            match event {
                Some(Ok(e)) if e.ends_run() => {
                    assert!(matches!(e.event, Event::RunSucceeded {}), "{:?}", e.event);
                    break;
                }
                Some(Ok(_)) => {}
                other => panic!("the feed ended early: {other:?}"),
            }
        }
        adopting.abort();
    });
    assert_eq!(env.read("after.txt").as_deref(), Some("done\n"));
}

/// At FULL a run's commits write over a write-ahead log grown ahead (one checkpoint interval,
/// about 4 MiB) rather than grow it at each commit, which costs a journal commit of the file
/// system each time; at NORMAL (where a commit does not sync) the log is left to grow.
#[test]
fn at_full_the_write_ahead_log_is_grown_before_the_first_commit() {
    for (durability, grown) in [
        (stepwise_engine::Durability::Full, true),
        (stepwise_engine::Durability::Normal, false),
    ] {
        let env = Env::new();
        let workflow = read_chain(&env, 3);
        let mut wal = env.db.clone().into_os_string();
        wal.push("-wal");
        runtime().block_on(async {
            let mut config = env.engine_config();
            config.durability = durability;
            let engine = Engine::open(config).expect("open the engine");
            let handle = engine
                .start_run(env.start_request(workflow))
                .await
                .expect("start");
            let status = within("the run's end", handle.wait()).await.expect("drive");
            assert_eq!(status, RunStatus::Succeeded);
            let len = std::fs::metadata(&wal).expect("the log").len();
            assert_eq!(len >= 1000 * 4096, grown, "{durability:?}: {len} bytes");
        });
    }
}
