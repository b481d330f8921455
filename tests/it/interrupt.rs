//! Ctrl-C on a driving `stepwise`: the first pauses the run (what runs finishes, nothing new
//! starts), the second cancels it (running commands are killed).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::support::{Env, binary, read_pid, wait_until_ended};

/// A command that writes its pid, waits for the test to let it go (or for a while), then
/// leaves a mark; then a second step.
const WORKFLOW: &str = r#"
name: interrupt
steps:
  - id: slow
    type: run_command
    command: "echo $$ > slow.pid; i=0; while [ ! -e go ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; echo done > slow.txt"
  - id: after
    type: run_command
    needs: [slow]
    command: "echo after > after.txt"
"#;

fn start(env: &Env) -> Child {
    let wf = env.workflow("interrupt.yaml", WORKFLOW);
    Command::new(binary())
        .args([
            "run",
            wf.to_str().expect("path"),
            "--workspace",
            env.ws.to_str().expect("path"),
        ])
        .env("STEPWISE_DB", env.database.name())
        .env("XDG_CONFIG_HOME", env.root().join("config"))
        .env_remove("STEPWISE_USER_POLICY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start stepwise run")
}

fn interrupt(child: &Child) {
    let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    kill(pid, Signal::SIGINT).expect("send SIGINT");
}

/// Waits for the slow command to have started and written its pid.
fn wait_for_pid(env: &Env) -> i32 {
    let path = env.ws.join("slow.pid");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&path).is_ok_and(|t| t.ends_with('\n')) {
        assert!(Instant::now() < deadline, "the slow command never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    read_pid(&path)
}

/// Waits until the run has recorded `event_type`, so the next signal lands at a known point.
fn wait_for_event(env: &Env, event_type: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = env
            .database
            .events()
            .iter()
            .any(|(_, event)| event.event_type == event_type);
        if found {
            return;
        }
        assert!(Instant::now() < deadline, "no {event_type} event");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn ctrl_c_pauses_the_run_and_resume_finishes_it() {
    let env = Env::new();
    env.allow_everything();
    let child = start(&env);
    let pid = wait_for_pid(&env);
    interrupt(&child);
    wait_for_event(&env, "RunPauseRequested");
    std::fs::write(env.ws.join("go"), "").expect("let the command finish");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(wait_until_ended(pid, Duration::from_secs(5)));
    assert_eq!(
        env.read("slow.txt").as_deref(),
        Some("done\n"),
        "the running command finished"
    );
    assert_eq!(
        env.read("after.txt"),
        None,
        "nothing new started while paused"
    );

    let run = env.stepwise(&["runs", "--json"]).json()[0]["run_id"]
        .as_str()
        .expect("run id")
        .to_string();
    assert_eq!(env.show(&run)["status"], "paused");
    let resumed = env.stepwise(&["resume", &run]);
    assert_eq!(resumed.code, 0, "{resumed}");
    assert_eq!(env.read("after.txt").as_deref(), Some("after\n"));
}

#[test]
fn a_second_ctrl_c_cancels_the_run_and_kills_its_command() {
    let env = Env::new();
    env.allow_everything();
    let child = start(&env);
    let pid = wait_for_pid(&env);
    interrupt(&child);
    wait_for_event(&env, "RunPauseRequested");
    interrupt(&child);
    let out = child.wait_with_output().expect("wait");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        wait_until_ended(pid, Duration::from_secs(5)),
        "the command was killed"
    );
    assert_eq!(env.read("slow.txt"), None);
    let run = env.stepwise(&["runs", "--json"]).json()[0]["run_id"]
        .as_str()
        .expect("run id")
        .to_string();
    assert_eq!(env.show(&run)["status"], "cancelled");
}
