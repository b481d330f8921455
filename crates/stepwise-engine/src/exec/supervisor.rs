//! Commands run under a supervisor, so that nothing a command starts outlives it unseen.
//!
//! The supervisor is a small process, a child of the engine's process, forked ahead of time by
//! the launcher (`launcher`: one long-lived process per engine process, forked while the
//! process was small, so that no command costs a fork of the engine). It leads a session of its
//! own, starts the command in a process group of its own and becomes a *child subreaper*:
//! everything the command starts, even what detaches with `setsid` or a double fork, stays its
//! descendant. It kills that whole tree when the command ends (background processes left
//! behind included), when the engine asks (cancel, timeout), and when the engine dies. All of
//! that goes over one Unix socket shared by the engine and the supervisor alone: the engine
//! sends the command on it, the supervisor reports on it (the command's pid, then how it
//! ended), and its closing on the engine's side, however sudden the engine's death (SIGKILL),
//! is the supervisor's signal to kill the tree. No other process can open a socket through
//! `/proc` as it could a pipe, so the report is the supervisor's own word, and its end is the
//! supervisor's last word or its death. While anything of the command may run the supervisor
//! holds a lock file, so that an engine recovering the run after a crash can tell when the
//! command's processes are gone (see `driver::recovery`). The supervisor can be killed itself
//! (the command knows it as `$PPID`); the engine then kills what it left (`orphans`).
//!
//! This module is the engine's side: the request, the pipes, getting a supervisor from the
//! launcher, and reading what it reports. The code that runs in the supervisor is in `child`.

#![allow(unsafe_code)]

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use libc::pid_t;
use nix::fcntl::OFlag;

mod child;
mod inherited;
mod launcher;
mod orphans;
mod sys;

pub(crate) use launcher::discard_idle as discard_idle_supervisors;
pub use launcher::start as start_launcher;
use launcher::wire::{Request, Spawn};
pub(crate) use orphans::{CommandFate, Reaped};

/// What the supervisor reports, one record of 5 bytes each: a kind and a value.
const STARTED: u8 = b'p';
/// Sent before the last record by a supervisor that will not take another command (a
/// command changed what the next would inherit from it: see `inherited`).
const RETIRING: u8 = b'r';
const EXEC_FAILED: u8 = b'e';
const EXITED: u8 = b'x';
const SIGNALED: u8 = b's';
const KILLED: u8 = b'k';

/// A command running under its supervisor. Dropping it (or [`Supervised::stop`]) makes the
/// supervisor kill the command's whole tree.
pub(crate) struct Supervised {
    pub(crate) pid: pid_t,
    pub(crate) stdout: Option<OwnedFd>,
    pub(crate) stderr: Option<OwnedFd>,
    /// The write end of its stdin, when it was given one (`Launch::stdin`).
    pub(crate) stdin: Option<OwnedFd>,
    /// The socket shared with the supervisor alone: its report comes on it, and closing it
    /// (or shutting down its writing side) makes the supervisor kill the command's tree.
    pub(crate) channel: Option<OwnedFd>,
    /// When its command was asked for, in clock ticks since boot: nothing the command started
    /// started earlier (`orphans`).
    started: u64,
    /// The engine killed it because it was stopped.
    killed_stopped: bool,
    reaped: bool,
}

/// What the supervisor reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Report {
    /// The command's pid, once it started.
    pub(crate) command: Option<pid_t>,
    pub(crate) ended: Ended,
    /// The supervisor exits after this command rather than take another.
    pub(crate) retiring: bool,
}

/// How the supervised command ended, from the supervisor's report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    Exited(i32),
    Signaled(i32),
    /// Killed, with its tree, because the engine asked.
    Killed,
    /// It could not be started (`posix_spawn` failed with this errno).
    NotStarted {
        errno: i32,
    },
    /// The supervisor said nothing of its end (it was killed, or stopped and then killed).
    Unknown,
}

impl Report {
    /// Whether these records hold the report's last (how the command ended): the supervisor
    /// writes nothing after it.
    pub(crate) fn is_whole(bytes: &[u8]) -> bool {
        bytes
            .chunks_exact(5)
            .any(|record| matches!(record[0], EXEC_FAILED | EXITED | SIGNALED | KILLED))
    }

    /// Reads the supervisor's records (all it wrote before its last, or before it died).
    pub(crate) fn parse(bytes: &[u8]) -> Report {
        let mut report = Report {
            command: None,
            ended: Ended::Unknown,
            retiring: false,
        };
        for record in bytes.chunks_exact(5) {
            let value = i32::from_le_bytes([record[1], record[2], record[3], record[4]]);
            report.ended = match record[0] {
                STARTED => {
                    report.command = Some(value);
                    continue;
                }
                RETIRING => {
                    report.retiring = true;
                    continue;
                }
                EXEC_FAILED => Ended::NotStarted { errno: value },
                EXITED => Ended::Exited(value),
                SIGNALED => Ended::Signaled(value),
                KILLED => Ended::Killed,
                _ => continue,
            };
        }
        report
    }
}

impl Supervised {
    /// Tells the supervisor to kill the command's whole tree, if the channel was not taken
    /// (whoever took it closes it, or shuts down its writing side, to the same end).
    pub(crate) fn stop(&mut self) {
        self.channel = None;
    }

    /// Keeps the supervisor for the next command, its channel back in one piece: its command
    /// ended on its own and it reported so (its tree is dead), and the engine did not ask it to
    /// kill anything. If enough are kept, it is let go (it exits, and is reaped).
    pub(crate) fn keep(mut self, channel: OwnedFd) {
        // Its tree is dead: the engine need not be a subreaper for it (before it can be taken
        // again, so that it is never marked idle while busy).
        orphans::now_idle(self.pid);
        if launcher::keep(self.pid, channel).is_ok() {
            // The launcher's now: not reaped here.
            self.reaped = true;
        }
    }

    /// Kills the supervisor if it is stopped (a stopped supervisor would neither report nor
    /// kill the tree: the command, or anyone, could hold it so forever). Once killed, it is
    /// dealt with as any killed supervisor (see [`Supervised::reap`]). Whether it was.
    pub(crate) fn kill_if_stopped(&mut self) -> bool {
        if !self.killed_stopped && !self.reaped && orphans::is_stopped(self.pid) {
            // Not reaped yet, so the pid is still this process's.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            self.killed_stopped = true;
        }
        self.killed_stopped
    }

    /// A descriptor that becomes readable when the supervisor exits (a pidfd), so that its exit
    /// can be awaited on the async runtime rather than on a thread. `None` before Linux 5.3.
    pub(crate) fn exit_watch(&self) -> Option<OwnedFd> {
        if self.reaped {
            return None;
        }
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1. The
        // supervisor is this process's child and not reaped, so its pid is still its own.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, self.pid, libc::O_NONBLOCK) };
        let fd = RawFd::try_from(fd).ok().filter(|&fd| fd >= 0)?;
        // SAFETY: a descriptor just returned by the kernel, owned by nothing else.
        Some(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
    }

    /// Reaps the supervisor if it has exited on its own (it does right after its report);
    /// `None` if it has not yet, or was killed (see [`Supervised::reap`]).
    pub(crate) fn reap_if_exited(&mut self) -> Option<Reaped> {
        if self.reaped {
            return Some(Reaped::default());
        }
        let reaped = orphans::reap_if_exited(self.pid)?;
        self.reaped = true;
        Some(reaped)
    }

    /// Waits for the supervisor to exit (it does right after its report) and reaps it. If it
    /// was killed, first kills what it left (see `orphans`), and says how the command ended.
    pub(crate) fn reap(&mut self, report: &Report) -> Reaped {
        if self.reaped {
            return Reaped::default();
        }
        self.reaped = true;
        let mut reaped = orphans::reap(self.pid, self.started, report.command);
        reaped.stopped |= self.killed_stopped;
        reaped
    }
}

/// Returns once the process behind `exit_watch` (a pidfd from [`Supervised::exit_watch`]) has
/// exited; never, if the descriptor cannot be watched.
pub(crate) async fn exited(exit_watch: OwnedFd) {
    // SAFETY: the descriptor is moved into the `AsyncFd` and closed only when it is dropped,
    // after it is deregistered: nothing else can close it while it is registered.
    match unsafe { tokio::io::unix::AsyncFd::register(exit_watch) } {
        Ok(watch) => {
            let _ = watch.readable().await;
        }
        Err(_) => std::future::pending().await,
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop();
        if !self.reaped {
            // The supervisor exits within moments of its report's end (or of its socket
            // closing); it is reaped off this thread so that a long-lived engine keeps no
            // zombies (and, if it was killed, so that what it left is killed).
            self.reaped = true;
            orphans::reap_later(self.pid, self.started);
        }
    }
}

/// What to run.
pub(crate) struct Launch<'a> {
    pub(crate) program: &'a OsStr,
    pub(crate) args: &'a [OsString],
    pub(crate) env: &'a [(OsString, OsString)],
    pub(crate) cwd: &'a Path,
    /// Held by the supervisor while the command's tree may live.
    pub(crate) lock: Option<&'a Path>,
    /// Give it a pipe as its stdin (a server spoken to on it), rather than /dev/null.
    pub(crate) stdin: bool,
}

/// A command ready to be sent to a supervisor: its request encoded, its pipes made. Nothing of
/// it has reached another process yet.
pub(crate) struct Prepared {
    request: Request,
    stdout: (OwnedFd, OwnedFd),
    stderr: (OwnedFd, OwnedFd),
    stdin: Option<(OwnedFd, OwnedFd)>,
}

/// Prepares the command (see [`Prepared::start`]). An error here is the engine's (pipes);
/// a program that cannot be found is left for the supervisor to report.
pub(crate) fn prepare(launch: &Launch<'_>) -> io::Result<Prepared> {
    let program = resolve(launch.program, launch.env, launch.cwd);
    // The supervisor's working directory is the engine's as it was when the launcher started.
    let cwd = std::path::absolute(launch.cwd)?;
    let lock = launch.lock.map(std::path::absolute).transpose()?;
    let request = Request::new(Spawn {
        program: program.as_os_str(),
        cwd: cwd.as_os_str(),
        lock: lock.as_deref().map(Path::as_os_str),
        argv: std::iter::once(launch.program).chain(launch.args.iter().map(OsString::as_os_str)),
        env: launch
            .env
            .iter()
            .map(|(name, value)| (name.as_os_str(), value.as_os_str())),
    })?;
    Ok(Prepared {
        request,
        stdout: pipe()?,
        stderr: pipe()?,
        stdin: launch.stdin.then(pipe).transpose()?,
    })
}

impl Prepared {
    /// Starts the command at once if that cannot block (a kept supervisor waits for it, and
    /// the request goes in one send): what the committing thread does the moment the command's
    /// start is durable. Otherwise gives itself back, for [`Prepared::start`].
    pub(crate) fn try_start_at_once(self) -> Result<Supervised, Prepared> {
        let started = orphans::boot_ticks();
        let Some(supervisor) = launcher::launch_kept_at_once(&self.request, &self.fds()) else {
            return Err(self);
        };
        Ok(self.started_by(supervisor, started))
    }

    /// Sends the command to a supervisor, which starts it. An error here is the engine's (the
    /// launcher); a program that cannot be started is reported as [`Ended::NotStarted`].
    pub(crate) fn start(self) -> io::Result<Supervised> {
        // Everything the command starts starts after this.
        let started = orphans::boot_ticks();
        let supervisor = launcher::launch(&mut orphans::forking(), &self.request, &self.fds())?;
        Ok(self.started_by(supervisor, started))
    }

    /// The descriptors sent with the request: the write ends of stdout and stderr, and the
    /// read end of stdin when it has one.
    fn fds(&self) -> Vec<RawFd> {
        let mut fds = vec![self.stdout.1.as_raw_fd(), self.stderr.1.as_raw_fd()];
        fds.extend(self.stdin.as_ref().map(|stdin| stdin.0.as_raw_fd()));
        fds
    }

    /// The command, sent to `supervisor`, which was asked for at `started` (boot ticks).
    fn started_by(self, supervisor: launcher::Spare, started: u64) -> Supervised {
        // The write ends are the supervisor's alone now: only the command's tree may hold
        // them, so that their end is the tree's end (and stdin's read end, likewise).
        drop((self.stdout.1, self.stderr.1));
        let stdin = self.stdin.map(|(read, write)| {
            drop(read);
            write
        });
        Supervised {
            pid: supervisor.pid,
            stdout: Some(self.stdout.0),
            stderr: Some(self.stderr.0),
            stdin,
            channel: Some(supervisor.socket),
            started,
            killed_stopped: false,
            reaped: false,
        }
    }
}

/// The program to `execve`: a name without a slash is looked up in the command's own `PATH`
/// (as a shell would), anything else is taken as it is (relative to the working directory).
fn resolve(program: &OsStr, env: &[(OsString, OsString)], cwd: &Path) -> PathBuf {
    if program.as_bytes().contains(&b'/') {
        return PathBuf::from(program);
    }
    let path = env
        .iter()
        .find(|(name, _)| name == "PATH")
        .map(|(_, value)| value.clone())
        .unwrap_or_else(|| OsString::from("/usr/local/bin:/usr/bin:/bin"));
    for dir in std::env::split_paths(&path) {
        let dir = if dir.is_relative() {
            cwd.join(dir)
        } else {
            dir
        };
        let candidate = dir.join(program);
        if is_executable(&candidate) {
            return candidate;
        }
    }
    // Not found: execve fails with ENOENT and that is what is reported.
    PathBuf::from(program)
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io::Error::from)
}
