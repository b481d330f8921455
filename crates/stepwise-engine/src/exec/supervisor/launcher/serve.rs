//! The launcher itself: the loop of the long-lived process that forks supervisors ahead of
//! time, one per request of the engine's.
//!
//! It is forked from the engine's process, at the start of `main` where the embedding process
//! calls [`super::start`] (one thread, little memory), or else from the engine when its first
//! command runs (many threads). So it is written for the second case: only async-signal-safe
//! calls, no allocation, no locks, no panics. It never execs: a fork of it is a supervisor at
//! once, with nothing to load.

#![allow(unsafe_code)]

use std::os::fd::RawFd;

use libc::c_int;

use super::raw::{read_exact, send_with_fds};
use super::spare;
use super::wire::{ANSWER_LEN, FORK_SPARE};
use crate::exec::supervisor::sys::{close_all_but, errno, reset_signals};

/// Its name in `ps` and `/proc/PID/comm` (at most 15 bytes).
const NAME: &[u8] = b"stepwise-launch\0";

/// Serves requests on `socket` until the engine's end closes (the engine exited or died),
/// then exits. Never returns.
///
/// # Safety
/// Must be called in a freshly forked child; `socket` and `null` (`/dev/null`, read-write) are
/// its own.
pub(super) unsafe fn serve(socket: RawFd, null: RawFd) -> ! {
    // SAFETY (for the whole function): system calls on this process's own descriptors and
    // memory; nothing is allocated.
    unsafe {
        reset_signals();
        // Out of the engine's session and process group: no signal meant for the engine's
        // terminal (Ctrl-C, a hang-up) reaches it; it ends when the engine does.
        libc::setsid();
        libc::prctl(libc::PR_SET_NAME, NAME.as_ptr(), 0, 0, 0);
        // Above the standard descriptors first (a process may start with them closed, so the
        // two could be among them), then those become /dev/null: a supervisor's standard input
        // (and the command's), and nothing of the engine's terminal or pipes is held here.
        let socket = libc::fcntl(socket, libc::F_DUPFD_CLOEXEC, 3);
        let null = libc::fcntl(null, libc::F_DUPFD_CLOEXEC, 3);
        if socket < 0 || null < 0 {
            libc::_exit(1);
        }
        for fd in 0..3 {
            libc::dup2(null, fd);
        }
        close_all_but(&[socket]);
        loop {
            let mut op = [0u8; 1];
            if !read_exact(socket, &mut op) || op[0] != FORK_SPARE {
                libc::_exit(0);
            }
            let (errno, pid, engine_end) = fork_spare(socket);
            let mut answer = [0u8; ANSWER_LEN];
            answer[..4].copy_from_slice(&errno.to_le_bytes());
            answer[4..].copy_from_slice(&pid.to_le_bytes());
            let sent = if engine_end >= 0 {
                send_with_fds(socket, &answer, &[engine_end])
            } else {
                send_with_fds(socket, &answer, &[])
            };
            if engine_end >= 0 {
                libc::close(engine_end);
            }
            if !sent {
                libc::_exit(0);
            }
        }
    }
}

/// Forks a spare supervisor as a child of the engine (`CLONE_PARENT`), not of the launcher:
/// the engine reaps it, watches it (a pidfd), kills it if it is stopped, and receives what it
/// leaves if it is killed (the engine is then a child subreaper), exactly as if the engine had
/// forked it itself. Returns (0, its pid, the engine's end of its socket), or (errno, 0, -1).
unsafe fn fork_spare(launcher: RawFd) -> (c_int, libc::pid_t, RawFd) {
    // SAFETY: socketpair fills the array; the fork runs on no new stack (the child on its copy
    // of this one), as `fork` does but for the parent, and the child never returns from
    // `spare::wait`. glibc's `fork` wrapper is not used, so glibc's idea of the thread id stays
    // the launcher's in the child: nothing the supervisor calls (raw system calls,
    // `posix_spawn`) reads it.
    unsafe {
        let mut pair = [-1 as RawFd; 2];
        if libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            pair.as_mut_ptr(),
        ) != 0
        {
            return (errno(), 0, -1);
        }
        let [engine_end, spare_end] = pair;
        let flags = (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_ulong;
        let pid = libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize);
        if pid == 0 {
            libc::close(launcher);
            libc::close(engine_end);
            spare::wait(spare_end);
        }
        let failed = errno();
        libc::close(spare_end);
        match libc::pid_t::try_from(pid) {
            Ok(pid) if pid > 0 => (0, pid, engine_end),
            _ => {
                libc::close(engine_end);
                (failed, 0, -1)
            }
        }
    }
}
