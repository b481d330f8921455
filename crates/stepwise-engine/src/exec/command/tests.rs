use super::prepare::*;
use super::*;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

use stepwise_core::operation::CommandLine;

use crate::sandbox::temp_workspace as workspace;

fn request(command: CommandLine) -> CommandRequest {
    CommandRequest {
        command,
        cwd: ".".into(),
        env: BTreeMap::new(),
        pass_env: Vec::new(),
        timeout_ms: None,
        max_output_bytes: 1 << 20,
        save_output: false,
        stdin: None,
    }
}

fn shell(script: &str) -> CommandRequest {
    request(CommandLine::Shell(script.into()))
}

fn argv(args: &[&str]) -> CommandRequest {
    request(CommandLine::Argv(
        args.iter().map(|a| a.to_string()).collect(),
    ))
}

fn never_cancelled() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    // A dropped sender means "the driver is gone" and cancels; keep this one alive.
    std::mem::forget(tx);
    rx
}

async fn outcome(ws: &Workspace, req: &CommandRequest) -> CommandOutcome {
    match run_command(ws, req, never_cancelled(), None, None).await {
        Ok(OperationResult::CommandFinished(outcome)) => outcome,
        other => panic!("expected a finished command, got {other:?}"),
    }
}

/// Alive and not a zombie (a killed process whose reaper has not got to it yet is gone
/// for our purposes, and a container's init may never reap it).
fn is_running(pid: i32) -> bool {
    if nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err() {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            stat.rsplit(')')
                .next()
                .map(|s| s.trim_start().starts_with('Z'))
                != Some(true)
        }
        Err(_) => false,
    }
}

/// Waits (bounded) for a killed process to disappear; SIGKILL delivery is asynchronous.
async fn wait_gone(pid: i32) -> bool {
    for _ in 0..500 {
        if !is_running(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// Waits (bounded) for a command to write its pid file.
async fn read_pid(path: &Path) -> i32 {
    for _ in 0..500 {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no pid in {}", path.display());
}

#[tokio::test]
async fn runs_argv_and_shell_commands_with_their_exit_codes() {
    let (_d, ws) = workspace();
    let out = outcome(&ws, &argv(&["printf", "%s-%s", "a b", "c"])).await;
    assert_eq!(
        (out.exit_code, out.signal, out.stdout.as_str()),
        (Some(0), None, "a b-c")
    );
    assert!(out.succeeded());

    let out = outcome(&ws, &shell("echo out; echo err >&2; exit 3")).await;
    assert_eq!(out.exit_code, Some(3));
    assert_eq!(
        (out.stdout.as_str(), out.stderr.as_str()),
        ("out\n", "err\n")
    );
    assert_eq!((out.stdout_bytes, out.stderr_bytes), (4, 4));

    let out = outcome(&ws, &shell("kill -TERM $$")).await;
    assert_eq!(
        (out.exit_code, out.signal, out.timed_out),
        (None, Some(15), false)
    );
}

#[tokio::test]
async fn spawn_failures_name_the_program() {
    let (_d, ws) = workspace();
    let err = run_command(&ws, &argv(&[]), never_cancelled(), None, None)
        .await
        .unwrap_err();
    assert_eq!(err.kind, OperationErrorKind::Spawn);
    let err = run_command(
        &ws,
        &argv(&["no-such-program-xyz"]),
        never_cancelled(),
        None,
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind, OperationErrorKind::Spawn);
    assert_eq!(
        err.message,
        "could not start `no-such-program-xyz`: No such file or directory"
    );
}

#[tokio::test]
async fn runs_in_the_requested_directory_of_the_workspace_only() {
    let (_d, ws) = workspace();
    std::fs::create_dir(ws.root().join("sub")).unwrap();
    std::fs::write(ws.root().join("file"), "").unwrap();
    let mut req = argv(&["pwd"]);
    req.cwd = "sub".into();
    let out = outcome(&ws, &req).await;
    assert_eq!(
        out.stdout.trim_end(),
        ws.root().join("sub").to_str().unwrap()
    );

    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), ws.root().join("out")).unwrap();
    for cwd in ["missing", "file", "out", "../", "/tmp"] {
        req.cwd = cwd.into();
        let err = run_command(&ws, &req, never_cancelled(), None, None)
            .await
            .unwrap_err();
        assert_eq!(
            err.kind,
            OperationErrorKind::Sandbox,
            "cwd {cwd}: {}",
            err.message
        );
    }
}

#[tokio::test]
async fn the_child_sees_only_the_scrubbed_environment() {
    let (_d, ws) = workspace();
    let mut req = argv(&["env"]);
    req.pass_env = vec!["PASSED".into(), "ABSENT".into()];
    req.env = [
        ("X".to_string(), "1".to_string()),
        ("HOME".into(), "/x".into()),
    ]
    .into();
    // A fake engine environment: setting real variables is unsound with threads.
    let host: BTreeMap<&str, OsString> = [
        ("PATH", std::env::var_os("PATH").unwrap_or_default()),
        ("HOME", "/home/me".into()),
        ("SECRET", "s".into()),
        ("PASSED", "p".into()),
    ]
    .into();
    let env = child_env(&req, |name| host.get(name).cloned());
    let Ok(OperationResult::CommandFinished(out)) = run(
        &req,
        never_cancelled(),
        Starting::Prepared(prepare(&ws, &req, env, None).unwrap()),
        None,
        None,
    )
    .await
    else {
        panic!("env did not run");
    };
    let mut lines: Vec<&str> = out.stdout.lines().collect();
    lines.retain(|l| !l.starts_with("PATH="));
    lines.sort_unstable();
    // Allowlisted, passed through and explicit (winning over the engine's HOME); no SECRET.
    assert_eq!(lines, ["HOME=/x", "PASSED=p", "X=1"]);

    // And with the engine's real environment, nothing outside the allowlist gets through.
    let out = outcome(&ws, &argv(&["env"])).await;
    for line in out.stdout.lines() {
        let name = line.split('=').next().unwrap_or_default();
        assert!(ENV_ALLOWLIST.contains(&name), "unexpected variable {line}");
    }
}

#[tokio::test]
async fn output_is_capped_and_counted() {
    let (_d, ws) = workspace();
    let mut req = shell("head -c 1000000 /dev/zero | tr '\\0' a; printf 'abcd\\303\\251fgh' >&2");
    req.max_output_bytes = 5;
    let out = outcome(&ws, &req).await;
    assert_eq!(
        (out.stdout.as_str(), out.stdout_bytes),
        ("aaaaa", 1_000_000)
    );
    // `é` straddles the cut, so it is dropped rather than kept half.
    assert_eq!((out.stderr.as_str(), out.stderr_bytes), ("abcd", 9));
    assert!(out.stdout_truncated() && out.stderr_truncated());

    let out = outcome(&ws, &shell("printf 'a\\377b'")).await;
    assert_eq!(out.stdout, "a\u{FFFD}b");
    assert!(!out.stdout_truncated());
}

#[tokio::test]
async fn a_timeout_kills_the_whole_process_group() {
    let (_d, ws) = workspace();
    let mut req = shell("sleep 30 & echo $! > bg.pid; sleep 30");
    req.timeout_ms = Some(1000);
    let started = Instant::now();
    let out = outcome(&ws, &req).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        (out.exit_code, out.signal, out.timed_out),
        (None, Some(9), true)
    );
    assert!(!out.succeeded());
    let bg = read_pid(&ws.root().join("bg.pid")).await;
    assert!(
        wait_gone(bg).await,
        "background sleep {bg} survived the timeout"
    );
}

#[tokio::test]
async fn background_children_are_killed_when_the_command_exits() {
    let (_d, ws) = workspace();
    // The background sleep holds stdout open; the command must still end promptly.
    let out = outcome(&ws, &shell("sleep 30 & echo $! > bg.pid; echo done")).await;
    assert_eq!((out.exit_code, out.stdout.as_str()), (Some(0), "done\n"));
    let bg = read_pid(&ws.root().join("bg.pid")).await;
    assert!(wait_gone(bg).await, "background sleep {bg} survived");
}

#[tokio::test]
async fn a_process_that_detaches_dies_with_the_command_too() {
    let (_d, ws) = workspace();
    // A new session, and a double fork so that its parent is gone: still in the tree.
    let script = "setsid sh -c '(echo $$ > esc.pid; exec sleep 30) &' & \
                  while [ ! -s esc.pid ]; do :; done; echo done";
    let started = Instant::now();
    let out = outcome(&ws, &shell(script)).await;
    assert_eq!(out.stdout, "done\n");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the command hung on it"
    );
    let escaped = read_pid(&ws.root().join("esc.pid")).await;
    assert!(
        wait_gone(escaped).await,
        "the detached sleep {escaped} outlived the command"
    );
}

#[tokio::test]
async fn the_supervisor_holds_the_lock_while_the_tree_lives() {
    let (_d, ws) = workspace();
    let lock = ws.root().join("op.lock");
    let req = shell("echo $$ > main.pid; sleep 30");
    let (tx, rx) = watch::channel(false);
    let root = ws.root().to_path_buf();
    let lock_path = lock.clone();
    let watcher = async {
        let main = read_pid(&root.join("main.pid")).await;
        // Running: the lock is held, and waiting for it gives up.
        let held = !crate::lock::wait_commands_unheld(&lock_path, Duration::from_millis(50));
        let _ = tx.send(true);
        (main, held)
    };
    let (result, (main, held)) =
        tokio::join!(run_command(&ws, &req, rx, Some(&lock), None), watcher);
    assert_eq!(result.unwrap_err().kind, OperationErrorKind::Cancelled);
    assert!(held, "the lock was free while the command ran");
    assert!(wait_gone(main).await);
    assert!(crate::lock::wait_commands_unheld(
        &lock,
        Duration::from_secs(5)
    ));
}

#[tokio::test]
async fn cancelling_kills_the_process_group() {
    let (_d, ws) = workspace();
    let req = shell("sleep 30 & echo $! > bg.pid; echo $$ > main.pid; wait");
    let (tx, rx) = watch::channel(false);
    let root = ws.root().to_path_buf();
    let canceller = async {
        let pids = (
            read_pid(&root.join("main.pid")).await,
            read_pid(&root.join("bg.pid")).await,
        );
        let _ = tx.send(true);
        pids
    };
    let (result, (main, bg)) = tokio::join!(run_command(&ws, &req, rx, None, None), canceller);
    let err = result.unwrap_err();
    assert_eq!(err.kind, OperationErrorKind::Cancelled);
    assert!(wait_gone(main).await && wait_gone(bg).await);
}

#[tokio::test]
async fn a_command_whose_driver_is_gone_is_killed() {
    let (_d, ws) = workspace();
    let req = shell("echo $$ > main.pid; sleep 30");
    let (tx, rx) = watch::channel(false);
    let root = ws.root().to_path_buf();
    let dropper = async {
        let main = read_pid(&root.join("main.pid")).await;
        drop(tx);
        main
    };
    let (result, main) = tokio::join!(run_command(&ws, &req, rx, None, None), dropper);
    assert_eq!(result.unwrap_err().kind, OperationErrorKind::Cancelled);
    assert!(wait_gone(main).await);
}

#[tokio::test]
async fn a_command_cancelled_before_it_starts_never_runs() {
    let (_d, ws) = workspace();
    let (_tx, rx) = watch::channel(true);
    let err = run_command(&ws, &shell("touch ran"), rx, None, None)
        .await
        .unwrap_err();
    assert_eq!(err.kind, OperationErrorKind::Cancelled);
    assert!(!ws.root().join("ran").exists());
}

#[test]
fn the_future_can_be_spawned() {
    fn assert_send<T: Send>(_: &T) {}
    let (_d, ws) = workspace();
    let req = shell("true");
    assert_send(&run_command(&ws, &req, never_cancelled(), None, None));
}

#[tokio::test]
async fn a_command_that_kills_its_supervisor_takes_its_processes_along_and_nothing_else() {
    let (_d, ws) = workspace();
    // A child of the engine's own, in its session, as WebKit's processes are in the app's.
    let mut own = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let script = "(setsid sh -c 'trap \"\" TERM HUP; echo $$ > esc.pid; exec sleep 30' &); \
                  while [ ! -s esc.pid ]; do :; done; kill -9 $PPID; exec sleep 30";
    let err = run_command(&ws, &shell(script), never_cancelled(), None, None)
        .await
        .unwrap_err();
    assert_eq!(err.kind, OperationErrorKind::Io);
    assert_eq!(
        err.message,
        format!(
            "the supervisor of `{script}` was killed by SIGKILL while the command ran; \
             the command and everything it started were killed"
        )
    );
    // Gone by the time the command's result is known, not some time later.
    let escaped = read_pid(&ws.root().join("esc.pid")).await;
    assert!(
        !is_running(escaped),
        "the detached sleep {escaped} outlived its supervisor"
    );
    assert!(
        matches!(own.try_wait(), Ok(None)),
        "the engine's own child was killed"
    );
    own.kill().unwrap();
    own.wait().unwrap();
}

#[test]
fn a_killed_supervisor_is_reported_with_what_became_of_the_command() {
    let reaped = |command| Reaped {
        killed_by: Some(9),
        command,
        survivors: Vec::new(),
        stopped: false,
    };
    assert_eq!(
        supervisor_lost("make", &reaped(Some(CommandFate::Exited(0)))),
        "the supervisor of `make` was killed by SIGKILL while the command ran; the command \
         exited with code 0, and everything it left running was killed"
    );
    assert_eq!(
        supervisor_lost("make", &reaped(Some(CommandFate::Signaled(15)))),
        "the supervisor of `make` was killed by SIGKILL while the command ran; the command \
         was ended by SIGTERM, and everything it left running was killed"
    );
    let mut stuck = reaped(None);
    stuck.survivors = vec![41, 42];
    assert_eq!(
        supervisor_lost("make", &stuck),
        "the supervisor of `make` was killed by SIGKILL while the command ran; the command \
         and everything it started were killed; processes 41, 42 would not die"
    );
    let mut stopped = reaped(Some(CommandFate::Killed));
    stopped.stopped = true;
    assert_eq!(
        supervisor_lost("make", &stopped),
        "the supervisor of `make` was stopped while the command ran, so it was killed; the \
         command and everything it started were killed"
    );
    assert_eq!(
        supervisor_lost("make", &Reaped::default()),
        "the supervisor of `make` ended without saying how the command did"
    );
}

#[tokio::test]
async fn a_supervisor_ignores_the_stops_it_can() {
    let (_d, ws) = workspace();
    let script = "kill -TSTP $PPID; kill -TTIN $PPID; kill -TTOU $PPID; echo done";
    let out = tokio::time::timeout(Duration::from_secs(20), outcome(&ws, &shell(script)))
        .await
        .expect("the supervisor was stopped and the command never ended");
    assert_eq!((out.exit_code, out.stdout.as_str()), (Some(0), "done\n"));
}

#[tokio::test]
async fn a_command_given_up_while_its_supervisor_is_stopped_is_killed_all_the_same() {
    let (_d, ws) = workspace();
    let script = "echo $$ > main.pid; (setsid sh -c 'echo $$ > esc.pid; exec sleep 30' &); \
                  while [ ! -s esc.pid ]; do :; done; kill -STOP $PPID; echo $$ > stopped.pid; sleep 30";
    let root = ws.root().to_path_buf();
    // The command's future is dropped (its driver went away) once the supervisor is stopped:
    // nothing is left to watch it but the thread that reaps it.
    let req = shell(script);
    let stopped = root.join("stopped.pid");
    tokio::select! {
        _ = run_command(&ws, &req, never_cancelled(), None, None) => {
            panic!("the command ended on its own")
        }
        _ = read_pid(&stopped) => {}
    }
    let main = read_pid(&root.join("main.pid")).await;
    let escaped = read_pid(&root.join("esc.pid")).await;
    assert!(wait_gone(main).await, "the command {main} lives on");
    assert!(
        wait_gone(escaped).await,
        "the detached sleep {escaped} lives on"
    );
}

#[tokio::test]
async fn a_command_larger_than_a_socket_buffer_reaches_its_supervisor_whole() {
    let (_d, ws) = workspace();
    // Ten arguments of 100 KB: five times what a socket holds at once.
    let big = "a".repeat(100_000);
    let mut args = vec!["sh", "-c", "echo $# ${#1} ${#10}", "sh"];
    args.extend(std::iter::repeat_n(big.as_str(), 10));
    let out = outcome(&ws, &argv(&args)).await;
    assert_eq!(out.stdout, "10 100000 100000\n");
    // More than `execve` takes is what it says, not an engine error.
    let mut args = vec!["true"];
    args.extend(std::iter::repeat_n(big.as_str(), 40));
    let err = run_command(&ws, &argv(&args), never_cancelled(), None, None)
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind, err.message.as_str()),
        (
            OperationErrorKind::Spawn,
            "could not start `true`: Argument list too long"
        )
    );
}
