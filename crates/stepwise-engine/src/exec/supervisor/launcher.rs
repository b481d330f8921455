//! The launcher: one long-lived process per engine process that forks each command's
//! supervisor, so that the engine never forks itself for a command.
//!
//! Forking the engine costs in proportion to its memory (its page tables are copied, and every
//! page it then writes is copied again): the larger the engine, the dearer each command. The
//! launcher is forked once, while the process is still small: at the start of `main`, where
//! the CLI and the app call [`start`] before any thread or runtime exists; failing that
//! (tests, benchmarks, other embedders), from the engine itself when its first command runs.
//! It then forks a supervisor per command (see `serve`), with `CLONE_PARENT`, so that every
//! supervisor is still a child of the engine's process: the engine reaps it, watches it,
//! kills it if it is stopped and sweeps what it leaves if it is killed, all as before
//! (`orphans`). The launcher has no child of its own, so killing it leaves nothing behind; the
//! engine forks a new one when it next needs one. It exits when the engine's end of its socket
//! closes, however the engine ended.
//!
//! Why a fork and not an exec of the engine's binary with a marker argument: an exec loads the
//! whole binary again and needs its `main` to know the marker (a test binary's does not), while
//! the fallback must work from a many-threaded process anyway; so the launcher is written as a
//! forked child of a many-threaded process must be (async-signal-safe calls only), in both
//! cases.
//!
//! Requests travel over a Unix socket pair (which, unlike a pipe, no other process can open
//! through `/proc`): the program, arguments, environment, working directory and lock file,
//! with the command's pipes passed as descriptors (`SCM_RIGHTS`); the answer is the
//! supervisor's pid (`wire`). Every wait for the launcher is bounded, and a launcher found
//! stopped is killed: a command that stops or kills it cannot hang the engine.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use libc::pid_t;

mod serve;
pub(super) mod wire;

use super::orphans::{self, Forking};
use wire::{ANSWER_LEN, Request};

/// How long the engine waits for the launcher to take a request and answer; it forks one
/// process, so only a launcher that is stuck takes this long.
const PATIENCE: Duration = Duration::from_secs(10);

/// How often, while waiting, the engine looks whether the launcher was stopped.
const SLICE: Duration = Duration::from_millis(100);

/// This process's launcher, if one is running. Locked after [`orphans::forking`].
static LAUNCHER: Mutex<Option<Launcher>> = Mutex::new(None);

struct Launcher {
    pid: pid_t,
    /// The engine's end of the socket pair, non-blocking.
    socket: OwnedFd,
}

fn current() -> MutexGuard<'static, Option<Launcher>> {
    LAUNCHER.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Forks the launcher now, while the process is small, unless one is running. Meant for the
/// first line of `main`, before any thread starts; a failure is left for the first command to
/// meet (it forks a launcher itself, and says why if it cannot).
pub fn start() {
    let mut forking = orphans::forking();
    let mut launcher = current();
    if launcher.is_none() {
        *launcher = fork_launcher(&mut forking).ok();
    }
}

/// Why no supervisor was forked for a request.
pub(super) enum Failed {
    /// The launcher did not get the whole request (it was gone, or stopped): nothing started.
    NotSent,
    /// The launcher could not fork (an errno), or none could be started: nothing started.
    Refused(io::Error),
    /// The launcher got the request but did not answer (it died, or was stopped, and was
    /// killed): a supervisor may have been forked, which the report pipe then says.
    Unanswered,
}

/// Asks the launcher (forking one first if none is running) to fork a supervisor for
/// `request`, handing it `fds` (the supervisor's ends of the stdout, stderr, report and
/// control pipes). The supervisor's pid. A launcher that fails is killed and reaped, so the
/// next call starts a new one.
pub(super) fn launch(
    forking: &mut Forking,
    request: &Request,
    fds: [RawFd; 4],
) -> Result<pid_t, Failed> {
    let mut slot = current();
    let launcher = match slot.take() {
        Some(launcher) => launcher,
        None => fork_launcher(forking).map_err(Failed::Refused)?,
    };
    match exchange(&launcher, request, fds) {
        Ok(Ok(pid)) => {
            *slot = Some(launcher);
            Ok(pid)
        }
        Ok(Err(errno)) => {
            *slot = Some(launcher);
            Err(Failed::Refused(io::Error::from_raw_os_error(errno)))
        }
        Err(failed) => {
            discard(launcher, forking);
            Err(failed)
        }
    }
}

/// Sends the request and reads the answer: the supervisor's pid, or the launcher's errno.
fn exchange(
    launcher: &Launcher,
    request: &Request,
    fds: [RawFd; 4],
) -> Result<Result<pid_t, i32>, Failed> {
    let deadline = Instant::now() + PATIENCE;
    let bytes = request.bytes();
    let mut sent = loop {
        match send_with_fds(&launcher.socket, bytes, &fds) {
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait(launcher, libc::POLLOUT, deadline).map_err(|_| Failed::NotSent)?;
            }
            Err(_) => return Err(Failed::NotSent),
        }
    };
    while let Some(rest) = bytes.get(sent..).filter(|rest| !rest.is_empty()) {
        // SAFETY: a send of a buffer borrowed for the call; no SIGPIPE if the launcher is gone.
        let n = unsafe {
            libc::send(
                launcher.socket.as_raw_fd(),
                rest.as_ptr().cast(),
                rest.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        match usize::try_from(n) {
            Ok(n) => sent += n,
            Err(_) => match nix::errno::Errno::last() {
                nix::errno::Errno::EAGAIN => {
                    wait(launcher, libc::POLLOUT, deadline).map_err(|_| Failed::NotSent)?;
                }
                nix::errno::Errno::EINTR => {}
                _ => return Err(Failed::NotSent),
            },
        }
    }
    let mut answer = [0u8; ANSWER_LEN];
    let mut got = 0;
    while let Some(rest) = answer.get_mut(got..).filter(|rest| !rest.is_empty()) {
        match nix::unistd::read(&launcher.socket, rest) {
            Ok(0) => return Err(Failed::Unanswered),
            Ok(n) => got += n,
            Err(nix::errno::Errno::EAGAIN) => {
                wait(launcher, libc::POLLIN, deadline).map_err(|_| Failed::Unanswered)?;
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return Err(Failed::Unanswered),
        }
    }
    let word = |i: usize| i32::from_le_bytes([answer[i], answer[i + 1], answer[i + 2], answer[i + 3]]);
    Ok(match (word(0), word(4)) {
        (0, pid) if pid > 0 => Ok(pid),
        (0, _) => Err(libc::EPROTO),
        (errno, _) => Err(errno),
    })
}

/// The first part of the request, with the descriptors; how many bytes were sent.
fn send_with_fds(socket: &OwnedFd, bytes: &[u8], fds: &[RawFd; 4]) -> io::Result<usize> {
    const FDS: usize = std::mem::size_of::<[RawFd; 4]>();
    // u64 for the alignment `cmsghdr` needs; room for one message of four descriptors.
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr().cast_mut().cast(),
        iov_len: bytes.len(),
    };
    // SAFETY: the msghdr points at `iov` and `control`, which outlive the call; the one
    // control message is laid out with the CMSG macros within `control` (CMSG_SPACE of four
    // descriptors is 32 bytes, `control` 64); sendmsg only reads the data `iov` points at.
    unsafe {
        let mut message: libc::msghdr = std::mem::zeroed();
        message.msg_iov = &mut iov;
        message.msg_iovlen = 1;
        message.msg_control = control.as_mut_ptr().cast();
        message.msg_controllen = libc::CMSG_SPACE(FDS as u32) as _;
        let cmsg = libc::CMSG_FIRSTHDR(&message);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(FDS as u32) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg).cast::<RawFd>(), 4);
        loop {
            let n = libc::sendmsg(socket.as_raw_fd(), &message, libc::MSG_NOSIGNAL);
            if let Ok(n) = usize::try_from(n) {
                return Ok(n);
            }
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
    }
}

/// Waits until the socket is ready for `events`, until `deadline`; an error if the launcher
/// is found stopped (it would never be ready) or the deadline passes.
fn wait(launcher: &Launcher, events: libc::c_short, deadline: Instant) -> io::Result<()> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        let mut poll = libc::pollfd {
            fd: launcher.socket.as_raw_fd(),
            events,
            revents: 0,
        };
        let ms = libc::c_int::try_from(left.min(SLICE).as_millis()).unwrap_or(1).max(1);
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut poll, 1, ms) } > 0 && poll.revents != 0 {
            return Ok(());
        }
        if orphans::is_stopped(launcher.pid) {
            return Err(io::Error::other("the command launcher is stopped"));
        }
    }
}

/// Forks a launcher from this process. The caller holds `forking`, so that no sweep runs while
/// the launcher is not yet known as one.
fn fork_launcher(forking: &mut Forking) -> io::Result<Launcher> {
    let mut pair = [-1; 2];
    // SAFETY: socketpair fills the two-element array with new descriptors on success.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            pair.as_mut_ptr(),
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: two descriptors just created, owned by nothing else.
    let (engine_end, launcher_end) =
        unsafe { (OwnedFd::from_raw_fd(pair[0]), OwnedFd::from_raw_fd(pair[1])) };
    let null: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?
        .into();
    // SAFETY: the child runs `serve`, which makes async-signal-safe calls only and never
    // returns; it uses only the two descriptors it is given.
    let pid = unsafe { libc::fork() };
    if pid == -1 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: in the forked child; see `serve`.
        unsafe { serve::serve(launcher_end.as_raw_fd(), null.as_raw_fd()) }
    }
    forking.launcher_started(pid);
    drop((launcher_end, null));
    nix::fcntl::fcntl(
        &engine_end,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .map_err(io::Error::from)?;
    Ok(Launcher {
        pid,
        socket: engine_end,
    })
}

/// Kills a launcher that failed and reaps it (by pid: it is this process's child).
fn discard(launcher: Launcher, forking: &mut Forking) {
    let pid = nix::unistd::Pid::from_raw(launcher.pid);
    drop(launcher.socket);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
            Ok(nix::sys::wait::WaitStatus::StillAlive) | Err(nix::errno::Errno::EINTR) => {}
            _ => {
                forking.launcher_reaped(launcher.pid);
                return;
            }
        }
        if Instant::now() >= deadline {
            // Stuck in the kernel: it stays listed (so never taken for what a supervisor
            // left) and unreaped, and the next command gets a new launcher.
            tracing::warn!(pid = launcher.pid, "a killed command launcher would not die");
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[cfg(test)]
pub(super) fn pid() -> Option<pid_t> {
    current().as_ref().map(|l| l.pid)
}
