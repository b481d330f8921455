//! What the store guarantees, checked on each backend (SQLite, and PostgreSQL where a test
//! server is given: see `backends/mod.rs`). Every test runs the same calls on both and expects
//! the same answers.

#![allow(clippy::unwrap_used)]

mod backends;

use serde_json::{Value, json};
use stepwise_core::cause::{CauseKind, RunCause};
use stepwise_core::ids::{EventSeq, RunId};
use stepwise_core::run::RunStatus;
use stepwise_store::{
    CommandRef, CommandState, HandledCommand, INLINE_LIMIT, NewCommand, NewEvent, NewRun,
    NewSignal, Rememberer, RunFilter, Store, StoreError,
};

fn rid(id: &str) -> RunId {
    RunId::from(id)
}

fn seq(n: u64) -> EventSeq {
    EventSeq::new(n)
}

fn new_run(id: &str, at: i64) -> NewRun {
    NewRun {
        run_id: id.into(),
        workflow_name: "build".into(),
        workflow_path: "workflows/build.yaml".into(),
        workflow_hash: "sha256:abc".into(),
        workspace: "/tmp/ws".into(),
        trigger: "cli".into(),
        status: "running".into(),
        created_at_ms: at,
        parent: None,
        cause: None,
    }
}

fn event(event_type: &str, payload: Value) -> NewEvent {
    NewEvent {
        event_type: event_type.into(),
        schema_version: 1,
        recorded_at_ms: 2_000,
        correlation_id: None,
        causation_seq: None,
        payload,
    }
}

fn reply(cost: u64) -> NewEvent {
    event(
        "OperationSucceeded",
        json!({"result": {"kind": "llm_replied", "cost_micro_usd": cost}}),
    )
}

#[test]
fn events_round_trip_exactly_with_blobs_and_the_chain_is_the_same_on_every_backend() {
    let big = "x".repeat(INLINE_LIMIT * 3);
    let mut links = Vec::new();
    for mut backend in backends::all() {
        let store = &mut backend.store;
        let first = NewEvent {
            correlation_id: Some("op-1".into()),
            ..event("RunStarted", json!({"inputs": {"n": 3, "f": 0.1}}))
        };
        assert_eq!(
            store
                .create_run(&new_run("run-1", 1_000), std::slice::from_ref(&first))
                .unwrap(),
            seq(1)
        );
        let second = NewEvent {
            causation_seq: Some(seq(1)),
            schema_version: 2,
            ..event(
                "FileRead",
                json!({"content": big, "nested": [{"$blob": "not a ref"}]}),
            )
        };
        let last = store
            .append(
                &rid("run-1"),
                seq(1),
                &[second.clone(), reply(250)],
                Some("awaiting_approval"),
            )
            .unwrap();
        assert_eq!(last, seq(3), "{}", backend.name);
        let loaded = store.load_events(&rid("run-1"), seq(0)).unwrap();
        assert_eq!(loaded.len(), 3);
        assert_eq!(loaded[0].payload, first.payload, "{}", backend.name);
        assert_eq!(loaded[0].correlation_id.as_deref(), Some("op-1"));
        assert_eq!(loaded[1].payload, second.payload, "{}", backend.name);
        assert_eq!(loaded[1].schema_version, 2);
        assert_eq!(loaded[1].causation_seq, Some(seq(1)));
        let page = store.load_events_page(&rid("run-1"), seq(1), 1).unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].seq, seq(2));
        let at = store
            .load_events_at(&rid("run-1"), &[seq(3), seq(1), seq(9)])
            .unwrap();
        assert_eq!(
            at.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [seq(1), seq(3)]
        );
        let row = store.run(&rid("run-1")).unwrap().unwrap();
        assert_eq!(row.last_seq, seq(3));
        assert_eq!(row.status, RunStatus::parse("awaiting_approval").unwrap());
        assert_eq!(row.cost_micro_usd, 250, "{}", backend.name);
        assert_eq!(row.updated_at_ms, 2_000);
        let verified = store.verify_run(&rid("run-1")).unwrap();
        assert!(verified.is_intact(), "{}: {verified:?}", backend.name);
        assert_eq!((verified.events, verified.blobs), (3, 1));
        links.push(verified.last_link.unwrap());
    }
    // The same events make the same chain, whichever database holds them: what `db copy`
    // verifies a copy by.
    assert!(links.windows(2).all(|w| w[0] == w[1]), "{links:?}");
}

#[test]
fn an_append_from_a_stale_seq_is_refused_whole() {
    for mut backend in backends::all() {
        let store = &mut backend.store;
        store
            .create_run(&new_run("r", 1), &[event("A", json!(1))])
            .unwrap();
        store
            .append(&rid("r"), seq(1), &[event("B", json!(2))], None)
            .unwrap();
        let error = store
            .append(
                &rid("r"),
                seq(1),
                &[event("C", json!(3)), event("D", json!(4))],
                None,
            )
            .unwrap_err();
        assert!(
            matches!(error, StoreError::Conflict { expected, actual, .. } if expected == seq(1) && actual == seq(2)),
            "{}: {error}",
            backend.name
        );
        assert_eq!(store.load_events(&rid("r"), seq(0)).unwrap().len(), 2);
        let missing = store
            .append(&rid("nope"), seq(0), &[event("A", json!(1))], None)
            .unwrap_err();
        assert!(matches!(missing, StoreError::RunNotFound(_)), "{missing}");
        let taken = store
            .create_run(&new_run("r", 1), &[event("A", json!(1))])
            .unwrap_err();
        assert!(
            matches!(taken, StoreError::RunExists(_)),
            "{}: {taken}",
            backend.name
        );
    }
}

#[test]
fn two_writers_racing_on_one_run_never_both_append() {
    for mut backend in backends::all() {
        backend
            .store
            .create_run(&new_run("race", 1), &[event("A", json!(1))])
            .unwrap();
        let reopen = &backend.reopen;
        let outcomes: Vec<bool> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|i| {
                    let mut store = reopen();
                    scope.spawn(move || {
                        store
                            .append(&rid("race"), seq(1), &[event("B", json!(i))], None)
                            .is_ok()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(
            outcomes.iter().filter(|won| **won).count(),
            1,
            "{}",
            backend.name
        );
        assert_eq!(
            backend.store.run(&rid("race")).unwrap().unwrap().last_seq,
            seq(2)
        );
    }
}

#[test]
fn runs_are_found_listed_paged_and_followed_by_change() {
    for mut backend in backends::all() {
        let store = &mut backend.store;
        for (i, (id, workflow, status)) in [
            ("abc1", "build", "succeeded"),
            ("abc2", "Deploy-Prod", "failed"),
            ("abd3", "build", "running"),
        ]
        .into_iter()
        .enumerate()
        {
            let run = NewRun {
                workflow_name: workflow.into(),
                status: status.into(),
                ..new_run(id, 1_000 + i as i64)
            };
            store
                .create_run(&run, &[event("RunStarted", json!({}))])
                .unwrap();
        }
        assert_eq!(store.find_run("abd").unwrap().run_id, rid("abd3"));
        assert!(matches!(
            store.find_run("abc"),
            Err(StoreError::AmbiguousRun { .. })
        ));
        assert!(matches!(
            store.find_run("zz"),
            Err(StoreError::RunNotFound(_))
        ));
        let listed: Vec<String> = store
            .list_runs(10)
            .unwrap()
            .into_iter()
            .map(|r| r.run_id.to_string())
            .collect();
        assert_eq!(listed, ["abd3", "abc2", "abc1"], "{}", backend.name);
        let unfinished: Vec<String> = store
            .unfinished_runs()
            .unwrap()
            .into_iter()
            .map(|r| r.run_id.to_string())
            .collect();
        assert_eq!(unfinished, ["abd3"]);
        let filter = RunFilter {
            words: vec!["deploy".into()],
            ..RunFilter::default()
        };
        let page = store.runs_page(&filter, 0, 10).unwrap();
        assert_eq!(page.len(), 1, "{}", backend.name);
        assert_eq!(page[0].run_id, rid("abc2"));
        let except = RunFilter {
            status: Some("succeeded".into()),
            except: vec![rid("abc2")],
            ..RunFilter::default()
        };
        assert_eq!(store.count_runs(&except).unwrap(), 1);
        let only = RunFilter {
            only: Some(vec![]),
            ..RunFilter::default()
        };
        assert_eq!(store.count_runs(&only).unwrap(), 0, "{}", backend.name);
        assert_eq!(
            store.count_runs_by_status().unwrap(),
            [
                ("failed".to_string(), 1),
                ("running".into(), 1),
                ("succeeded".into(), 1)
            ]
        );
        let before = store.last_change_seq().unwrap();
        store
            .append(&rid("abc1"), seq(1), &[event("Note", json!({}))], None)
            .unwrap();
        let changed = store.runs_changed_since(before, 10).unwrap();
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].run_id, rid("abc1"));
        assert!(changed[0].change_seq > before);
        // A child run is listed under its parent.
        let child = NewRun {
            trigger: stepwise_core::subrun::CHILD_TRIGGER.into(),
            parent: Some(rid("abc1")),
            ..new_run("child", 5_000)
        };
        store
            .create_run(&child, &[event("RunStarted", json!({}))])
            .unwrap();
        let all: Vec<String> = store
            .runs_page(&RunFilter::default(), 0, 10)
            .unwrap()
            .into_iter()
            .map(|r| r.run_id.to_string())
            .collect();
        assert_eq!(all, ["abd3", "abc2", "abc1", "child"], "{}", backend.name);
        assert_eq!(
            store.runs_from(&rid("abc1")).unwrap()[0].run_id,
            rid("child")
        );
    }
}

#[test]
fn commands_are_handled_exactly_once_with_the_events_they_lead_to() {
    for mut backend in backends::all() {
        let store = &mut backend.store;
        store
            .create_run(&new_run("r", 1), &[event("A", json!(1))])
            .unwrap();
        let command = |body| NewCommand {
            run_id: rid("r"),
            body,
            issued_by: "ann".into(),
            issued_on: Some("alpha".into()),
            issued_at_ms: 5,
        };
        let first = store
            .insert_command(&command(json!({"approve": 1})))
            .unwrap();
        // Who sent it, and from which machine, are kept.
        let stored = store.command(first).unwrap().unwrap();
        assert_eq!(
            (stored.issued_by.as_str(), stored.issued_on.as_deref()),
            ("ann", Some("alpha"))
        );
        let second = store
            .insert_command(&command(json!({"pause": true})))
            .unwrap();
        assert!(second > first);
        assert_eq!(store.pending_commands(&rid("r")).unwrap().len(), 2);
        assert_eq!(
            store.pending_commands_after(first).unwrap(),
            [(second, rid("r"))],
            "{}",
            backend.name
        );
        let handled = |id| HandledCommand {
            command: CommandRef::Pending(id),
            state: CommandState::Applied,
            outcome: json!({"ok": true}),
            handled_at_ms: 9,
            handled_by: "holder".into(),
        };
        store
            .append_handling(
                &rid("r"),
                seq(1),
                &[event("Approved", json!({}))],
                None,
                &[handled(first)],
            )
            .unwrap();
        let row = store.command(first).unwrap().unwrap();
        assert_eq!(row.state, CommandState::Applied);
        assert_eq!(row.outcome, Some(json!({"ok": true})));
        assert_eq!(row.handled_by.as_deref(), Some("holder"));
        // Handled once: a second time fails and writes nothing.
        let again = store
            .append_handling(
                &rid("r"),
                seq(2),
                &[event("Approved", json!({}))],
                None,
                &[handled(first)],
            )
            .unwrap_err();
        assert!(
            matches!(again, StoreError::CommandHandled(id) if id == first),
            "{}: {again}",
            backend.name
        );
        assert_eq!(store.run(&rid("r")).unwrap().unwrap().last_seq, seq(2));
        let refused = HandledCommand {
            command: CommandRef::New(command(json!({"cancel": true}))),
            state: CommandState::Refused,
            ..handled(0)
        };
        let ids = store.handle_commands(&[handled(second), refused]).unwrap();
        assert_eq!(ids.len(), 2);
        assert_eq!(
            store.command(ids[1]).unwrap().unwrap().state,
            CommandState::Refused
        );
        assert!(store.pending_commands(&rid("r")).unwrap().is_empty());
        let missing = store.insert_command(&NewCommand {
            run_id: rid("nope"),
            ..command(json!({}))
        });
        assert!(matches!(missing, Err(StoreError::RunNotFound(_))));
    }
}

#[test]
fn signals_are_recorded_once_and_taken_once_and_file_changes_claimed_once() {
    for mut backend in backends::all() {
        let store = &mut backend.store;
        let signal = |key: &str| NewSignal {
            name: "deploy".into(),
            payload: json!({"v": key}),
            idempotency_key: key.into(),
            correlation_id: None,
            source: "cli".into(),
            created_at_ms: 10,
        };
        let (one, new) = store.record_signal(&signal("k1")).unwrap();
        assert!(new);
        let (same, new) = store.record_signal(&signal("k1")).unwrap();
        assert!(!new);
        assert_eq!(same.signal_id, one.signal_id);
        assert!(store.signal_ready("deploy", "run", 4).unwrap());
        let taken = store.take_signal("deploy", "run", 4).unwrap().unwrap();
        assert_eq!(taken.consumed_by, Some(("run".into(), 4)));
        // The same wait performed again finds what it took; another finds nothing.
        assert_eq!(
            store
                .take_signal("deploy", "run", 4)
                .unwrap()
                .unwrap()
                .signal_id,
            one.signal_id
        );
        assert!(store.take_signal("deploy", "other", 1).unwrap().is_none());
        assert!(!store.signal_ready("deploy", "other", 1).unwrap());
        assert_eq!(
            store.latest_signal("deploy").unwrap().unwrap().signal_id,
            one.signal_id
        );
        assert_eq!(store.signals(10).unwrap().len(), 1);
        // Change keys hold a NUL between their parts.
        let keys = ["a\0v1".to_string(), "b\0v1".to_string()];
        let firing = |claimed: &[usize], keys: &[String]| NewSignal {
            name: "files:/w/a.yaml".into(),
            payload: json!({"changes": claimed.iter().map(|&i| keys[i].clone()).collect::<Vec<_>>()}),
            idempotency_key: claimed
                .iter()
                .map(|&i| keys[i].replace('\0', "@"))
                .collect::<Vec<_>>()
                .join("|"),
            correlation_id: None,
            source: "watch".into(),
            created_at_ms: 20,
        };
        let first = store
            .record_file_firing("/w/a.yaml", &keys[..1], |c| firing(c, &keys[..1]))
            .unwrap()
            .unwrap();
        let second = store
            .record_file_firing("/w/a.yaml", &keys, |c| firing(c, &keys))
            .unwrap()
            .unwrap();
        assert_eq!(
            second.payload,
            json!({"changes": ["b\0v1"]}),
            "{}",
            backend.name
        );
        assert!(
            store
                .record_file_firing("/w/a.yaml", &keys, |c| firing(c, &keys))
                .unwrap()
                .is_none()
        );
        let unstarted = store
            .unstarted_signals("files:/w/a.yaml", "/w/a.yaml", 0, 0)
            .unwrap();
        assert_eq!(unstarted.len(), 2);
        // A run started by the first firing: one per firing and workflow.
        let caused = NewRun {
            workflow_path: "/w/a.yaml".into(),
            cause: Some(RunCause {
                signal_id: first.signal_id,
                kind: CauseKind::Files,
                summary: "modify a".into(),
            }),
            ..new_run("caused", 30)
        };
        store
            .create_run(&caused, &[event("RunStarted", json!({}))])
            .unwrap();
        let twice = store
            .create_run(
                &NewRun {
                    run_id: rid("caused-again"),
                    ..caused.clone()
                },
                &[event("RunStarted", json!({}))],
            )
            .unwrap_err();
        assert!(
            matches!(twice, StoreError::CauseStarted { .. }),
            "{}: {twice}",
            backend.name
        );
        assert_eq!(
            store.run(&rid("caused")).unwrap().unwrap().cause.as_deref(),
            Some("modify a")
        );
        let left = store
            .unstarted_signals("files:/w/a.yaml", "/w/a.yaml", 0, 0)
            .unwrap();
        assert_eq!(
            left.iter().map(|s| s.signal_id).collect::<Vec<_>>(),
            [second.signal_id]
        );
        assert_eq!(
            store.runs_in_workspace_since("/tmp/ws", 0).unwrap().len(),
            1
        );
    }
}

#[test]
fn memory_remembers_recalls_by_words_and_forgets() {
    for mut backend in backends::all() {
        let store = &mut backend.store;
        let by = Rememberer {
            run_id: "r",
            step: "s",
            at_ms: 1,
        };
        assert!(
            !store
                .remember("notes", "deploy", "Deploy with make release", by)
                .unwrap()
        );
        assert!(
            !store
                .remember("notes", "tests", "run cargo test first", by)
                .unwrap()
        );
        assert!(
            store
                .remember(
                    "notes",
                    "tests",
                    "run cargo test --workspace",
                    Rememberer { at_ms: 2, ..by }
                )
                .unwrap()
        );
        let recalled = store.recall("notes", "how to DEPLOY a release").unwrap();
        assert_eq!(recalled[0].key, "deploy", "{}", backend.name);
        assert_eq!(recalled.len(), 1);
        assert_eq!(store.memory_entries("notes").unwrap().len(), 2);
        assert_eq!(store.memories().unwrap()[0].entries, 2);
        assert_eq!(store.memories().unwrap()[0].updated_at_ms, 2);
        assert!(store.forget("notes", "deploy").unwrap());
        assert!(!store.forget("notes", "deploy").unwrap());
        assert_eq!(store.recall("notes", "").unwrap().len(), 1);
    }
}

#[test]
fn telemetry_is_exported_by_one_holder_from_where_it_left_off() {
    for mut backend in backends::all() {
        let store = &mut backend.store;
        store.start_telemetry("c1", 100).unwrap();
        store
            .create_run(
                &new_run("r", 150),
                &[event("A", json!(1)), event("B", json!(2))],
            )
            .unwrap();
        assert_eq!(
            store.claim_telemetry("c1", "p1", 200, 1_000).unwrap(),
            Some(100)
        );
        assert_eq!(store.claim_telemetry("c1", "p2", 300, 1_000).unwrap(), None);
        let pending = store.telemetry_pending("c1", 100, 10).unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].1, 0, "{}", backend.name);
        assert!(!store.advance_telemetry("c1", "p2", "r", (0, 2)).unwrap());
        assert!(store.advance_telemetry("c1", "p1", "r", (0, 2)).unwrap());
        assert!(!store.advance_telemetry("c1", "p1", "r", (0, 2)).unwrap());
        assert!(store.telemetry_pending("c1", 100, 10).unwrap().is_empty());
        store.release_telemetry("c1", "p1").unwrap();
        assert_eq!(
            store.claim_telemetry("c1", "p2", 400, 1_000).unwrap(),
            Some(100)
        );
    }
}

#[test]
fn blobs_are_stored_once_by_their_hash() {
    for mut backend in backends::all() {
        let store = &mut backend.store;
        let hash = store.put_blob(b"hello").unwrap();
        assert_eq!(hash, stepwise_core::hash::content_hash(b"hello"));
        assert_eq!(store.put_blob(b"hello").unwrap(), hash);
        let other = stepwise_core::hash::content_hash(b"\0bytes\xff");
        store
            .put_hashed_blobs(&[(other.clone(), b"\0bytes\xff".to_vec())])
            .unwrap();
        assert_eq!(
            store.get_blob(&other).unwrap().as_deref(),
            Some(&b"\0bytes\xff"[..])
        );
        assert_eq!(
            store.get_blob("sha256:none").unwrap(),
            None,
            "{}",
            backend.name
        );
    }
}

#[test]
fn a_snapshot_reads_one_commit() {
    for mut backend in backends::all() {
        backend
            .store
            .create_run(&new_run("r", 1), &[event("A", json!(1))])
            .unwrap();
        let mut writer = (backend.reopen)();
        let seen = backend
            .store
            .snapshot(|store: &Store| {
                let before = store.run(&rid("r"))?.unwrap().last_seq;
                writer.append(&rid("r"), seq(1), &[event("B", json!(2))], None)?;
                let events = store.load_events(&rid("r"), seq(0))?.len();
                Ok::<_, StoreError>((before, events))
            })
            .unwrap();
        assert_eq!(seen, (seq(1), 1), "{}", backend.name);
        assert_eq!(
            backend.store.load_events(&rid("r"), seq(0)).unwrap().len(),
            2
        );
    }
}
