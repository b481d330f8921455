//! For the app's tests: a temp database holding runs recorded event by event (as a driver
//! would have recorded them, crashes included), and an engine over it.

use std::path::{Path, PathBuf};

use serde_json::json;
use stepwise_core::event::{EVENT_SCHEMA_VERSION, Event, RunStarted};
use stepwise_core::hash::content_hash;
use stepwise_core::ids::{EventSeq, RunId};
use stepwise_engine::{Engine, EngineConfig};
use stepwise_store::{Durability, NewEvent, NewRun, Store};

pub struct TempDb {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

pub fn temp_db() -> TempDb {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("stepwise.db");
    TempDb { _dir: dir, path }
}

pub fn engine(db: &Path) -> Engine {
    Engine::open(EngineConfig::new(db)).expect("open the engine")
}

/// `n` read steps, each needing the one before.
pub fn reads(n: usize) -> String {
    let mut yaml = String::from("name: reads\nsteps:\n");
    for i in 0..n {
        yaml.push_str(&format!(
            "  - id: r{i}\n    type: read_file\n    path: in.txt\n"
        ));
        if i > 0 {
            yaml.push_str(&format!("    needs: [r{}]\n", i - 1));
        }
    }
    yaml
}

fn new_event(at: i64, event: &Event) -> NewEvent {
    NewEvent {
        event_type: event.type_name().to_string(),
        schema_version: EVENT_SCHEMA_VERSION,
        recorded_at_ms: at,
        correlation_id: None,
        causation_seq: None,
        payload: event.to_payload().expect("an event that serialises"),
    }
}

/// Records a run of the workflow `yaml` started at `started_at`, then `events` (each with the
/// time it was recorded), with `status` as the run's recorded status.
pub fn record(
    db: &Path,
    run: &str,
    yaml: &str,
    started_at: i64,
    status: &str,
    events: &[(i64, Event)],
) -> RunId {
    let mut store = Store::open(db, Durability::Normal).expect("open the store");
    let run_id = RunId::from(run);
    let started = RunStarted {
        run_id: run_id.clone(),
        workflow_name: "reads".into(),
        workflow_path: "/ws/reads.yaml".into(),
        workflow_hash: content_hash(yaml.as_bytes()),
        workflow_source: yaml.into(),
        workspace: "/ws".into(),
        inputs: json!({}),
        trigger: "test".into(),
        started_by: "ann".into(),
        max_parallel: 4,
        policy: Vec::new(),
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
    let row = NewRun {
        run_id: run_id.clone(),
        workflow_name: started.workflow_name.clone(),
        workflow_path: started.workflow_path.clone(),
        workflow_hash: started.workflow_hash.clone(),
        workspace: started.workspace.clone(),
        trigger: started.trigger.clone(),
        status: status.into(),
        created_at_ms: started_at,
        parent: None,
        cause: None,
    };
    let first = new_event(started_at, &Event::RunStarted(started));
    store.create_run(&row, &[first]).expect("create the run");
    append(db, &run_id, status, events);
    run_id
}

/// Appends `events` to a recorded run.
pub fn append(db: &Path, run_id: &RunId, status: &str, events: &[(i64, Event)]) {
    let mut store = Store::open(db, Durability::Normal).expect("open the store");
    let last = store.run(run_id).expect("read").expect("the run").last_seq;
    let events: Vec<NewEvent> = events.iter().map(|(at, e)| new_event(*at, e)).collect();
    store
        .append(run_id, last, &events, Some(status))
        .expect("append");
}

/// Appends an event this version cannot read (a damaged or future record).
pub fn append_unreadable(db: &Path, run_id: &RunId) {
    let mut store = Store::open(db, Durability::Normal).expect("open the store");
    let last: EventSeq = store.run(run_id).expect("read").expect("the run").last_seq;
    let bad = NewEvent {
        event_type: "StepTeleported".into(),
        schema_version: EVENT_SCHEMA_VERSION,
        recorded_at_ms: 0,
        correlation_id: None,
        causation_seq: None,
        payload: json!({"to": "mars"}),
    };
    store.append(run_id, last, &[bad], None).expect("append");
}
