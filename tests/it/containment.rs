//! Nothing a command starts outlives the engine that started it: not a piped shell, not a
//! grandchild that detached into a session of its own, not after a SIGKILL of the engine.

use std::time::Duration;

use crate::support::{Env, is_running, of_type, read_pid, wait_for_fifo, wait_until_ended};

const PATIENCE: Duration = Duration::from_secs(30);

#[test]
fn a_sigkilled_engine_takes_a_piped_shell_and_a_detached_grandchild_with_it() {
    let env = Env::new();
    env.workspace_policy("  - allow: run_command\n    unchecked_shell: true\n");
    let ready = env.fifo("ready.fifo");
    let wf = env.workflow(
        "tree.yaml",
        r#"
name: tree
steps:
  - id: tree
    type: run_command
    command: |
      sh -c 'echo $$ > sh.pid
             setsid sh -c "echo \$\$ > detached.pid; sleep 2; echo late > late.txt" &
             sleep 600 &
             echo $! > sleep.pid
             while [ ! -s detached.pid ]; do :; done
             echo started > ready.fifo
             wait' | cat
"#,
    );
    let engine = env.spawn_run(&wf);
    assert_eq!(wait_for_fifo(&ready, PATIENCE).as_deref(), Some("started"));
    let pids: Vec<i32> = ["sh.pid", "detached.pid", "sleep.pid"]
        .iter()
        .map(|f| read_pid(&env.ws.join(f)))
        .collect();
    assert!(pids.iter().all(|&pid| is_running(pid)));
    let run: String = env
        .db()
        .query_row("SELECT run_id FROM runs", [], |r| r.get(0))
        .expect("the run");

    engine.kill();
    for pid in &pids {
        assert!(
            wait_until_ended(*pid, PATIENCE),
            "process {pid} outlived the engine"
        );
    }
    // The detached grandchild would have written this two seconds in.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        env.read("late.txt"),
        None,
        "a file was written after the engine died"
    );

    // Resuming finds nothing of the command alive: its outcome is unknown, for a person.
    let resumed = env.stepwise(&["resume", &run, "--json"]);
    assert_eq!(resumed.code, 3, "{resumed}");
    assert_eq!(
        of_type(&env.events(&run), "OperationOutcomeUnknown").len(),
        1
    );
    assert!(pids.iter().all(|&pid| !is_running(pid)));
}

#[test]
fn cancel_and_timeout_kill_detached_descendants_too() {
    let env = Env::new();
    env.workspace_policy("  - allow: run_command\n    unchecked_shell: true\n");
    let ready = env.fifo("ready.fifo");
    let wf = env.workflow(
        "detach.yaml",
        r#"
name: detach
steps:
  - id: timed
    type: run_command
    timeout: 1s
    command: "setsid sh -c 'echo $$ > timed.pid; exec sleep 600' & while [ ! -s timed.pid ]; do :; done; sleep 600"
  - id: cancelled
    type: run_command
    command: "setsid sh -c 'echo $$ > cancelled.pid; exec sleep 600' & while [ ! -s cancelled.pid ] || [ ! -s timed.pid ]; do :; done; echo started > ready.fifo; sleep 600"
"#,
    );
    let engine = env.spawn_run(&wf);
    assert_eq!(wait_for_fifo(&ready, PATIENCE).as_deref(), Some("started"));
    let run: String = env
        .db()
        .query_row("SELECT run_id FROM runs", [], |r| r.get(0))
        .expect("the run");
    let timed = read_pid(&env.ws.join("timed.pid"));
    assert!(
        wait_until_ended(timed, PATIENCE),
        "the timed-out command's detached child lives on"
    );
    let cancelled = read_pid(&env.ws.join("cancelled.pid"));
    let out = env.stepwise(&["cancel", &run, "--json"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        wait_until_ended(cancelled, PATIENCE),
        "the cancelled command's detached child lives on"
    );
    let out = engine.finish(PATIENCE);
    assert_eq!(out.code, 1, "{out}");
}
