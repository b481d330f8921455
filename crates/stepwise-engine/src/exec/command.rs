//! Running commands in the workspace.
//!
//! A command runs under a supervisor (see `supervisor`) with a scrubbed environment: its whole
//! process tree, detached descendants included, is killed when the command times out, is
//! cancelled, ends while processes it started in the background are still running, or when
//! the engine dies; and if the supervisor is killed or stopped, the engine kills it all itself
//! and the command fails saying so. Nothing a workflow starts keeps running unseen.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use stepwise_core::operation::{
    CommandOutcome, CommandRequest, OperationError, OperationErrorKind, OperationResult,
    SavedOutput,
};
use stepwise_core::workflow::MAX_OUTPUT_CEILING;
use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;
use tokio::net::unix::pipe::Receiver;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::watch;

use super::output::{Capture, Live};
use super::recorded::Recorded;
use super::supervisor::{self, CommandFate, Ended, Reaped, Report, Supervised};
use crate::sandbox::Workspace;
use prepare::{
    OutputFiles, PreparedCommand, Starting, child_env, open_output_files, prepare, spawn_error,
};

/// How long to keep reading output once the supervisor has reported: only a process outside
/// the command's tree could still hold the pipes then, and the command must not hang on it.
const PIPE_GRACE: Duration = Duration::from_secs(1);

/// How often the engine looks whether a command's supervisor is stopped (`kill -STOP $PPID`).
const WATCHDOG: Duration = Duration::from_millis(500);

/// Runs a command in the workspace and reports how it ended.
///
/// A timeout kills the command's whole tree and is a result (`timed_out: true`); cancellation
/// (the watch value becoming `true`, or its sender going away) kills it too and is an error of
/// kind `Cancelled`. `lock` is a file the supervisor holds while anything of the command may
/// run.
///
/// With `save_as` (a workspace-relative path without extension, used when the request asks to
/// save its output), all of stdout and stderr are also streamed to `<save_as>.stdout` and
/// `<save_as>.stderr`.
#[cfg(test)]
pub async fn run_command(
    ws: &Workspace,
    req: &CommandRequest,
    cancel: watch::Receiver<bool>,
    lock: Option<&Path>,
    save_as: Option<&str>,
) -> Result<OperationResult, OperationError> {
    run_command_live(ws, req, cancel, lock, save_as, None, Recorded::already()).await
}

/// [`run_command`], with its output also sent to `live` as it comes, started once `recorded`
/// says its request is (what touches nothing outside the engine is prepared meanwhile).
pub(crate) async fn run_command_live(
    ws: &Workspace,
    req: &CommandRequest,
    cancel: watch::Receiver<bool>,
    lock: Option<&Path>,
    save_as: Option<&str>,
    live: Option<Live>,
    recorded: Recorded,
) -> Result<OperationResult, OperationError> {
    let env = child_env(req, |name| std::env::var_os(name));
    let prepared = prepare(ws, req, env, lock)?;
    let shown = prepared.shown.clone();
    let not_recorded = || {
        OperationError::new(
            OperationErrorKind::Cancelled,
            format!("command `{shown}` was not started: its start could not be recorded"),
        )
    };
    // Files to save its output in are a change in the workspace: made once the start is
    // recorded, and then the command starts here.
    if req.save_output && save_as.is_some() {
        if !recorded.wait().await {
            return Err(not_recorded());
        }
        let save = save_as
            .map(|stem| open_output_files(ws, stem))
            .transpose()?;
        return run(req, cancel, Starting::Prepared(prepared), save, live).await;
    }
    // Otherwise it starts on the committing thread the moment its start is durable, if a
    // kept supervisor can take it at once; else here.
    let starting = recorded
        .then(move || prepared.try_start_at_once())
        .await
        .ok_or_else(not_recorded)?;
    run(req, cancel, starting, None, live).await
}

/// Starts a long-lived program in `cwd`, spoken to on its stdin and stdout (an MCP server),
/// under a supervisor as a command is: with the same scrubbed environment (the allowed
/// variables, `pass_env`'s, then `env`), `lock` held while its tree lives, its whole tree
/// killed when the returned [`Supervised`] is dropped or the engine dies.
pub(crate) fn start_server(
    cwd: &Path,
    argv: &[String],
    env: &std::collections::BTreeMap<String, String>,
    pass_env: &[String],
    lock: &Path,
) -> Result<Supervised, OperationError> {
    let request = CommandRequest {
        command: stepwise_core::operation::CommandLine::Argv(argv.to_vec()),
        cwd: ".".into(),
        env: env.clone(),
        pass_env: pass_env.to_vec(),
        timeout_ms: None,
        max_output_bytes: 0,
        save_output: false,
        stdin: None,
    };
    let env: Vec<_> = child_env(&request, |name| std::env::var_os(name))
        .into_iter()
        .collect();
    let (program, args) = prepare::program_and_args(&request.command)?;
    supervisor::prepare(&supervisor::Launch {
        program: program.as_ref(),
        args: &args,
        env: &env,
        cwd,
        lock: Some(lock),
        stdin: true,
    })
    .and_then(supervisor::Prepared::start)
    .map_err(|e| spawn_error(&program.to_string_lossy(), &e))
}

/// How the wait for the command ended.
enum Ending {
    Reported(Ended),
    TimedOut,
    Cancelled,
}

async fn run(
    req: &CommandRequest,
    mut cancel: watch::Receiver<bool>,
    starting: Starting,
    save: Option<OutputFiles>,
    live: Option<Live>,
) -> Result<OperationResult, OperationError> {
    let (shown, program, started, mut child) = match starting {
        Starting::Started {
            shown,
            program,
            child,
            at,
        } => (shown, program, at, child),
        Starting::Prepared(PreparedCommand {
            shown,
            program,
            supervisor,
        }) => {
            if *cancel.borrow_and_update() {
                return Err(OperationError::new(
                    OperationErrorKind::Cancelled,
                    format!("command `{shown}` was cancelled before it started"),
                ));
            }
            let at = Instant::now();
            let child = supervisor
                .start()
                .map_err(|e| spawn_error(&program.to_string_lossy(), &e))?;
            (shown, program, at, child)
        }
    };
    tracing::debug!(supervisor = child.pid, command = %shown, "command started");
    let (stdout, stderr, report, control) = child_pipes(&mut child, &shown)?;
    let feeding = feed_stdin(child.stdin.take(), req.stdin.clone());
    // Dropping it shuts the engine's writing side of the channel: the supervisor kills the
    // tree and reports `Killed` (so does the run's end, however it comes).
    let mut control = Some(control);

    // The ceiling holds here too, whatever a request recorded by an older version says.
    let limit = usize::try_from(req.max_output_bytes.min(MAX_OUTPUT_CEILING)).unwrap_or(usize::MAX);
    let (saved_names, out_sink, err_sink) = match save {
        Some(files) => (
            Some((files.stdout_file, files.stderr_file)),
            Some(files.stdout),
            Some(files.stderr),
        ),
        None => (None, None, None),
    };
    let mut out = Capture::new(limit, out_sink);
    let mut err = Capture::new(limit, err_sink);
    let (ending, elapsed, reaped) = {
        let reading = async {
            tokio::join!(
                out.drain(Some(stdout), live.as_ref()),
                err.drain(Some(stderr), live.as_ref()),
                feeding,
            );
        };
        let deadline = async {
            match req.timeout_ms {
                Some(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                None => std::future::pending().await,
            }
        };
        let reported = read_report(report);
        let cancelled = cancelled(&mut cancel);
        tokio::pin!(reading, deadline, reported, cancelled);
        let mut watchdog =
            tokio::time::interval_at(tokio::time::Instant::now() + WATCHDOG, WATCHDOG);
        watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        let mut drained = false;
        let mut stopped = false;
        let (ending, report) = loop {
            // Biased so that a command which has already ended is reported as such even if its
            // deadline or a cancellation arrives in the same instant.
            tokio::select! {
                biased;
                report = &mut reported => break (Ending::Reported(report.0.ended), Some(report)),
                () = &mut cancelled => break (Ending::Cancelled, None),
                () = &mut deadline => break (Ending::TimedOut, None),
                _ = watchdog.tick(), if !stopped => stopped = child.kill_if_stopped(),
                () = &mut reading, if !drained => drained = true,
            }
        };
        let elapsed = started.elapsed();
        let (report, rest) = match report {
            Some(report) => report,
            None => {
                // Ask the supervisor to kill the tree, and wait until it has.
                drop(control.take());
                loop {
                    tokio::select! {
                        report = &mut reported => break report,
                        _ = watchdog.tick(), if !stopped => stopped = child.kill_if_stopped(),
                    }
                }
            }
        };
        // How the command ended is the supervisor's word, sent after it killed the tree: no
        // need to wait for it to exit. One whose command ended on its own is kept for the next
        // command; one asked to kill the tree exits (and is reaped in the background). Without
        // that word, it was killed (or stopped): what it left is swept first.
        let reaped = match (report.ended, rest, control.take()) {
            (Ended::Unknown, ..) => reap(child, report, &shown).await,
            // Not after a command that could not start (its cause may be the supervisor's),
            // nor one that says it will not take another.
            (Ended::Exited(_) | Ended::Signaled(_), Some(rest), Some(control))
                if !stopped && !report.retiring =>
            {
                match rest.reunite(control).map(UnixStream::into_std) {
                    Ok(Ok(channel)) => child.keep(channel.into()),
                    _ => drop(child),
                }
                Reaped::default()
            }
            _ => {
                drop(child);
                Reaped::default()
            }
        };
        // A killed supervisor said nothing in its own words: how the command ended is what
        // the sweep found.
        let ending = match (ending, reaped.killed_by) {
            (Ending::Reported(_), Some(_)) => Ending::Reported(Ended::Unknown),
            (ending, _) => ending,
        };
        if !drained
            && tokio::time::timeout(PIPE_GRACE, &mut reading)
                .await
                .is_err()
        {
            tracing::warn!(command = %shown, "output pipes still open after the command's tree was killed; a process outside it holds them");
        }
        (ending, elapsed, reaped)
    };

    let (exit_code, signal, timed_out) = match ending {
        Ending::Reported(Ended::Exited(code)) => (Some(code), None, false),
        Ending::Reported(Ended::Signaled(signal)) => (None, Some(signal), false),
        Ending::Reported(Ended::NotStarted { errno }) => {
            return Err(spawn_error(
                &program.to_string_lossy(),
                &io::Error::from_raw_os_error(errno),
            ));
        }
        Ending::Reported(Ended::Killed | Ended::Unknown) => {
            return Err(OperationError::new(
                OperationErrorKind::Io,
                supervisor_lost(&shown, &reaped),
            ));
        }
        Ending::TimedOut => (None, Some(libc::SIGKILL), true),
        Ending::Cancelled => {
            return Err(OperationError::new(
                OperationErrorKind::Cancelled,
                format!("command `{shown}` was cancelled; its process tree was killed"),
            ));
        }
    };

    let out_error = out.close_sink().await;
    let err_error = err.close_sink().await;
    let saved_output = saved_names.map(|(stdout_file, stderr_file)| SavedOutput {
        stdout_file,
        stderr_file,
        error: out_error.or(err_error),
    });
    let (stdout, stdout_bytes) = out.finish();
    let (stderr, stderr_bytes) = err.finish();
    Ok(OperationResult::CommandFinished(CommandOutcome {
        exit_code,
        signal,
        timed_out,
        stdout,
        stderr,
        stdout_bytes,
        stderr_bytes,
        duration_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        changes: Vec::new(),
        saved_output,
    }))
}

/// Writes `text` to the command's stdin and closes it, alongside the reading of its output
/// (a command that answers before reading all of it must not stall either side). A command
/// that closes its stdin early only stops the writing.
async fn feed_stdin(stdin: Option<std::os::fd::OwnedFd>, text: Option<String>) {
    use tokio::io::AsyncWriteExt;
    let (Some(fd), Some(text)) = (stdin, text) else {
        return;
    };
    let Ok(mut sender) = tokio::net::unix::pipe::Sender::from_owned_fd(fd) else {
        return;
    };
    if let Err(error) = sender.write_all(text.as_bytes()).await {
        tracing::debug!(%error, "the command did not read all of its stdin");
    }
}

/// The command's output pipes as async readers, and the channel to its supervisor split into
/// the report (read) and the control (write).
fn child_pipes(
    child: &mut Supervised,
    shown: &str,
) -> Result<(Receiver, Receiver, OwnedReadHalf, OwnedWriteHalf), OperationError> {
    let taken = |fd: Option<std::os::fd::OwnedFd>| fd.ok_or_else(|| io::Error::other("taken"));
    let pipe = |fd| taken(fd).and_then(Receiver::from_owned_fd);
    let out = (|| {
        let channel = std::os::unix::net::UnixStream::from(taken(child.channel.take())?);
        let (report, control) = UnixStream::from_std(channel)?.into_split();
        Ok::<_, io::Error>((
            pipe(child.stdout.take())?,
            pipe(child.stderr.take())?,
            report,
            control,
        ))
    })();
    out.map_err(|e| {
        OperationError::new(
            OperationErrorKind::Io,
            format!("could not read the output of `{shown}`: {e}"),
        )
    })
}

/// The most of a report that is kept: a real report is a few records of 5 bytes.
const REPORT_KEPT: usize = 4096;

/// The supervisor's report, to its last record (how the command ended) or the channel's end.
/// It is a socket only the supervisor holds (not inherited by the command, and no other
/// process can open a socket through `/proc`, as it could a pipe), so its end is the
/// supervisor's last word or its death. With its last word, the channel's reading half is
/// given back: the supervisor waits on it for another command.
async fn read_report(mut report: OwnedReadHalf) -> (Report, Option<OwnedReadHalf>) {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        match report.read(&mut buf).await {
            Ok(0) | Err(_) => return (Report::parse(&bytes), None),
            Ok(n) => {
                let room = REPORT_KEPT.saturating_sub(bytes.len());
                bytes.extend_from_slice(&buf[..n.min(room)]);
                if Report::is_whole(&bytes) {
                    return (Report::parse(&bytes), Some(report));
                }
            }
        }
    }
}

/// Waits for the supervisor to exit (it does right after its report) and reaps it: at once if
/// it exited on its own, else on a blocking thread. One killed, whatever its report pipe said
/// (anyone can write there), may have left its command's processes alive: they are killed
/// first, and what was found is returned.
async fn reap(mut child: Supervised, report: Report, shown: &str) -> Reaped {
    // Its exit is awaited on the reactor (a pidfd), not on a thread; one stopped meanwhile
    // would never exit, so it is killed.
    if let Some(watch) = child.exit_watch() {
        let exited = supervisor::exited(watch);
        tokio::pin!(exited);
        let mut watchdog =
            tokio::time::interval_at(tokio::time::Instant::now() + WATCHDOG, WATCHDOG);
        loop {
            tokio::select! {
                () = &mut exited => break,
                _ = watchdog.tick() => if child.kill_if_stopped() { break },
            }
        }
    }
    if let Some(reaped) = child.reap_if_exited() {
        return reaped;
    }
    let reaped = tokio::task::spawn_blocking(move || child.reap(&report))
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(command = %shown, "reaping a killed supervisor stopped: {e}");
            Reaped::default()
        });
    // The step's error says it; this is for whoever reads the engine's log.
    if let Some(signal) = reaped.killed_by {
        tracing::debug!(command = %shown, signal, "the command's supervisor was killed; the engine killed what it left");
    }
    reaped
}

/// The error of a command whose supervisor ended without reporting how the command did.
fn supervisor_lost(shown: &str, reaped: &Reaped) -> String {
    if reaped.killed_by.is_none() {
        return format!("the supervisor of `{shown}` ended without saying how the command did");
    }
    let mut message = if reaped.stopped {
        format!("the supervisor of `{shown}` was stopped while the command ran, so it was killed; ")
    } else {
        let signal = reaped.killed_by.map_or_else(String::new, signal_name);
        format!("the supervisor of `{shown}` was killed by {signal} while the command ran; ")
    };
    message.push_str(&match reaped.command {
        Some(CommandFate::Exited(code)) => {
            format!(
                "the command exited with code {code}, and everything it left running was killed"
            )
        }
        Some(CommandFate::Signaled(signal)) => format!(
            "the command was ended by {}, and everything it left running was killed",
            signal_name(signal)
        ),
        Some(CommandFate::Killed) | None => {
            "the command and everything it started were killed".to_string()
        }
    });
    if !reaped.survivors.is_empty() {
        let pids: Vec<String> = reaped.survivors.iter().map(ToString::to_string).collect();
        message.push_str(&format!("; processes {} would not die", pids.join(", ")));
    }
    message
}

/// `SIGKILL` for 9, `signal 64` for what has no name.
fn signal_name(signal: i32) -> String {
    nix::sys::signal::Signal::try_from(signal)
        .map_or_else(|_| format!("signal {signal}"), |s| s.as_str().to_string())
}

/// Resolves once the watch value is `true`; never, if the sender is gone without it.
async fn cancelled(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        // The sender gone means the driver that started the command is gone: nobody would
        // record how it ended, so it must not keep running unseen.
        if rx.changed().await.is_err() {
            return;
        }
    }
}

mod prepare;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
