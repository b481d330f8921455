//! Crash safety: the CLI is SIGKILLed at many points of a run, restarted, and the run still
//! ends with every command's effect exactly once, no event lost and a healthy database.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::backend::TestDb;
use crate::support::binary;

/// Each command appends its own line; an edit and a pure step sit in between, and two
/// commands run in parallel.
const WORKFLOW: &str = r#"
name: crash-me
steps:
  - id: c1
    type: run_command
    command: ["sh", "-c", "echo c1 >> lines.txt"]
  - id: c2
    type: run_command
    needs: [c1]
    command: ["sh", "-c", "echo c2 >> lines.txt"]
  - id: note
    type: edit_file
    needs: [c2]
    path: notes/state.txt
    content: "after c2\n"
  - id: c3
    type: run_command
    needs: [note]
    command: ["sh", "-c", "echo c3 >> lines.txt"]
  - id: c4
    type: run_command
    needs: [note]
    command: ["sh", "-c", "echo c4 >> lines.txt"]
  - id: tally
    type: set
    needs: [c3, c4]
    values: { done: "${steps.c3.status == 'succeeded' and steps.c4.status == 'succeeded'}" }
  - id: c5
    type: run_command
    needs: [tally]
    command: "echo c5 >> lines.txt"
"#;

const POLICY: &str =
    "rules:\n  - allow: run_command\n    unchecked_shell: true\n  - allow: edit_file\n";
const COMMANDS: [&str; 5] = ["c1", "c2", "c3", "c4", "c5"];

/// How many times a run is killed and recovered, at the least.
const KILLS: u64 = 100;

struct Setup {
    _dir: tempfile::TempDir,
    /// Where the config directory goes (beside the SQLite file, made on SQLite only).
    db: PathBuf,
    database: TestDb,
    workspace: PathBuf,
    workflow: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let workspace = dir.path().join("ws");
    std::fs::create_dir_all(workspace.join(".stepwise")).expect("workspace");
    std::fs::write(workspace.join(".stepwise/policy.yaml"), POLICY).expect("policy");
    let workflow = dir.path().join("crash.yaml");
    std::fs::write(&workflow, WORKFLOW).expect("workflow");
    Setup {
        db: dir.path().join("stepwise.db"),
        database: TestDb::new(dir.path().join("stepwise.db")),
        workspace,
        workflow,
        _dir: dir,
    }
}

fn cli(setup: &Setup, args: &[&str]) -> (i32, String) {
    let output = Command::new(binary())
        .args(args)
        .env("STEPWISE_DB", setup.database.name())
        .env("XDG_CONFIG_HOME", setup.db.with_extension("config"))
        .env_remove("STEPWISE_USER_POLICY")
        .output()
        .expect("run stepwise");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.code().is_some(),
        "stepwise {args:?} died: {stderr}"
    );
    (
        output.status.code().unwrap_or(-1),
        format!("{stdout}{stderr}"),
    )
}

/// How many events the database holds, for a test that kills its holder at some count.
pub(crate) fn event_count(database: &TestDb) -> u64 {
    database.event_count()
}

/// Every event as recorded: seq, type and payload.
fn events(database: &TestDb) -> Vec<(u64, String, String)> {
    database
        .events()
        .into_iter()
        .map(|(_, event)| (event.seq.get(), event.event_type, event.payload.to_string()))
        .collect()
}

fn run_id(database: &TestDb) -> String {
    database.first_run_id().expect("one run")
}

/// Waits until no process works in the workspace any more: a command killed with the CLI
/// must not write after we look at its effects.
/// SIGKILLs the process driving a run once the database holds `kill_after` events, then
/// waits until nothing the run started still lives.
pub(crate) fn kill_at(
    env: &crate::support::Env,
    driving: crate::support::Background,
    kill_after: u64,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while event_count(&env.database) < kill_after {
        assert!(
            Instant::now() < deadline,
            "the run never reached {kill_after} events"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
    driving.kill();
    wait_for_commands_to_die(&env.ws);
}

pub(crate) fn wait_for_commands_to_die(workspace: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let canonical = workspace.canonicalize().expect("workspace path");
    loop {
        let busy = std::fs::read_dir("/proc")
            .map(|entries| {
                entries.flatten().any(|e| {
                    std::fs::read_link(e.path().join("cwd")).is_ok_and(|cwd| cwd == canonical)
                })
            })
            .unwrap_or(false);
        if !busy {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "a command outlived the killed CLI"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn line_counts(workspace: &Path) -> Vec<usize> {
    let text = std::fs::read_to_string(workspace.join("lines.txt")).unwrap_or_default();
    COMMANDS
        .iter()
        .map(|c| text.lines().filter(|l| l == c).count())
        .collect()
}

/// Runs the workflow, kills the CLI once at least `kill_after` events are durable, then
/// resumes (resolving unknown outcomes as a person would, by looking at the workspace) until
/// the run ends. Returns whether the kill landed before the run finished, and how many
/// unknown outcomes had to be resolved.
fn crash_and_recover(kill_after: u64) -> (bool, usize) {
    let setup = setup();
    let workflow = setup.workflow.to_string_lossy().to_string();
    let workspace = setup.workspace.to_string_lossy().to_string();
    let mut child = Command::new(binary())
        .args(["run", &workflow, "--workspace", &workspace])
        .env("STEPWISE_DB", setup.database.name())
        .env("XDG_CONFIG_HOME", setup.db.with_extension("config"))
        .env_remove("STEPWISE_USER_POLICY")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start stepwise run");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if child.try_wait().expect("poll child").is_some()
            || event_count(&setup.database) >= kill_after
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "run did not reach {kill_after} events"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
    let killed_mid_run = child.try_wait().expect("poll child").is_none();
    let _ = kill(
        Pid::from_raw(i32::try_from(child.id()).expect("pid")),
        Signal::SIGKILL,
    );
    let _ = child.wait();
    let mut resolved = 0;
    wait_for_commands_to_die(&setup.workspace);

    let before_restart = events(&setup.database);
    assert!(
        !before_restart.is_empty(),
        "nothing was recorded before the kill"
    );
    let run = run_id(&setup.database);

    let mut finished = false;
    for _ in 0..20 {
        let (code, output) = cli(&setup, &["resume", &run]);
        wait_for_commands_to_die(&setup.workspace);
        match code {
            0 => {
                finished = true;
                break;
            }
            3 => {
                let (_, show) = cli(&setup, &["show", &run, "--json"]);
                let show: Value = serde_json::from_str(&show).expect("show --json");
                let counts = line_counts(&setup.workspace);
                for step in show["steps"].as_array().expect("steps") {
                    if step["status"] != "outcome_unknown" {
                        continue;
                    }
                    let id = step["id"].as_str().expect("step id");
                    let index = COMMANDS
                        .iter()
                        .position(|c| *c == id)
                        .expect("only commands are unknown");
                    let choice = if counts[index] > 0 {
                        "--mark-done"
                    } else {
                        "--retry"
                    };
                    resolved += 1;
                    let (code, output) = cli(&setup, &["resolve", &run, id, choice]);
                    assert!(
                        code == 0 || code == 3,
                        "resolve {id} {choice} failed ({code}): {output}"
                    );
                    wait_for_commands_to_die(&setup.workspace);
                }
            }
            other => panic!("resume after a kill at {kill_after} events exited {other}: {output}"),
        }
    }
    assert!(
        finished,
        "run never finished after a kill at {kill_after} events"
    );

    assert_eq!(
        line_counts(&setup.workspace),
        vec![1; COMMANDS.len()],
        "kill at {kill_after}: each command exactly once"
    );
    assert_eq!(
        std::fs::read_to_string(setup.workspace.join("notes/state.txt")).expect("edit landed"),
        "after c2\n"
    );
    let after = events(&setup.database);
    let seqs: Vec<u64> = after.iter().map(|e| e.0).collect();
    assert_eq!(
        seqs,
        (1..=after.len() as u64).collect::<Vec<_>>(),
        "event seqs have no gaps"
    );
    assert_eq!(
        &after[..before_restart.len()],
        &before_restart[..],
        "events recorded before the kill are unchanged"
    );
    let integrity = setup
        .database
        .with(|store| store.integrity_check().expect("integrity_check"))
        .expect("the database");
    assert_eq!(integrity, "ok");
    let (code, output) = cli(&setup, &["replay", &run, "--recorded"]);
    assert_eq!(code, 0, "replay after recovery: {output}");
    (killed_mid_run, resolved)
}

#[test]
fn a_run_killed_at_any_point_resumes_without_repeating_or_losing_anything() {
    // A clean run tells how many events there are to kill between.
    let setup = setup();
    let workflow = setup.workflow.to_string_lossy().to_string();
    let workspace = setup.workspace.to_string_lossy().to_string();
    let (code, output) = cli(&setup, &["run", &workflow, "--workspace", &workspace]);
    assert_eq!(code, 0, "clean run: {output}");
    assert_eq!(line_counts(&setup.workspace), vec![1; COMMANDS.len()]);
    let total = event_count(&setup.database);
    assert!(total > 20, "expected a long log, got {total} events");
    let mut mid_run = 0;
    let mut resolved = 0;
    // Once at every event, then again at points spread over the log, to 100 kills at least.
    let kills = KILLS.max(total - 1);
    for kill in 0..kills {
        let kill_after = if kill < total - 1 {
            kill + 1
        } else {
            1 + (kill * 7) % (total - 1)
        };
        let (killed_mid_run, resolutions) = crash_and_recover(kill_after);
        mid_run += usize::from(killed_mid_run);
        resolved += resolutions;
    }
    // The kills must really have interrupted runs, some of them while a command was in flight.
    assert!(
        mid_run as u64 > kills / 2,
        "only {mid_run} of {kills} kills landed mid-run"
    );
    assert!(
        resolved > 0,
        "no kill left a command with an unknown outcome"
    );
}
