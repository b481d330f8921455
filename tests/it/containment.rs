//! Nothing a command starts outlives the engine that started it: not a piped shell, not a
//! grandchild that detached into a session of its own, not after a SIGKILL of the engine, and
//! not after a SIGKILL of the command's own supervisor, by the command or by anyone else.

use std::time::Duration;

use crate::support::{
    Env, Out, is_running, of_type, parent_of, read_pid, running_with_arg, sleep_mark, step,
    wait_for_fifo, wait_until_ended,
};

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
    let run = env.database.first_run_id().expect("the run");

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
    let run = env.database.first_run_id().expect("the run");
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

/// A workflow of one `run_command` step, `escape`, running `script` (one line per line).
fn one_step(script: &str) -> String {
    let mut yaml = String::from(
        "name: escape\nsteps:\n  - id: escape\n    type: run_command\n    command: |\n",
    );
    for line in script.lines() {
        yaml.push_str("      ");
        yaml.push_str(line.trim());
        yaml.push('\n');
    }
    yaml
}

/// The error the step `escape` of the database's one run failed with.
fn escape_error(env: &Env) -> String {
    let run = env.database.first_run_id().expect("the run");
    step(&env.show(&run), "escape")["error"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Runs `script` as the one step of a workflow, to the run's end.
fn run_script(env: &Env, script: &str) -> Out {
    env.allow_everything();
    let wf = env.workflow("escape.yaml", &one_step(script));
    env.spawn_run(&wf).finish(PATIENCE)
}

#[test]
fn a_command_that_kills_its_supervisor_leaves_nothing_running() {
    let env = Env::new();
    let mark = sleep_mark(302);
    let out = run_script(&env, &format!("(setsid sleep {mark} &); kill -9 $PPID"));
    assert_eq!(out.code, 1, "{out}");
    let error = escape_error(&env);
    assert!(
        error.contains("supervisor") && error.contains("was killed by SIGKILL"),
        "{error}"
    );
    assert_eq!(
        running_with_arg(&mark),
        Vec::<i32>::new(),
        "the detached sleep outlived its step"
    );
}

#[test]
fn a_double_forked_grandchild_that_ignores_term_and_hup_dies_with_the_step() {
    let env = Env::new();
    let (orphan, command) = (sleep_mark(303), sleep_mark(303));
    // The grandchild's parent is gone before the supervisor is killed: it was the supervisor's
    // to kill. The command itself goes on after the kill.
    let out = run_script(
        &env,
        &format!(
            "( (trap '' TERM HUP; exec sh -c 'echo $$ > orphan.pid; exec sleep {orphan}') & )
             while [ ! -s orphan.pid ]; do :; done
             kill -9 $PPID
             trap '' TERM HUP
             sleep {command}"
        ),
    );
    assert_eq!(out.code, 1, "{out}");
    let error = escape_error(&env);
    assert!(error.contains("was killed by SIGKILL"), "{error}");
    assert!(!is_running(read_pid(&env.ws.join("orphan.pid"))));
    for mark in [&orphan, &command] {
        assert_eq!(
            running_with_arg(mark),
            Vec::<i32>::new(),
            "sleep {mark} lives on"
        );
    }
}

#[test]
fn a_nohup_background_child_that_kills_the_supervisor_dies_with_the_step() {
    let env = Env::new();
    let (child, command) = (sleep_mark(304), sleep_mark(304));
    let out = run_script(
        &env,
        &format!(
            "supervisor=$PPID
             nohup sh -c \"kill -9 $supervisor; exec sleep {child}\" > /dev/null 2>&1 &
             exec sleep {command}"
        ),
    );
    assert_eq!(out.code, 1, "{out}");
    let error = escape_error(&env);
    assert!(error.contains("was killed by SIGKILL"), "{error}");
    for mark in [&child, &command] {
        assert_eq!(
            running_with_arg(mark),
            Vec::<i32>::new(),
            "sleep {mark} lives on"
        );
    }
}

#[test]
fn a_supervisor_killed_from_outside_ends_its_step_and_takes_the_command_with_it() {
    let env = Env::new();
    env.allow_everything();
    let ready = env.fifo("ready.fifo");
    let (detached, background) = (sleep_mark(305), sleep_mark(305));
    let wf = env.workflow(
        "escape.yaml",
        &one_step(&format!(
            "echo $PPID > supervisor.pid
             (setsid sh -c 'trap \"\" TERM HUP; echo $$ > detached.pid; exec sleep {detached}' &)
             while [ ! -s detached.pid ]; do :; done
             sleep {background} &
             echo started > ready.fifo
             wait"
        )),
    );
    let engine = env.spawn_run(&wf);
    assert_eq!(wait_for_fifo(&ready, PATIENCE).as_deref(), Some("started"));
    let supervisor = read_pid(&env.ws.join("supervisor.pid"));
    assert_eq!(
        parent_of(supervisor),
        Some(engine.pid()),
        "not the engine's child"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(supervisor),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the supervisor");

    let out = engine.finish(PATIENCE);
    assert_eq!(out.code, 1, "{out}");
    let error = escape_error(&env);
    assert!(
        error.contains("supervisor") && error.contains("was killed by SIGKILL"),
        "{error}"
    );
    for mark in [&detached, &background] {
        assert_eq!(
            running_with_arg(mark),
            Vec::<i32>::new(),
            "sleep {mark} lives on"
        );
    }
}

#[test]
fn a_command_that_stops_its_supervisor_ends_its_step_and_leaves_nothing_running() {
    let env = Env::new();
    let (detached, command) = (sleep_mark(306), sleep_mark(306));
    // A stopped supervisor can neither report nor kill: the step would wait for ever.
    let out = run_script(
        &env,
        &format!(
            "(setsid sleep {detached} &)
             kill -STOP $PPID
             exec sleep {command}"
        ),
    );
    assert_eq!(out.code, 1, "{out}");
    let error = escape_error(&env);
    assert!(
        error.contains("supervisor") && error.contains("was stopped while the command ran"),
        "{error}"
    );
    for mark in [&detached, &command] {
        assert_eq!(
            running_with_arg(mark),
            Vec::<i32>::new(),
            "sleep {mark} lives on"
        );
    }
}

/// The supervisor's report pipe can be opened by any process of the user (`/proc/PID/fd`): a
/// command that holds it open, from a detached child, before killing its supervisor must not
/// keep the step waiting for the pipe's end, nor its processes alive.
#[test]
fn a_command_holding_its_supervisors_pipes_open_cannot_hang_its_step() {
    let env = Env::new();
    let (holder, command) = (sleep_mark(306), sleep_mark(306));
    env.write(
        "hold.sh",
        &format!(
            "supervisor=$1
             for fd in /proc/$supervisor/fd/*; do
                 if [ -p \"$fd\" ]; then exec {{held}}>>\"$fd\"; fi
             done
             setsid -f sleep {holder}
             sleep 0.2
             kill -9 $supervisor
             exec sleep {command}\n"
        )
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("\n"),
    );
    let started = std::time::Instant::now();
    let out = run_script(&env, "bash hold.sh $PPID");
    assert_eq!(out.code, 1, "{out}");
    assert!(started.elapsed() < PATIENCE, "the step ended");
    let error = escape_error(&env);
    assert!(error.contains("was killed by SIGKILL"), "{error}");
    for mark in [&holder, &command] {
        assert_eq!(
            running_with_arg(mark),
            Vec::<i32>::new(),
            "sleep {mark} lives on"
        );
    }
}
