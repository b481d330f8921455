//! System calls the launcher and the supervisors share, all async-signal-safe: both run in
//! processes forked from a possibly multi-threaded one, where nothing else may be called.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::RawFd;

use libc::c_int;

/// Default dispositions (but for the stops it can ignore) and an empty mask: a forked child
/// inherits the engine's (a runtime's signal handlers would write to descriptors that are
/// closed or reused here). Commands get default dispositions (`child`).
pub(super) unsafe fn reset_signals() {
    // SAFETY: sigaction and sigprocmask with valid, zeroed structures.
    unsafe {
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        // The stops that can be refused are: a command that stops its supervisor keeps it
        // from doing its work (the engine kills a supervisor that is stopped all the same).
        let mut ignore: libc::sigaction = std::mem::zeroed();
        ignore.sa_sigaction = libc::SIG_IGN;
        for signal in 1..libc::SIGRTMAX() {
            let action = match signal {
                libc::SIGKILL | libc::SIGSTOP => continue,
                libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU => &ignore,
                _ => &default,
            };
            libc::sigaction(signal, action, std::ptr::null_mut());
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
}

/// Closes every descriptor from 3 up except those in `keep`.
pub(super) unsafe fn close_all_but(keep: &[RawFd]) {
    let mut sorted = [0 as RawFd; 8];
    let n = keep.len().min(sorted.len());
    sorted[..n].copy_from_slice(&keep[..n]);
    let sorted = &mut sorted[..n];
    sorted.sort_unstable();
    let mut from: RawFd = 3;
    // SAFETY: close_range/close on descriptor numbers; closing a number that is not open is
    // harmless.
    unsafe {
        for &fd in sorted.iter() {
            if fd >= from {
                if fd > from {
                    close_range(from, fd - 1);
                }
                from = fd + 1;
            }
        }
        close_range(from, RawFd::MAX);
    }
}

unsafe fn close_range(first: RawFd, last: RawFd) {
    // SAFETY: the close_range system call, or, where the kernel lacks it, close one by one up
    // to the limit on open descriptors.
    unsafe {
        if libc::syscall(libc::SYS_close_range, first as u32, last as u32, 0) == 0 {
            return;
        }
        let mut limit: libc::rlimit = std::mem::zeroed();
        let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur.min(65_536) as RawFd
        } else {
            1024
        };
        let mut fd = first;
        while fd <= last && fd < max {
            libc::close(fd);
            fd += 1;
        }
    }
}

pub(super) fn errno() -> c_int {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}
