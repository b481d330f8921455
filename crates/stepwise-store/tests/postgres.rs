//! What only PostgreSQL needs showing: the log refuses rewriting from any client, many
//! processes may create the schema at once, a newer schema is refused, and a connection the
//! server dropped is made anew.

#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used)]

mod backends;

use serde_json::json;
use stepwise_core::ids::{EventSeq, RunId};
use stepwise_store::{Durability, NewEvent, NewRun, PgTarget, Store, StoreError};

fn new_run(id: &str) -> NewRun {
    NewRun {
        run_id: id.into(),
        workflow_name: "build".into(),
        workflow_path: "workflows/build.yaml".into(),
        workflow_hash: "sha256:abc".into(),
        workspace: "/tmp/ws".into(),
        trigger: "cli".into(),
        status: "running".into(),
        created_at_ms: 1,
        parent: None,
        cause: None,
    }
}

fn event(payload: serde_json::Value) -> NewEvent {
    NewEvent {
        event_type: "A".into(),
        schema_version: 1,
        recorded_at_ms: 1,
        correlation_id: None,
        causation_seq: None,
        payload,
    }
}

fn open(url: &str) -> Store {
    Store::open_postgres(&PgTarget::parse(url, None).unwrap(), Durability::Full).unwrap()
}

#[test]
fn the_log_blobs_and_handled_commands_refuse_any_rewrite_even_from_another_client() {
    let Some(url) = backends::new_database() else {
        return;
    };
    let mut store = open(&url);
    store
        .create_run(&new_run("r"), &[event(json!({"big": "y".repeat(5_000)}))])
        .unwrap();
    let id = store
        .insert_command(&stepwise_store::NewCommand {
            run_id: RunId::from("r"),
            body: json!({}),
            issued_by: "ann".into(),
            issued_on: None,
            issued_at_ms: 1,
        })
        .unwrap();
    store
        .handle_commands(&[stepwise_store::HandledCommand {
            command: stepwise_store::CommandRef::Pending(id),
            state: stepwise_store::CommandState::Applied,
            outcome: json!({}),
            handled_at_ms: 2,
            handled_by: "holder".into(),
        }])
        .unwrap();
    let mut raw = backends::raw(&url);
    for (sql, refusal) in [
        ("UPDATE events SET payload = '{}'", "events are append-only"),
        ("DELETE FROM events", "events are append-only"),
        ("TRUNCATE events CASCADE", "events are append-only"),
        ("UPDATE blobs SET content = 'x'", "blobs are immutable"),
        ("DELETE FROM blobs", "blobs are immutable"),
        (
            "UPDATE commands SET state = 'pending'",
            "a handled command cannot change",
        ),
        ("DELETE FROM commands", "commands are never deleted"),
    ] {
        let error = raw.batch_execute(sql).unwrap_err();
        let message = error
            .as_db_error()
            .map(|db| db.message().to_owned())
            .unwrap_or_default();
        assert_eq!(message, refusal, "{sql}");
    }
    assert!(store.verify_run(&RunId::from("r")).unwrap().is_intact());
}

#[test]
fn many_processes_creating_the_schema_at_once_all_open_it() {
    let Some(url) = backends::new_database() else {
        return;
    };
    let stores: Vec<Store> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8).map(|_| scope.spawn(|| open(&url))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut first = stores.into_iter().next().unwrap();
    first.create_run(&new_run("r"), &[event(json!(1))]).unwrap();
    let mut raw = backends::raw(&url);
    let versions: i64 = raw
        .query_one("SELECT count(*) FROM stepwise_schema", &[])
        .unwrap()
        .get(0);
    assert_eq!(versions, 1);
}

#[test]
fn a_schema_from_a_newer_stepwise_is_refused_naming_both_versions() {
    let Some(url) = backends::new_database() else {
        return;
    };
    drop(open(&url));
    backends::raw(&url)
        .batch_execute("UPDATE stepwise_schema SET version = 99")
        .unwrap();
    let error = Store::open_postgres(&PgTarget::parse(&url, None).unwrap(), Durability::Full)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("newer stepwise") && error.contains("schema version 99"),
        "{error}"
    );
    assert!(error.starts_with("database `postgres://"), "{error}");
}

#[test]
fn a_connection_the_server_ended_is_made_anew_and_nothing_is_lost() {
    let Some(url) = backends::new_database() else {
        return;
    };
    let mut store = open(&url);
    store.create_run(&new_run("r"), &[event(json!(1))]).unwrap();
    let mut raw = backends::raw(&url);
    let dbname = url
        .split('/')
        .nth(3)
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    raw.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = $1 AND pid <> pg_backend_pid()",
        &[&dbname],
    )
    .unwrap();
    // The first call learns that the connection is gone, and says it may be tried again.
    let first = store.append(
        &RunId::from("r"),
        EventSeq::new(1),
        &[event(json!(2))],
        None,
    );
    let seq = match first {
        Ok(seq) => seq,
        Err(error) => {
            assert!(error.is_busy(), "{error}");
            assert!(matches!(error, StoreError::Postgres { .. }), "{error}");
            store
                .append(
                    &RunId::from("r"),
                    EventSeq::new(1),
                    &[event(json!(2))],
                    None,
                )
                .unwrap()
        }
    };
    assert_eq!(seq, EventSeq::new(2));
    assert_eq!(
        store
            .load_events(&RunId::from("r"), EventSeq::ZERO)
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn an_unreachable_server_is_named_without_a_password() {
    let target = PgTarget::parse("postgres://ann:hunter2@127.0.0.1:1/team", None).unwrap();
    let error = Store::open_postgres(&target, Durability::Full).unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with("database `postgres://ann@127.0.0.1:1/team` could not be reached"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
    assert!(error.is_busy());
}

#[test]
fn a_run_is_held_by_one_connection_until_it_lets_go_or_ends() {
    let Some(url) = backends::new_database() else {
        return;
    };
    let target = PgTarget::parse(&url, None).unwrap();
    let connect = || stepwise_store::PgStore::connect(&target, Durability::Full).unwrap();
    let (first, second) = (connect(), connect());
    assert_eq!(first.holder("r").unwrap(), None);
    first.try_hold("r", "pid 1 on alpha", 5).unwrap().unwrap();
    // Taking it again on the same connection is fine; another is refused and told whose.
    assert_eq!(
        second.try_hold("r", "pid 2 on beta", 6).unwrap(),
        Err("pid 1 on alpha".into())
    );
    assert_eq!(
        second.holder("r").unwrap().as_deref(),
        Some("pid 1 on alpha")
    );
    second
        .try_hold("other", "pid 2 on beta", 6)
        .unwrap()
        .unwrap();
    first.release_hold("r").unwrap();
    first.release_hold("r").unwrap();
    assert_eq!(second.holder("r").unwrap(), None);
    first.try_hold("r", "pid 1 on alpha", 7).unwrap().unwrap();
    // The server lets go of a connection's holds when it ends: a crashed holder's row says
    // nothing any more.
    drop(first);
    let mut waited = 0;
    while second.holder("r").unwrap().is_some() {
        assert!(
            waited < 100,
            "the server never let go of the ended connection's hold"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
        waited += 1;
    }
    second.try_hold("r", "pid 2 on beta", 8).unwrap().unwrap();
    assert_eq!(
        connect().holder("r").unwrap().as_deref(),
        Some("pid 2 on beta")
    );
    assert!(second.is_alive());
}
