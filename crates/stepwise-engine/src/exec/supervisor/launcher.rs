//! The launcher: one long-lived process per engine process that forks supervisors ahead of
//! time, so that neither the engine nor anything else forks on a command's way to its start.
//!
//! Forking the engine costs in proportion to its memory (its page tables are copied, and every
//! page it then writes is copied again): the larger the engine, the dearer each command. The
//! launcher is forked once, while the process is still small: at the start of `main`, where
//! the CLI and the app call [`start`] before any thread or runtime exists; failing that
//! (tests, benchmarks, other embedders), from the engine itself when its first command runs.
//! On request it forks a *spare* (`serve`): a supervisor that waits for its command on a socket
//! whose other end the launcher hands to the engine. The engine always has one spare asked for:
//! it sends a command to the spare directly (`spare`), and asks for the next one while the
//! command runs, so the fork is off the command's path.
//!
//! A supervisor whose command ended on its own, its whole tree dead and its end reported, is
//! kept for the next command (`keep`), up to [`MAX_IDLE`] of them: a chain of commands runs
//! under one supervisor, with neither a fork nor an exit between them. One killed or stopped
//! while it waited is replaced, as a spare is.
//!
//! Spares are forked with `CLONE_PARENT`, so every supervisor is still a child of the engine's
//! process: the engine reaps it, watches it, kills it if it is stopped and sweeps what it
//! leaves if it is killed, all as before (`orphans`). The launcher has no child of its own, so
//! killing it leaves no command behind; the engine kills what it forked that the engine had not
//! taken yet (spares still in the launcher's session) and forks a new launcher when it next
//! needs one. The launcher and an idle spare exit when the engine's end of their socket closes,
//! however the engine ended.
//!
//! Why a fork and not an exec of the engine's binary with a marker argument: an exec loads the
//! whole binary again and needs its `main` to know the marker (a test binary's does not), while
//! the fallback must work from a many-threaded process anyway; so the launcher is written as a
//! forked child of a many-threaded process must be (async-signal-safe calls only), in both
//! cases.
//!
//! The sockets are Unix socket pairs, which, unlike pipes, no other process can open through
//! `/proc`. Every wait for the launcher or a spare is bounded, and one found stopped is killed:
//! a command that stops or kills them cannot hang the engine.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use libc::pid_t;

mod raw;
mod serve;
mod spare;
pub(super) mod wire;

use super::orphans::{self, Forking};
use wire::{ANSWER_LEN, FORK_SPARE, Request};

/// How long the engine waits for the launcher's answer or for a spare to take its command;
/// only one that is stuck takes this long.
const PATIENCE: Duration = Duration::from_secs(10);

/// How often, while waiting, the engine looks whether the launcher or the spare was stopped.
const SLICE: Duration = Duration::from_millis(100);

/// How many times a command is offered to a spare: a spare killed while it waited (by a
/// command of another step, say), then a launcher found dead, are each replaced; four
/// failures in a row are not chance.
const ATTEMPTS: usize = 4;

/// How many supervisors are kept waiting for a command, at most (more run at once only in
/// wide fan-outs, whose supervisors then exit).
const MAX_IDLE: usize = 8;

/// This process's launcher, if one is running. Locked after [`orphans::forking`].
static LAUNCHER: Mutex<Option<Launcher>> = Mutex::new(None);

/// Supervisors that ran a command and wait for another, the last kept first. Locked after
/// [`LAUNCHER`].
static IDLE: Mutex<Vec<Spare>> = Mutex::new(Vec::new());

struct Launcher {
    pid: pid_t,
    /// The engine's end of the socket pair, non-blocking.
    socket: OwnedFd,
    /// A spare was asked for, and the answer not read yet.
    asked: bool,
}

/// A supervisor with its command sent: its pid, and the engine's end of its socket
/// (non-blocking), where the report comes.
pub(super) struct Spare {
    pub(super) pid: pid_t,
    pub(super) socket: OwnedFd,
}

fn current() -> MutexGuard<'static, Option<Launcher>> {
    LAUNCHER.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Forks the process that starts commands (the launcher) now, while this process is small,
/// unless one is running. Call it first thing in `main`, before any thread or runtime starts:
/// every command's supervisor is then forked from that small process, whatever the engine's
/// size. Without it, the engine forks the launcher from itself when its first command runs.
/// A failure is left for the first command to meet (it forks a launcher itself, and says why
/// if it cannot). No supervisor is forked yet: a process that runs no command forks nothing
/// more.
pub fn start() {
    let mut forking = orphans::forking();
    let mut slot = current();
    if slot.is_none() {
        *slot = fork_launcher(&mut forking).ok();
    }
}

/// Keeps a supervisor whose command ended (its tree dead, its end reported) for the next
/// command; gives its socket back if enough are kept already.
pub(super) fn keep(pid: pid_t, socket: OwnedFd) -> Result<(), OwnedFd> {
    let mut idle = IDLE.lock().unwrap_or_else(PoisonError::into_inner);
    if idle.len() >= MAX_IDLE {
        return Err(socket);
    }
    idle.push(Spare { pid, socket });
    Ok(())
}

/// Kills the supervisors kept idle, when the engine shuts down. An idle one exits by itself
/// once the engine's end of its socket closes, unless something stopped it (`SIGSTOP`) while it
/// waited: it would then outlive the engine, stopped, for as long as nobody resumes it. Idle,
/// they run nothing: killing them loses nothing.
pub(crate) fn discard_idle() {
    let idle: Vec<Spare> =
        std::mem::take(&mut *IDLE.lock().unwrap_or_else(PoisonError::into_inner));
    if idle.is_empty() {
        return;
    }
    let mut forking = orphans::forking();
    for spare in idle {
        discard(spare.pid, spare.socket);
        forking.withdrawn(spare.pid);
    }
}

/// Sends `request` to a supervisor kept from an earlier command, or else to a spare, with
/// `fds` (the write ends of the command's stdout and stderr, and the read end of its stdin if
/// it has one), forking the launcher or waiting
/// for the spare if need be. Once the whole request is sent, it is the command's supervisor:
/// registered in `forking`, and returned.
pub(super) fn launch(forking: &mut Forking, request: &Request, fds: &[RawFd]) -> io::Result<Spare> {
    let mut slot = current();
    if let Some(kept) = launch_kept(forking, request, fds) {
        return Ok(kept);
    }
    let mut failure = io::Error::other("no spare supervisor could be had");
    for _ in 0..ATTEMPTS {
        let spare = match take_spare(&mut slot, forking) {
            Ok(spare) => spare,
            Err(error) => {
                failure = error;
                continue;
            }
        };
        // One killed or stopped while it waited (by a command of another step, say) would
        // take the command and never run it: it is replaced.
        if !orphans::is_waiting(spare.pid) {
            discard(spare.pid, spare.socket);
            failure = io::Error::other("the supervisor that was to run it was stopped or killed");
            continue;
        }
        // Known before it has its command: it then leaves the launcher's session for one of
        // its own, where a sweep would otherwise take it for what a dead supervisor left.
        forking.forked(spare.pid);
        match send_request(&spare, request, fds) {
            Ok(()) => {
                // The next spare is forked while this command runs.
                if let Some(launcher) = slot.as_mut()
                    && ask(launcher).is_err()
                {
                    discard_launcher(slot.take(), forking);
                }
                return Ok(spare);
            }
            Err(error) => {
                // It took none of the command (a spare runs nothing before it has all of it).
                discard(spare.pid, spare.socket);
                forking.withdrawn(spare.pid);
                failure = error;
            }
        }
    }
    Err(failure)
}

/// Sends `request` to a kept supervisor, if one is waiting (registered in `forking` since its
/// first command). One found killed or stopped, or that fails to take it, is discarded.
fn launch_kept(forking: &mut Forking, request: &Request, fds: &[RawFd]) -> Option<Spare> {
    let mut idle = IDLE.lock().unwrap_or_else(PoisonError::into_inner);
    while let Some(kept) = idle.pop() {
        // A child subreaper from before it has its command.
        forking.busy(kept.pid);
        if orphans::is_waiting(kept.pid) && send_request(&kept, request, fds).is_ok() {
            return Some(kept);
        }
        discard(kept.pid, kept.socket);
        forking.withdrawn(kept.pid);
    }
    None
}

/// The most of a request sent at once by [`launch_kept_at_once`]: an idle supervisor's socket
/// takes far more than this in one send.
const AT_ONCE_MAX: usize = 16 << 10;

/// Sends `request` to a kept supervisor if that cannot block: one is waiting, and the whole
/// request goes in one send (a request is small, and the socket empty). `None` otherwise,
/// nothing sent (one found killed or stopped is left for [`launch`] to discard). Nothing is
/// waited for: a lock another holds (a sweep's, say) is a `None` too.
pub(super) fn launch_kept_at_once(request: &Request, fds: &[RawFd]) -> Option<Spare> {
    let bytes = request.bytes();
    if bytes.len() > AT_ONCE_MAX {
        return None;
    }
    let mut forking = orphans::try_forking()?;
    let mut idle = IDLE.try_lock().ok()?;
    let kept = idle.pop()?;
    if !orphans::is_waiting(kept.pid) {
        idle.push(kept);
        return None;
    }
    // A child subreaper from before it has its command.
    forking.busy(kept.pid);
    match send(&kept.socket, bytes, fds) {
        Ok(sent) if sent == bytes.len() => Some(kept),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            forking.idle(kept.pid);
            idle.push(kept);
            None
        }
        // Part of it (or an error): it would wait for the rest, or is gone. It is let go (it
        // exits once its socket closes, and is reaped off this thread; its tree is long dead,
        // so nothing started before now is taken for what it left).
        _ => {
            drop(kept.socket);
            orphans::reap_later(kept.pid, orphans::boot_ticks());
            None
        }
    }
}

/// The spare asked for (asking for it first if need be), from the launcher (forked first if
/// there is none). A launcher that fails is killed, with what it forked that the engine has
/// not taken.
fn take_spare(slot: &mut Option<Launcher>, forking: &mut Forking) -> io::Result<Spare> {
    let launcher = match slot {
        Some(launcher) => launcher,
        None => slot.insert(fork_launcher(forking)?),
    };
    let answered = if launcher.asked {
        answer(launcher)
    } else {
        ask(launcher).and_then(|()| answer(launcher))
    };
    match answered {
        Ok(Ok(spare)) => Ok(spare),
        // It could not fork (an errno): it is still a launcher.
        Ok(Err(error)) => Err(error),
        Err(error) => {
            discard_launcher(slot.take(), forking);
            Err(error)
        }
    }
}

/// Asks the launcher for a spare; the answer is read when it is needed ([`answer`]).
fn ask(launcher: &mut Launcher) -> io::Result<()> {
    if send(&launcher.socket, &[FORK_SPARE], &[])? != 1 {
        return Err(io::Error::other(
            "the process that starts commands (the launcher) took no request",
        ));
    }
    launcher.asked = true;
    Ok(())
}

/// The launcher's answer: the spare, or why it could not fork one (the inner error). The outer
/// error means the launcher failed (gone, stopped, or saying nonsense).
fn answer(launcher: &mut Launcher) -> io::Result<io::Result<Spare>> {
    let deadline = Instant::now() + PATIENCE;
    let mut bytes = [0u8; ANSWER_LEN];
    let mut got = 0;
    let mut socket = None;
    while got < ANSWER_LEN {
        match receive(&launcher.socket, &mut bytes[got..]) {
            Ok((0, _)) => {
                return Err(io::Error::other(
                    "the process that starts commands (the launcher) is gone",
                ));
            }
            Ok((n, fd)) => {
                got += n;
                socket = socket.or(fd);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait(&launcher.socket, launcher.pid, libc::POLLIN, deadline)?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    launcher.asked = false;
    let word = |i: usize| i32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    match (word(0), word(4), socket) {
        (0, pid, Some(socket)) if pid > 0 => {
            nonblocking(&socket)?;
            Ok(Ok(Spare { pid, socket }))
        }
        (0, ..) => Err(io::Error::other(
            "the process that starts commands (the launcher) answered without a supervisor",
        )),
        (errno, ..) => Ok(Err(io::Error::from_raw_os_error(errno))),
    }
}

/// Sends the whole request to the spare, its descriptors with the first bytes.
fn send_request(spare: &Spare, request: &Request, fds: &[RawFd]) -> io::Result<()> {
    let deadline = Instant::now() + PATIENCE;
    let bytes = request.bytes();
    let mut sent = 0;
    while sent < bytes.len() {
        let with = if sent == 0 { fds } else { &[] };
        match send(&spare.socket, &bytes[sent..], with) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait(&spare.socket, spare.pid, libc::POLLOUT, deadline)?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EPIPE | libc::ECONNRESET)) => {
                return Err(io::Error::other(
                    "the supervisor that was to run it is gone",
                ));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Waits until `socket` is ready for `events`, until `deadline`; an error if the process at
/// its other end (`pid`) is found stopped (it would never be ready) or the deadline passes.
fn wait(socket: &OwnedFd, pid: pid_t, events: libc::c_short, deadline: Instant) -> io::Result<()> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the process that starts commands (or the supervisor that was to run it) did not answer within {} s",
                    PATIENCE.as_secs()
                ),
            ));
        }
        let mut poll = libc::pollfd {
            fd: socket.as_raw_fd(),
            events,
            revents: 0,
        };
        let ms = libc::c_int::try_from(left.min(SLICE).as_millis())
            .unwrap_or(1)
            .max(1);
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut poll, 1, ms) } > 0 && poll.revents != 0 {
            return Ok(());
        }
        if orphans::is_stopped(pid) {
            return Err(io::Error::other(
                "the process that starts commands (or the supervisor that was to run it) was stopped",
            ));
        }
    }
}

/// Forks a launcher from this process. The caller holds `forking`, so that no sweep runs while
/// the launcher is not yet known as one.
fn fork_launcher(forking: &mut Forking) -> io::Result<Launcher> {
    let (engine_end, launcher_end) = socket_pair()?;
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
    nonblocking(&engine_end)?;
    Ok(Launcher {
        pid,
        socket: engine_end,
        asked: false,
    })
}

/// Kills a launcher that failed, and what it forked that the engine had not taken (spares
/// still in its session: one asked for, or forked as it died), and reaps them.
fn discard_launcher(launcher: Option<Launcher>, forking: &mut Forking) {
    let Some(launcher) = launcher else { return };
    let pid = launcher.pid;
    if discard(pid, launcher.socket) {
        forking.launcher_reaped(pid);
    }
    for spare in forking.unknown_in_session(pid) {
        // Its socket closed with the launcher (or is about to): it exits, or is killed.
        let _ = discard(spare, None::<OwnedFd>);
    }
}

/// Closes the socket to a process of this one's that failed, kills it and reaps it (by pid:
/// it is this process's child). Whether it was reaped.
fn discard(pid: pid_t, socket: impl Into<Option<OwnedFd>>) -> bool {
    drop(socket.into());
    let pid = nix::unistd::Pid::from_raw(pid);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
            Ok(nix::sys::wait::WaitStatus::StillAlive) | Err(nix::errno::Errno::EINTR) => {}
            _ => return true,
        }
        if Instant::now() >= deadline {
            // Stuck in the kernel: left unreaped (so its pid is never another's).
            tracing::warn!(
                pid = pid.as_raw(),
                "a killed process of the engine's would not die"
            );
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn socket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
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
    Ok(unsafe { (OwnedFd::from_raw_fd(pair[0]), OwnedFd::from_raw_fd(pair[1])) })
}

fn nonblocking(fd: &OwnedFd) -> io::Result<()> {
    nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .map(drop)
    .map_err(io::Error::from)
}

/// Sends what of `bytes` the socket takes, the descriptors `fds` with them. No SIGPIPE.
fn send(socket: &OwnedFd, bytes: &[u8], fds: &[RawFd]) -> io::Result<usize> {
    // SAFETY: one sendmsg on a descriptor this process owns, of buffers borrowed for the call.
    let n = unsafe { raw::send_once(socket.as_raw_fd(), bytes, fds) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// Receives what is there, up to `buffer`'s length, and the descriptor sent with it, if any
/// (any more are closed).
fn receive(socket: &OwnedFd, buffer: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    let mut fds = [-1 as RawFd; 1];
    // SAFETY: one recvmsg on a descriptor this process owns, into buffers borrowed for the
    // call.
    let (n, count, _) = unsafe { raw::receive_once(socket.as_raw_fd(), buffer, &mut fds) };
    let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    // SAFETY: a descriptor just received, this process's own from now on.
    let fd = (count > 0).then(|| unsafe { OwnedFd::from_raw_fd(fds[0]) });
    Ok((n, fd))
}
