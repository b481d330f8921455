//! The PostgreSQL server goes away mid-run and comes back: the process driving the run waits
//! for it, takes the run's hold again and goes on where it was; what finished while the server
//! was gone is recorded once it is back; nothing is lost or done twice; a follower picks up
//! where it was. Each test runs a private cluster of its own (the suite's is shared).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{Env, release, wait_for_fifo};

const PATIENCE: Duration = Duration::from_secs(60);

/// A cluster of the test's own, stopped and removed when the test ends.
struct Cluster {
    dir: PathBuf,
}

impl Cluster {
    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/pg-cluster.sh")
    }

    fn run(&self, command: &str) -> String {
        let out = Command::new("bash")
            .arg(Self::script())
            .arg(command)
            .arg(&self.dir)
            .output()
            .expect("run pg-cluster.sh");
        assert!(
            out.status.success(),
            "pg-cluster.sh {command}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Starts one in `dir`; `None` where the suite has no PostgreSQL (never in CI).
    fn start(dir: PathBuf) -> Option<(Cluster, String)> {
        crate::backend::admin_url()?;
        let cluster = Cluster { dir };
        let admin = cluster.run("start");
        Some((cluster, admin))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(Self::script())
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}

fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_run_rides_out_a_server_restart_and_a_command_ending_while_it_is_down() {
    let mut env = Env::new();
    let Some((cluster, admin)) = Cluster::start(env.root().join("pg")) else {
        return;
    };
    let url = crate::backend::new_database_on(&admin);
    env.database = crate::backend::TestDb::on(env.db.clone(), url);
    env.workspace_policy("  - allow: run_command\n    unchecked_shell: true\n");
    let ready = env.fifo("ready.fifo");
    let go = env.fifo("go.fifo");
    let again = env.fifo("again.fifo");
    let wf = env.workflow(
        "restart.yaml",
        r#"
name: restart
steps:
  - id: first
    type: run_command
    command: "echo first >> ran.txt"
  - id: waits
    type: run_command
    needs: [first]
    command: "echo waits >> ran.txt && echo started > ready.fifo && cat go.fifo > /dev/null && echo done >> ran.txt"
  - id: middle
    type: set
    needs: [waits]
    values: {n: 1}
  - id: waits_again
    type: run_command
    needs: [middle]
    command: "echo again >> ran.txt && echo started > ready.fifo && cat again.fifo > /dev/null"
  - id: last
    type: run_command
    needs: [waits_again]
    command: "echo last >> ran.txt"
"#,
    );
    let driver = env.spawn_run(&wf);
    assert_eq!(wait_for_fifo(&ready, PATIENCE).as_deref(), Some("started"));
    let run = env.database.first_run_id().expect("the run");
    let (follower, lines) = env.spawn_piped(&["events", &run, "--follow", "--json"]);
    lines
        .until(PATIENCE, |l| {
            l.contains("\"OperationStarted\"") && l.contains("waits")
        })
        .expect("the follower prints what is already there");

    // The server goes down; the command ends while it is down; the server comes back.
    cluster.run("stop");
    release(&go);
    std::thread::sleep(Duration::from_secs(2));
    cluster.run("start");
    // The run goes on from where it was, on the same process.
    assert_eq!(wait_for_fifo(&ready, PATIENCE).as_deref(), Some("started"));

    // And once more, a plain restart while a command runs.
    cluster.run("restart");
    release(&again);
    let out = driver.finish(PATIENCE);
    assert_eq!(
        out.code, 0,
        "the run succeeds on the process that began it: {out}"
    );
    assert_eq!(
        lines_of(&env.ws.join("ran.txt")),
        ["first", "waits", "done", "again", "last"],
        "every command ran once"
    );

    let events = env.events(&run);
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(!types.contains(&"OperationOutcomeUnknown"), "{types:?}");
    let seqs: Vec<i64> = events.iter().filter_map(|e| e["seq"].as_i64()).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    let verified = env.stepwise(&["verify", &run]);
    assert_eq!(verified.code, 0, "{verified}");
    // What the command that ended while the server was down changed is recorded all the same
    // (its checkpoint after waited for the server).
    let show = env.show(&run);
    let waits = show["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["id"] == "waits"))
        .expect("the step");
    assert!(
        waits["file_changes"].to_string().contains("ran.txt"),
        "{}",
        waits["file_changes"]
    );

    // The follower saw every event once, in order, and ended with the run.
    let mut followed: Vec<i64> = Vec::new();
    while let Some((_, line)) = lines.next(PATIENCE) {
        let event: Value = serde_json::from_str(&line).expect("one JSON object per line");
        followed.push(event["seq"].as_i64().expect("a seq"));
        if event["type"] == "RunSucceeded" {
            break;
        }
    }
    let follow_out = follower.finish(PATIENCE);
    assert_eq!(follow_out.code, 0, "{follow_out}");
    let tail: Vec<i64> = followed[followed.len().saturating_sub(seqs.len())..].to_vec();
    assert_eq!(
        *followed.last().expect("events"),
        *seqs.last().expect("events")
    );
    assert!(
        tail.windows(2).all(|w| w[1] == w[0] + 1),
        "the follower printed each event once, in order: {followed:?}"
    );
}
